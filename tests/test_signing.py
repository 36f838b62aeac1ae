"""Signed Message-IDs and reply addresses: ours verify, forged or altered ones do not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helpdesk.signing import (
    make_message_id,
    make_reply_address,
    verify_message_id,
    verify_reply_address,
)

KEY = "k" * 32
SUPPORT = "support@kurs.example"


def test_our_message_id_names_its_ticket() -> None:
    message_id = make_message_id(KEY, "kurs.example", 1042)
    assert message_id.endswith("@kurs.example")
    assert verify_message_id(KEY, message_id) == 1042
    assert verify_message_id(KEY, f"<{message_id.upper()}>") == 1042


def test_message_ids_are_unique() -> None:
    assert len({make_message_id(KEY, "kurs.example", 1) for _ in range(200)}) == 200


def test_message_id_signed_with_another_key_or_altered_is_refused() -> None:
    message_id = make_message_id(KEY, "kurs.example", 1042)
    assert verify_message_id("o" * 32, message_id) is None
    assert verify_message_id(KEY, message_id.replace(".1042.", ".1043.")) is None
    assert verify_message_id(KEY, "CAF=abc@mail.gmail.com") is None


def test_reply_address_threads_only_into_its_own_ticket() -> None:
    address = make_reply_address(KEY, SUPPORT, 1042)
    assert address.startswith("support+1042.") and address.endswith("@kurs.example")
    assert verify_reply_address(KEY, SUPPORT, address) == 1042
    assert verify_reply_address(KEY, SUPPORT, address.upper()) == 1042
    guessed = address.replace("+1042.", "+1041.")
    assert verify_reply_address(KEY, SUPPORT, guessed) is None
    elsewhere = address.replace("kurs.example", "evil.example")
    assert verify_reply_address(KEY, SUPPORT, elsewhere) is None
    assert verify_reply_address(KEY, SUPPORT, "support@kurs.example") is None


@given(st.text(max_size=80))
def test_arbitrary_strings_never_verify(candidate: str) -> None:
    assert verify_message_id(KEY, candidate) is None
    assert verify_reply_address(KEY, SUPPORT, candidate) is None
