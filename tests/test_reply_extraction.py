"""`extract_reply`: the new part of a reply, without quoted history and signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.inbound.parse import parse_message
from helpdesk.inbound.replies import extract_reply

DATA = Path(__file__).parent / "data"


def reply_of(fixture: str) -> str:
    return extract_reply(parse_message((DATA / fixture).read_bytes()).text)


def test_outlook_reply_in_norwegian_loses_the_header_block_and_what_follows() -> None:
    assert reply_of("parse_outlook_reply_nb.eml") == (
        "Hei igjen,\n\nTakk, nå fikk jeg lastet ned kursbeviset.\n\n"
        "Mvh\nKari Nordmann\nHMS-ansvarlig, Bygg AS"
    )


def test_gmail_reply_with_attribution_wrapped_over_two_lines() -> None:
    assert reply_of("parse_gmail_reply_en.eml") == (
        "Thanks, that worked. I can see the certificate now.\n\nBest regards,\nJohn"
    )


def test_iphone_reply_in_norwegian_loses_sendt_fra_min_iphone_and_the_quote() -> None:
    assert reply_of("parse_iphone_reply_nb.eml") == (
        "Takk for hjelpen! Jeg tar kurset igjen neste uke når jeg har fri fra jobben."
    )


def test_html_only_gmail_reply_is_cut_at_its_blockquote() -> None:
    raw = (
        b"From: kari@example.no\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<div dir="ltr">Takk, det gikk fint!</div><br><div class="gmail_quote">'
        b'<div dir="ltr" class="gmail_attr">tir. 3. nov. 2026 kl. 10:15 skrev Kundeservice '
        b"&lt;support@kurs.example&gt;:<br></div><blockquote>Hei Kari,<br>Kurset er klart."
        b"</blockquote></div>"
    )

    assert extract_reply(parse_message(raw).text) == "Takk, det gikk fint!"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Takk!\n\nOn Tue, 3 Nov 2026 at 10:15, Kari <kari@example.no> wrote:\n> Hei\n> der\n",
            "Takk!",
            id="gmail-english",
        ),
        pytest.param(
            "Takk!\n\ntir. 3. nov. 2026 kl. 10:15 skrev Kari Nordmann <kari@example.no>:\n"
            "\n> Hei\n",
            "Takk!",
            id="gmail-norwegian",
        ),
        pytest.param(
            "Takk!\n\nDen 3. nov. 2026 kl. 10:15 skrev Kari Nordmann <kari@example.no>:\n\nHei\n",
            "Takk!",
            id="apple-norwegian-unquoted",
        ),
        pytest.param(
            "Takk!\n\nDen 03.11.2026 10:15, skrev Kari Nordmann:\n> Hei\n",
            "Takk!",
            id="thunderbird-norwegian",
        ),
        pytest.param(
            "Tak!\n\nDen 3. nov. 2026 kl. 10.15 skrev Kari Hansen <kari@example.dk>:\n> Hej\n",
            "Tak!",
            id="danish",
        ),
        pytest.param(
            "Tack!\n\nDen 3 nov. 2026 kl. 10:15 skrev Kari Svensson <kari@example.se>:\n> Hej\n",
            "Tack!",
            id="swedish",
        ),
        pytest.param(
            "Ja, det stemmer.\n\nKari Nordmann <kari@example.no> skrev følgende:\n> Stemmer det?\n",
            "Ja, det stemmer.",
            id="skrev-folgende",
        ),
        pytest.param(
            "Ja.\n\nKari Nordmann skrev følgende:\n> Stemmer det?\n",
            "Ja.",
            id="skrev-folgende-without-address-but-quoted",
        ),
        pytest.param(
            "Ok, takk.\n\n-----Opprinnelig melding-----\nFra: Kundeservice\nHei\n",
            "Ok, takk.",
            id="opprinnelig-melding",
        ),
        pytest.param(
            "Ok, takk.\n\n-----Original melding-----\nFra: Kundeservice\nHei\n",
            "Ok, takk.",
            id="original-melding",
        ),
        pytest.param(
            "Thanks.\n\n-----Original Message-----\nFrom: Support\nSent: Tuesday\nHi\n",
            "Thanks.",
            id="original-message",
        ),
        pytest.param(
            "Thanks.\n\nFrom: Support <support@kurs.example>\nSent: Tuesday, November 3, 2026\n"
            "To: John <john@example.com>\nSubject: Your certificate\n\nHi John\n",
            "Thanks.",
            id="outlook-english-header-block",
        ),
        pytest.param(
            "Takk.\n\n*Fra:* Kundeservice <support@kurs.example>\n*Sendt:* 3. november 2026\n"
            "*Til:* Kari\n*Emne:* Kursbevis\n\nHei\n",
            "Takk.",
            id="outlook-norwegian-starred",
        ),
        pytest.param(
            "Ja takk\n\nSendt fra min iPhone\n\n> Den 3. nov. 2026 kl. 10:15 skrev "
            "Kundeservice <support@kurs.example>:\n> Hei\n",
            "Ja takk",
            id="sendt-fra-min-iphone",
        ),
        pytest.param("Fint!\n\nSent from my iPhone\n", "Fint!", id="sent-from-my-iphone"),
        pytest.param("Fint!\n\nSendt fra Outlook for Android\n", "Fint!", id="outlook-android"),
        pytest.param("Great!\n\nGet Outlook for iOS\n", "Great!", id="outlook-ios"),
        pytest.param(
            "Hei\n\nSvaret mitt.\n\n-- \nKari Nordmann\nHMS-ansvarlig\n",
            "Hei\n\nSvaret mitt.",
            id="rfc3676-signature",
        ),
        pytest.param(
            "Svaret mitt.\n--\nKari\n\nOn Tue, 3 Nov 2026 at 10:15, S <s@kurs.example> wrote:\n> x",
            "Svaret mitt.",
            id="signature-above-history",
        ),
    ],
)
def test_quoted_history_and_signature_are_cut(text: str, expected: str) -> None:
    assert extract_reply(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "On Tue, 3 Nov 2026 at 10:15, Kari <kari@example.no> wrote:\n"
            "> Spørsmål?\n\nSvar her.\n",
            id="bottom-posted",
        ),
        pytest.param(
            "> Første spørsmål\nFørste svar\n> Andre spørsmål\nAndre svar\n", id="interleaved"
        ),
        pytest.param(
            "Hei!\n\nDen 3. mars skrev dere at jeg får refusjon, men:\n- ingenting skjedde\n",
            id="own-sentence-ending-in-skrev",
        ),
        pytest.param("Som jeg skrev:\nKurset virker ikke.\n", id="weak-attribution-unquoted"),
        pytest.param(
            "Se under.\n\n---------- Forwarded message ---------\nFrom: Kari <kari@example.no>\n"
            "Date: Tue, 3 Nov 2026\nSubject: Kurs\nTo: Per\n\nHei Per, ...\n",
            id="forward-kept",
        ),
        pytest.param(
            "Sendt fra Oslo kl. 10, men kurset starter i Bergen.\nHilsen Per", id="sendt-fra"
        ),
    ],
)
def test_when_unsure_the_text_is_kept(text: str) -> None:
    assert extract_reply(text) == text.strip("\n")


@pytest.mark.parametrize(
    "text",
    [
        "> alt er sitert\n> her\n",
        "On Tue, 3 Nov 2026 at 10:15, Kari <kari@example.no> wrote:\n> Hei\n",
        "-- \nBare signatur\n",
        "Sent from my iPhone",
        "   \n",
    ],
)
def test_a_message_that_would_come_out_empty_is_returned_whole(text: str) -> None:
    reply = extract_reply(text)

    assert reply
    assert reply.strip() == text.strip()


def test_windows_line_endings_are_understood() -> None:
    text = "Takk!\r\n\r\nOn Tue, 3 Nov 2026 at 10:15, Kari <kari@example.no> wrote:\r\n> Hei\r\n"

    assert extract_reply(text) == "Takk!"
