"""Address fields: the quick reading of a plain mailbox gives what the RFC 5322 parser gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.inbound.headers import Mailbox, _parse_strictly, normalise_address, parse_mailboxes

ATEXT = "abcxyzABCXYZ0189!#$%&'*+-/=?^_`{|}~"
atom = st.text(ATEXT, min_size=1, max_size=8)
dot_atom = st.lists(atom, min_size=1, max_size=3).map(".".join)
address = st.tuples(dot_atom, dot_atom).map("@".join)
display_name = st.one_of(
    st.lists(atom, min_size=1, max_size=3).map(" ".join),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\')).map(
        lambda name: f'"{name}"'
    ),
)
plain_mailbox = st.one_of(
    address,
    address.map(lambda a: f"<{a}>"),
    st.tuples(display_name, address).map(lambda pair: f"{pair[0]} <{pair[1]}>"),
)


def strictly(raw: str) -> list[Mailbox]:
    """The mailboxes as the stdlib's parser alone reads them."""
    found = []
    for name, local, domain in _parse_strictly("from", raw):
        normalised = normalise_address(local, domain)
        if normalised is not None:
            found.append(Mailbox(" ".join(name.split()) or None, normalised))
    return found


@settings(max_examples=500, deadline=None)
@given(plain_mailbox)
def test_a_plain_mailbox_reads_as_the_rfc_5322_parser_reads_it(raw: str) -> None:
    assert parse_mailboxes("from", [raw]) == strictly(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "Kari Nordmann <kari.nordmann@Example.NO>",
        '"Nordmann, Kari" <kari@example.no>',
        "<kari@example.no>",
        "kari@example.no",
        "  Kari <kari@example.no>  ",
        "=?utf-8?q?K=C3=A5re?= <kare@example.no>",  # encoded word: the full parser
        "Kari <kari@example.no>, Ola <ola@example.no>",  # two mailboxes: the full parser
        "kari@example.no (Kari Nordmann)",  # a comment: the full parser
        '"Kari \\"K\\" N" <kari@example.no>',  # escapes: the full parser
    ],
)
def test_common_and_awkward_from_fields_read_alike_either_way(raw: str) -> None:
    assert parse_mailboxes("from", [raw]) == strictly(raw)
    assert parse_mailboxes("from", [raw])[0].address.endswith("@example.no")
