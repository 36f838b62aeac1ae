"""Composing outgoing mail: exact headers, MIME structure, Norwegian text, threading, subjects.

The property tests feed arbitrary text (control characters, CR/LF, lone surrogates, line
separators, header-looking lines) into every field that comes from users and check that
the bytes parse back to exactly the headers we meant to write.
"""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.inbound.rules import LOOP_HEADER
from helpdesk.outbound.compose import MailAttachment, OutgoingMail, Recipient, compose, to_bytes
from helpdesk.outbound.headers import (
    base_subject,
    header_safe,
    message_id_list,
    reply_subject,
)
from helpdesk.outbound.service import reply_text
from helpdesk.outbound.templates import render_mail
from helpdesk.signing import verify_message_id, verify_reply_address
from tests.conftest import SECRET_KEY
from tests.factories import T0
from tests.outbound_factory import (
    SUPPORT,
    add_learner_mail,
    add_mail_ticket,
    add_operator_row,
    html_part,
    parse,
    reply,
    text_part,
)

REPLY_HEADERS = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    LOOP_HEADER,
    "MIME-Version",
    "Content-Type",
]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def outgoing(**fields: object) -> OutgoingMail:
    values: dict[str, object] = {
        "from_address": SUPPORT,
        "from_name": "Kundeservice",
        "reply_to": "support+1042.abcdefghijkl@kurs.example",
        "to": Recipient("kari@example.no", "Kari Nordmann"),
        "cc": ["per@firma.no"],
        "subject": reply_subject("Spørsmål om kursbevis", 1042),
        "message_id": "nonce.1042.mac@kurs.example",
        "date": T0,
        "text": "Hei Kari,\n\nhei æøå ÆØÅ\n",
        "html": "<p>Hei Kari,</p><p>hei æøå ÆØÅ</p>\n",
        "in_reply_to": "first.1@mail.example.no",
        "references": ["root.0@mail.example.no", "first.1@mail.example.no"],
        "loop_stamp": SUPPORT,
    }
    values.update(fields)
    return OutgoingMail(**values)  # type: ignore[arg-type]


def test_reply_carries_exactly_the_expected_headers() -> None:
    raw = to_bytes(compose(outgoing()))
    mail = parse(raw)

    assert list(mail.keys()) == REPLY_HEADERS
    assert mail["From"] == "Kundeservice <support@kurs.example>"
    assert mail["Reply-To"] == "support+1042.abcdefghijkl@kurs.example"
    assert mail["To"] == "Kari Nordmann <kari@example.no>"
    assert mail["Cc"] == "per@firma.no"
    assert mail["Subject"] == "Re: Spørsmål om kursbevis [#1042]"
    assert mail["Date"] == "Sat, 21 Nov 2026 10:00:00 +0000"
    assert mail["Message-ID"] == "<nonce.1042.mac@kurs.example>"
    assert mail["In-Reply-To"] == "<first.1@mail.example.no>"
    assert mail["References"] == "<root.0@mail.example.no> <first.1@mail.example.no>"
    assert mail[LOOP_HEADER] == SUPPORT
    assert "Auto-Submitted" not in mail
    assert "X-Auto-Response-Suppress" not in mail


def test_wire_form_is_crlf_seven_bit_and_short_lined() -> None:
    raw = to_bytes(compose(outgoing(attachments=[MailAttachment("a.pdf", "application/pdf", PDF)])))

    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_body_is_alternative_text_and_html_with_norwegian_letters_in_both() -> None:
    mail = parse(to_bytes(compose(outgoing())))

    assert mail.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "hei æøå ÆØÅ" in text_part(mail)
    assert "<p>hei æøå ÆØÅ</p>" in html_part(mail)
    for part in mail.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert "MIME-Version" not in part


def test_attachments_make_the_message_mixed_and_keep_their_names_and_bytes() -> None:
    attachment = MailAttachment("Kursbevis Åse Ødegård.pdf", "application/pdf", PDF)
    odd = MailAttachment("kvittering.bin", "not a type", b"\x00\x01")
    mail = parse(to_bytes(compose(outgoing(attachments=[attachment, odd]))))

    assert mail.get_content_type() == "multipart/mixed"
    body, pdf, binary = mail.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "Kursbevis Åse Ødegård.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_content() == PDF
    assert binary.get_content_type() == "application/octet-stream"
    assert binary.get_content() == b"\x00\x01"


def test_automatic_mail_carries_rfc_3834_headers() -> None:
    mail = parse(to_bytes(compose(outgoing(automatic=True))))

    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"


def test_an_international_domain_goes_out_as_idna() -> None:
    mail = parse(to_bytes(compose(outgoing(to=Recipient("ase@bønder.no")))))

    assert mail["To"] == "ase@xn--bnder-vua.no"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Kursbevis", "Re: Kursbevis [#1042]"),
        ("Re: Re: SV: Aw: Kursbevis", "Re: Kursbevis [#1042]"),
        ("RE[2]: Sv : AW(3): Kursbevis", "Re: Kursbevis [#1042]"),
        ("Re: Kursbevis [#1042]", "Re: Kursbevis [#1042]"),
        ("Kursbevis [#1042] [#77]", "Re: Kursbevis [#1042]"),
        ("SV: [#1042] Re: Kursbevis", "Re: Kursbevis [#1042]"),
        ("Auto: Re: Kursbevis", "Re: Kursbevis [#1042]"),
        ("Fwd: Kvittering", "Re: Fwd: Kvittering [#1042]"),
        ("Resultat av prøven", "Re: Resultat av prøven [#1042]"),
        ("", "Re: (no subject) [#1042]"),
        ("  \t ", "Re: (no subject) [#1042]"),
    ],
)
def test_reply_subject_has_one_prefix_and_one_token(subject: str, expected: str) -> None:
    assert reply_subject(subject, 1042) == expected
    assert reply_subject(expected, 1042) == expected


def test_references_keep_first_and_last_ids_and_drop_unusable_ones() -> None:
    ids = [f"<id{n}@mail.example.no>" for n in range(30)]
    junk = ["", "no-at-sign", "<two words@x>", "<" + "x" * 300 + "@x.no>", "<id5@mail.example.no>"]

    kept = message_id_list(ids + junk)

    assert len(kept) == 10
    assert kept[0] == "id0@mail.example.no"
    assert kept[1:] == [f"id{n}@mail.example.no" for n in range(21, 30)]


def test_long_outlook_message_ids_are_folded_between_ids_never_encoded() -> None:
    long_id = "AM0PR10MB3476C7F9D9B2A4E5F6A0B1C2D3E4F5A6@AM0PR10MB3476.EURPRD10.PROD.OUTLOOK.COM"
    references = [long_id, "second@mail.example.no", long_id.replace("AM0", "DB9")]
    raw = to_bytes(compose(outgoing(in_reply_to=long_id, references=references)))
    headers = raw.split(b"\r\n\r\n", 1)[0]

    assert b"=?" not in headers.split(b"Subject:")[0]
    assert b"References: <AM0PR10MB" in headers
    mail = parse(raw)
    assert mail["In-Reply-To"] == f"<{long_id}>"
    assert mail["References"].split() == [f"<{i}>" for i in references]


# --- header injection, property-based -------------------------------------------------------

INJECTIONS = st.sampled_from(
    [
        "\r\nBcc: evil@attacker.example",
        "\nX-Injected: 1",
        "\r\n\r\n<html>body</html>",
        "\rSubject: second",
        "\x00",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x85",
        "\u2028",
        "\u2029",
        "\ud800",
        "=?utf-8?q?=0D=0ABcc:_x@y?=",
        'Kari "Q" <k@x>, ',
        "x\"; filename*=utf-8''%0D%0AX-Evil:%201; a=\"",
        "\\",
        "æøå ÆØÅ",
    ]
)
HOSTILE_TEXT = st.lists(
    st.one_of(st.text(alphabet=st.characters(blacklist_categories=())), INJECTIONS),
    max_size=6,
).map("".join)


def hostile_mail(name: str, operator: str, subject: str, body: str, filename: str) -> bytes:
    text = reply_text(body) if reply_text_ok(body) else "tom"
    rendered = render_mail(
        "reply",
        "nb",
        {
            "body": text,
            "operator_name": operator,
            "brand": "Kundeservice",
            "ticket_number": 1042,
            "history": [],
        },
    )
    mail = outgoing(
        to=Recipient("kari@example.no", name),
        subject=reply_subject(subject, 1042),
        text=rendered.text,
        html=rendered.html,
        attachments=[MailAttachment(filename, "application/pdf", PDF)],
    )
    return to_bytes(compose(mail))


def reply_text_ok(body: str) -> bool:
    try:
        reply_text(body)
    except Exception:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=HOSTILE_TEXT,
    operator=HOSTILE_TEXT,
    subject=HOSTILE_TEXT,
    body=HOSTILE_TEXT,
    filename=HOSTILE_TEXT,
)
def test_no_user_input_can_add_or_break_a_header(
    name: str, operator: str, subject: str, body: str, filename: str
) -> None:
    raw = hostile_mail(name, operator, subject, body, filename)

    for parsed in (parse(raw), message_from_bytes(raw, policy=compat32)):
        assert list(parsed.keys()) == REPLY_HEADERS
        assert not parsed.defects
    mail = parse(raw)
    assert mail["Subject"] == reply_subject(subject, 1042)
    assert mail["Subject"].endswith(" [#1042]")
    (to,) = mail["To"].addresses
    assert to.addr_spec == "kari@example.no"
    # RFC 2047 joins adjacent encoded-words without a space, but the stdlib's phrase
    # parser puts one between them, so spaces are not compared here.
    assert to.display_name.split() == header_safe(name, 120).split() or "".join(
        to.display_name.split()
    ) == "".join(header_safe(name, 120).split())
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["per@firma.no"]
    assert mail["From"].addresses[0].addr_spec == SUPPORT
    for header in ("Subject", "To"):
        assert "\r" not in mail[header] and "\n" not in mail[header]
    body_part, attachment = mail.iter_parts()
    assert [p.get_content_type() for p in body_part.iter_parts()] == ["text/plain", "text/html"]
    assert list(attachment.keys()) == [
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
    ]
    assert attachment.get_content() == PDF
    assert "\n" not in (attachment.get_filename() or "")


@settings(max_examples=200, deadline=None)
@given(subject=HOSTILE_TEXT)
def test_reply_subject_is_one_line_and_stable(subject: str) -> None:
    once = reply_subject(subject, 7)

    assert once == header_safe(once)
    assert once.startswith("Re: ") and once.endswith(" [#7]")
    assert once.count("[#") == 1 + base_subject(subject).count("[#")
    assert reply_subject(once, 7) == once


# --- composed from a real ticket (both databases) ---------------------------------------------


async def test_reply_threads_to_the_latest_learner_message(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(
        runtime, message_id="first.1@mail.example.no", references="root.0@mail.example.no"
    )
    await reply(runtime, ticket.number, operator, "Første svar.", now=T0 + timedelta(hours=1))
    await add_learner_mail(
        runtime,
        ticket.number,
        "Takk, men det mangler fortsatt.",
        "second.2@mail.example.no",
        now=T0 + timedelta(hours=2),
        references="root.0@mail.example.no first.1@mail.example.no ours@kurs.example",
    )

    queued = await reply(runtime, ticket.number, operator, now=T0 + timedelta(hours=3))
    mail = parse(queued.outbound.raw)

    assert mail["In-Reply-To"] == "<second.2@mail.example.no>"
    assert mail["References"].split() == [
        "<root.0@mail.example.no>",
        "<first.1@mail.example.no>",
        "<ours@kurs.example>",
        "<second.2@mail.example.no>",
    ]
    assert queued.message.in_reply_to == "second.2@mail.example.no"


async def test_message_id_and_reply_address_are_signed_and_stored(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(runtime, participants=("per@firma.no", SUPPORT))

    queued = await reply(runtime, ticket.number, operator)
    mail = parse(queued.outbound.raw)

    message_id = mail["Message-ID"].strip("<>")
    assert message_id == queued.outbound.rfc_message_id == queued.message.rfc_message_id
    assert verify_message_id(SECRET_KEY, message_id) == ticket.number
    reply_to = mail["Reply-To"].addresses[0].addr_spec
    assert verify_reply_address(SECRET_KEY, SUPPORT, reply_to) == ticket.number
    assert mail["To"].addresses[0].addr_spec == "kari@example.no"
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["per@firma.no"]
    assert queued.outbound.recipients == ["kari@example.no", "per@firma.no"]


async def test_quoted_history_is_newest_first_and_only_human_messages(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(runtime, text="Hei, første spørsmål om ÆØÅ.")
    await reply(runtime, ticket.number, operator, "Svar nummer én.", now=T0 + timedelta(hours=1))
    await add_learner_mail(
        runtime,
        ticket.number,
        "Jeg er på ferie.",
        "ooo@mail.example.no",
        now=T0 + timedelta(hours=2),
        machine="auto-reply",
    )
    await add_learner_mail(
        runtime,
        ticket.number,
        "Andre spørsmål.\n\n> Svar nummer én.",
        "q2@mail.example.no",
        now=T0 + timedelta(hours=3),
        reply_text="Andre spørsmål.",
    )

    queued = await reply(runtime, ticket.number, operator, "Tredje svar.", T0 + timedelta(hours=4))
    text = text_part(parse(queued.outbound.raw))
    html = html_part(parse(queued.outbound.raw))

    assert text.startswith("Tredje svar.\n")
    later, earlier, first = (
        text.index("> Andre spørsmål."),
        text.index("> Svar nummer én."),
        text.index("> Hei, første spørsmål om ÆØÅ."),
    )
    assert later < earlier < first
    assert "ferie" not in text and "ferie" not in html
    assert "> > Svar" not in text
    assert "Ola Ågesen (Kundeservice)" in text
    assert "<blockquote" in html and "Andre spørsmål." in html
    assert html.index("Andre spørsmål.") < html.index("Hei, første spørsmål om ÆØÅ.")


async def test_html_part_escapes_what_the_operator_wrote(runtime) -> None:
    operator = await add_operator_row(runtime, name="Ola <b>Agent</b>")
    ticket, _ = await add_mail_ticket(runtime)

    queued = await reply(runtime, ticket.number, operator, "Se <script>alert(1)</script> & co")
    mail = parse(queued.outbound.raw)

    assert "<script>" not in html_part(mail)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html_part(mail)
    assert "Ola &lt;b&gt;Agent&lt;/b&gt;" in html_part(mail)
    assert "Se <script>alert(1)</script> & co" in text_part(mail)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("nb", "Saksnummer #"), ("nn", "Saksnummer #"), ("en", "Ticket #"), (None, "Ticket #")],
)
async def test_template_follows_the_learners_locale(runtime, locale, expected) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(runtime, locale=locale)

    queued = await reply(runtime, ticket.number, operator)
    mail = parse(queued.outbound.raw)

    assert f"{expected}{ticket.number}" in text_part(mail)
    assert f"{expected}{ticket.number}" in html_part(mail)
    assert "æøå ÆØÅ" in text_part(mail) and "æøå ÆØÅ" in html_part(mail)
