"""Parsing raw inbound mail: charsets, headers, bodies, attachments and sanitised HTML.

Pure unit tests on the Norwegian-language fixtures in tests/data/parse_*.eml.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.inbound.charsets import decode_text, resolve_charset
from helpdesk.inbound.encoded_words import decode_header_text
from helpdesk.inbound.filenames import sanitise_filename
from helpdesk.inbound.html import html_to_text
from helpdesk.inbound.parse import ParsedMessage, parse_message
from helpdesk.inbound.sanitise import rewrite_cid_urls, sanitise_html

DATA = Path(__file__).parent / "data"
PDF_START = b"%PDF-1.4"


def parse_fixture(name: str, **options: int) -> ParsedMessage:
    return parse_message((DATA / name).read_bytes(), **options)


def mail(headers: str, body: bytes = b"Hei\r\n") -> bytes:
    return headers.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


# --- charsets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "subject", "from_name", "phrase"),
    [
        (
            "parse_utf8_plain.eml",
            "Finner ikke kursbeviset på Min side",
            "Åse Ødegård",
            "Blåbærsyltetøy til den som svarer først.",
        ),
        (
            "parse_latin1_plain.eml",
            "Får ikke logget inn på førstehjelpskurset",
            "Åse Ødegård",
            "Kurset «Førstehjelp på arbeidsplassen» er kjøpt",
        ),
        (
            "parse_latin9.eml",
            "Feil beløp € på ordre 100234",
            "Øystein Blåbær",
            "Jeg ble trukket 1 490 € for teorikurset",
        ),
        (
            "parse_windows1252.eml",
            "“HMS for ledere” – neste kurs",
            "Kjærsti Ødegård",
            "Kurset “HMS for ledere” – når starter neste runde?",
        ),
        (
            "parse_mislabelled_charset.eml",
            "Feilmelding når jeg laster ned kursbevis",
            "Gøril Sæther",
            "Jeg prøver å laste ned kursbeviset, men får en feilmelding: «Noe gikk galt».",
        ),
        (
            "parse_ascii_but_windows1252.eml",
            "Re: Kursbevis [#1042]",
            "Per Hansen",
            "Takk for raskt svar – det fungerte! “Kursbevis” ligger nå under «Mine kurs».",
        ),
    ],
)
def test_norwegian_letters_come_out_right_whatever_the_charset(
    fixture: str, subject: str, from_name: str, phrase: str
) -> None:
    parsed = parse_fixture(fixture)

    assert parsed.subject == subject
    assert parsed.from_name == from_name
    assert phrase in parsed.text
    assert not parsed.unparseable


def test_utf8_body_labelled_iso_8859_1_is_read_as_utf8_and_the_lie_is_noted() -> None:
    parsed = parse_fixture("parse_mislabelled_charset.eml")

    assert "Ã" not in parsed.text
    assert "declared iso-8859-1 but the content is UTF-8" in parsed.defects


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf8", "utf-8"),
        ("UTF-8", "utf-8"),
        ('"utf-8"', "utf-8"),
        ("latin1", "cp1252"),
        ("ISO-8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("iso-8859-15", "iso8859-15"),
        ("windows-1252", "cp1252"),
        ("x-unknown", None),
        ("unknown-8bit", None),
        ("base64", None),
        ("unicode_escape", None),
        ("no-such-charset", None),
        (None, None),
    ],
)
def test_charset_labels_resolve_to_a_safe_codec_or_none(label: str | None, codec: str) -> None:
    assert resolve_charset(label) == codec


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        ("blåbærsyltetøy".encode(), "utf-8"),
        ("blåbærsyltetøy".encode(), "us-ascii"),
        ("blåbærsyltetøy".encode(), "x-unknown"),
        ("blåbærsyltetøy".encode("cp1252"), "utf-8"),
        ("blåbærsyltetøy".encode("cp1252"), None),
        ("blåbærsyltetøy".encode("latin-1"), "unknown-8bit"),
        ("blåbærsyltetøy".encode("iso8859-15"), "iso-8859-15"),
    ],
)
def test_decoding_falls_back_until_the_text_reads_right(data: bytes, declared: str | None) -> None:
    assert decode_text(data, declared).text == "blåbærsyltetøy"


def test_text_mixing_utf8_and_windows_1252_bytes_keeps_both_readable() -> None:
    data = "Kari Nordmann – ".encode() + "Ærlig".encode("cp1252")

    assert decode_text(data, "utf-8").text == "Kari Nordmann – Ærlig"


# --- header fields -----------------------------------------------------------------


def test_encoded_words_split_inside_a_multibyte_letter_are_joined() -> None:
    # "Å" is C3 85 in UTF-8; some mailers cut encoded words between the two bytes.
    assert decode_header_text("=?utf-8?q?=C3?= =?utf-8?q?=85se?=") == "Åse"


def test_header_decoding_survives_bad_base64_and_unknown_charsets() -> None:
    assert decode_header_text("=?utf-8?b?w6b=?= og =?x-unknown?q?=E6=F8=E5?=") == "æ og æøå"
    assert decode_header_text("=?utf-8?b?!!!?=") == ""


def test_subject_is_one_printable_line() -> None:
    raw = mail("From: a@example.no\nSubject: Hei\tder\n  \u202egnippil\n\t\x01 neste linje")

    assert parse_message(raw).subject == "Hei der gnippil neste linje"


def test_sender_domain_is_lower_cased_and_the_local_part_kept() -> None:
    parsed = parse_fixture("parse_outlook_reply_nb.eml")

    assert parsed.from_address == "Kari@bygg.example"


def test_addresses_of_to_cc_and_reply_to_are_collected() -> None:
    raw = mail(
        "From: Kari <kari@example.no>\n"
        "To: Kundeservice <support@kurs.example>, ola@EXAMPLE.no\n"
        "To: undisclosed-recipients:;\n"
        'Cc: "Nordmann, Per" <per@example.no>\n'
        "Reply-To: svar@example.no"
    )
    parsed = parse_message(raw)

    assert parsed.to == ["support@kurs.example", "ola@example.no"]
    assert parsed.cc == ["per@example.no"]
    assert parsed.reply_to == ["svar@example.no"]


def test_a_second_from_field_is_ignored_and_reported() -> None:
    parsed = parse_fixture("parse_malformed.eml")

    assert parsed.from_address == "trond@example.no"
    assert "2 From fields; the first is used" in parsed.defects


def test_unusable_from_gives_no_address_rather_than_a_wrong_one() -> None:
    parsed = parse_message(mail("From: Kari Nordmann\nSubject: Hei"))

    assert parsed.from_address is None
    assert "From has no usable address" in parsed.defects


def test_message_ids_lose_their_angle_brackets() -> None:
    parsed = parse_fixture("parse_outlook_reply_nb.eml")

    assert parsed.message_id == "AM0PR01MB1234ABCD@AM0PR01MB1234.eurprd01.prod.outlook.com"
    assert parsed.in_reply_to == ["k3j4h5g6f7d8s9a0.1042.p0o9i8u7y6t5r4e3@kurs.example"]
    assert parsed.references == ["k3j4h5g6f7d8s9a0.1042.p0o9i8u7y6t5r4e3@kurs.example"]


def test_references_are_read_across_folded_lines_with_comments_and_duplicates() -> None:
    raw = mail(
        "From: a@example.no\nMessage-ID: naked-id@example.no\n"
        "In-Reply-To: <b@x.no> (Kari Nordmann's message of tir. 3. nov.)\n"
        "References: <a@x.no>\n <b@x.no>\t<a@x.no>"
    )
    parsed = parse_message(raw)

    assert parsed.message_id == "naked-id@example.no"
    assert parsed.in_reply_to == ["b@x.no"]
    assert parsed.references == ["a@x.no", "b@x.no"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Tue, 3 Nov 2026 10:15:00 +0100", datetime(2026, 11, 3, 9, 15, tzinfo=UTC)),
        ("3 Nov 2026 10:15:00 -0000", datetime(2026, 11, 3, 10, 15, tzinfo=UTC)),
        ("Tue, 3 Nov 2026 10:15:00 CET", datetime(2026, 11, 3, 10, 15, tzinfo=UTC)),
        ("2026-11-03T10:15:00+01:00", datetime(2026, 11, 3, 9, 15, tzinfo=UTC)),
        ("32 Foo 2026 25:61:00 +0100", None),
    ],
)
def test_date_becomes_aware_utc(field: str, expected: datetime | None) -> None:
    assert parse_message(mail(f"From: a@example.no\nDate: {field}")).date == expected


def test_rules_can_read_any_header_decoded_and_the_original_message() -> None:
    parsed = parse_fixture("parse_bounce.eml")

    assert parsed.header("auto-submitted") == "auto-replied"
    assert parsed.header("Return-Path") == "<>"
    assert parsed.header("X-Not-There") is None
    assert parsed.email.get_content_type() == "multipart/report"
    assert parsed.email.get_param("report-type") == "delivery-status"


# --- bodies ------------------------------------------------------------------------


def test_multipart_alternative_prefers_the_plain_text() -> None:
    parsed = parse_fixture("parse_alternative.eml")

    assert parsed.text == "Hei! Hvor lenge har jeg tilgang til teorikurset etter kjøp?"
    assert parsed.html is not None and "<i>teorikurset</i>" in parsed.html
    assert "tracker.example" not in parsed.html


def test_html_only_mail_gets_readable_text() -> None:
    parsed = parse_fixture("parse_html_only.eml")

    assert parsed.text.startswith("Hei kundeservice,\n\nVi ønsker å bestille kurs i arbeid")
    assert "bestillingen vår (https://firma.example/bestilling)" in parsed.text
    assert "- Kari Nordmann\n- Ola Nordmann" in parsed.text
    assert "document.cookie" not in parsed.text
    assert "background" not in parsed.text


def test_html_is_sanitised_before_it_is_kept() -> None:
    html = parse_fixture("parse_html_only.eml").html or ""

    for unsafe in ("<script", "document.cookie", "onload", "onclick", "style", "tracker.example"):
        assert unsafe not in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert '<img src="cid:logo-2026@firma.example" alt="Firmalogo">' in html


def test_cid_images_can_be_pointed_at_stored_attachments() -> None:
    parsed = parse_fixture("parse_html_only.eml")
    logo = parsed.attachments[0]

    html = rewrite_cid_urls(parsed.html or "", {logo.content_id or "": "/api/v1/attachments/17"})

    assert '<img src="/api/v1/attachments/17" alt="Firmalogo">' in html
    assert "cid:" not in html


def test_format_flowed_lines_are_joined_into_paragraphs() -> None:
    parsed = parse_fixture("parse_iphone_reply_nb.eml")

    assert parsed.text.startswith(
        "Takk for hjelpen! Jeg tar kurset igjen neste uke når jeg har fri fra jobben.\n"
    )


def test_nul_and_control_bytes_never_reach_the_text() -> None:
    parsed = parse_fixture("parse_malformed.eml")

    assert parsed.text == "Rødgrød med fløte  og ærlig talt."


def test_multipart_without_boundary_keeps_its_content_as_text() -> None:
    raw = mail("From: a@example.no\nContent-Type: multipart/mixed", b"Hei, her er teksten.\r\n")
    parsed = parse_message(raw)

    assert parsed.text == "Hei, her er teksten."
    assert any("no boundary" in defect for defect in parsed.defects)


def test_empty_plain_alternative_falls_back_to_the_html() -> None:
    body = (
        b"--a\r\nContent-Type: text/plain\r\n\r\n\r\n"
        b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Bare HTML her</p>\r\n--a--\r\n"
    )
    raw = mail('From: a@example.no\nContent-Type: multipart/alternative; boundary="a"', body)

    assert parse_message(raw).text == "Bare HTML her"


# --- attachments -------------------------------------------------------------------


def test_rfc2231_filename_with_norwegian_letters_is_decoded() -> None:
    first = parse_fixture("parse_attachment_filenames.eml").attachments[0]

    assert first.filename == "Kursbevis_Åse_Ødegård.pdf"
    assert first.content_type == "application/pdf"
    assert first.content.startswith(PDF_START)
    assert first.size == len(first.content)
    assert not first.inline


def test_rfc2047_encoded_name_parameter_is_decoded() -> None:
    second = parse_fixture("parse_attachment_filenames.eml").attachments[1]

    assert second.filename == "Kvittering for blåbær-kurs.pdf"


def test_filenames_lose_paths_and_direction_overrides() -> None:
    attachments = parse_fixture("parse_attachment_filenames.eml").attachments

    assert attachments[2].filename == "passwd"
    assert attachments[3].filename == "fakturafdp.exe"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\fakepath\\Kursbevis.pdf", "Kursbevis.pdf"),
        ("..", "attachment.pdf"),
        ("  .skjult  ", "skjult"),
        ("Kursbevis_A\u030ase.pdf", "Kursbevis_Åse.pdf"),  # macOS sends decomposed letters
        ('rapport "endelig"?.pdf', "rapport _endelig__.pdf"),
        ("=?utf-8?q?=C3=85rsrapport.pdf?=", "Årsrapport.pdf"),
        (None, "attachment.pdf"),
    ],
)
def test_sanitise_filename(raw: str | None, expected: str) -> None:
    assert sanitise_filename(raw, "application/pdf") == expected


def test_overlong_filename_is_cut_but_keeps_its_extension() -> None:
    name = sanitise_filename("å" * 500 + ".pdf", "application/pdf")

    assert len(name) == 200
    assert name.endswith("å.pdf")


def test_inline_image_keeps_its_content_id() -> None:
    logo = parse_fixture("parse_html_only.eml").attachments[0]

    assert (logo.filename, logo.content_type) == ("logo.png", "image/png")
    assert logo.content_id == "logo-2026@firma.example"
    assert logo.inline
    assert logo.content.startswith(b"\x89PNG")


def test_attachment_over_the_limit_is_listed_but_not_decoded() -> None:
    parsed = parse_fixture("parse_attachment_filenames.eml", max_attachment_bytes=30)
    pdf = parsed.attachments[0]

    assert pdf.omitted
    assert pdf.content == b""
    assert pdf.size > 30
    assert parsed.attachments[2].content == b"root:x:0:0"  # small ones are still there


def test_bounce_report_parts_are_attachments_with_useful_names() -> None:
    parsed = parse_fixture("parse_bounce.eml")

    assert parsed.from_address == "MAILER-DAEMON@mx.kurs.example"
    assert parsed.text.startswith("This is the mail system at host mx.kurs.example.")
    names = [(a.filename, a.content_type) for a in parsed.attachments]
    assert names == [
        ("delivery-status.txt", "message/delivery-status"),
        ("original-headers.txt", "text/rfc822-headers"),
    ]
    assert b"Status: 5.1.1" in parsed.attachments[0].content


def test_attached_message_is_kept_whole_and_named_after_its_subject() -> None:
    inner = mail("From: kari@example.no\nSubject: =?utf-8?q?M=C3=B8tereferat?=", b"Referat\r\n")
    body = (
        b"--m\r\nContent-Type: text/plain\r\n\r\nSe vedlagt.\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--m--\r\n"
    )
    parsed = parse_message(
        mail('From: a@example.no\nContent-Type: multipart/mixed; boundary="m"', body)
    )

    assert parsed.text == "Se vedlagt."
    [attached] = parsed.attachments
    assert attached.filename == "Møtereferat.eml"
    assert attached.content_type == "message/rfc822"
    assert parse_message(attached.content).text == "Referat"


# --- what cannot be read -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x01\x02\xff", b"just some text\nwith lines\n", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"],
)
def test_input_that_is_not_mail_is_flagged_unparseable_with_a_reason(raw: bytes) -> None:
    parsed = parse_message(raw)

    assert parsed.unparseable
    assert parsed.unparseable_reason
    assert parsed.unparseable_reason in parsed.defects


def test_malformed_mail_is_still_read_and_its_problems_listed() -> None:
    parsed = parse_fixture("parse_malformed.eml")

    assert not parsed.unparseable
    assert parsed.subject == "æøå og æ mer"
    assert parsed.from_name == "Trønderæ"
    assert parsed.date is None
    assert [a.filename for a in parsed.attachments] == ["Årsrapport.pdf", "notat.txt"]
    assert "unreadable Date field" in parsed.defects
    assert any("close boundary" in defect for defect in parsed.defects)
    assert any("base64" in defect for defect in parsed.defects)


def test_deeply_nested_multiparts_are_quarantined_with_their_header_fields() -> None:
    depth = 3000
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    headers = (
        "From: Kari <kari@example.no>\nSubject: Dypt\nContent-Type: multipart/mixed; boundary=b0"
    )

    parsed = parse_message(mail(headers, opening + b"Hei\r\n"))

    assert parsed.unparseable
    assert (parsed.from_address, parsed.subject) == ("kari@example.no", "Dypt")


def test_a_flood_of_mime_parts_is_quarantined_without_reading_the_body() -> None:
    parts = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 6000 + b"--b--\r\n"
    headers = (
        "From: Kari <kari@example.no>\nSubject: Mange\nContent-Type: multipart/mixed; boundary=b"
    )

    parsed = parse_message(mail(headers, parts))

    assert parsed.unparseable
    assert parsed.unparseable_reason == "more than 5,000 MIME boundary lines"
    assert (parsed.from_address, parsed.subject, parsed.text) == ("kari@example.no", "Mange", "")


def test_a_very_long_recipient_list_is_still_read() -> None:
    recipients = ", ".join(f"deltaker{i}@example.no" for i in range(3000))

    parsed = parse_message(mail(f"From: kari@example.no\nTo: {recipients}"))

    assert len(parsed.to) == 3000
    assert parsed.to[-1] == "deltaker2999@example.no"


# --- HTML helpers --------------------------------------------------------------------


def test_html_to_text_layout() -> None:
    html = (
        "<p>Hei Kari,</p><p>Takk for&nbsp;sist!<br>Se <a href='https://kurs.example/bevis'>"
        "kursbeviset</a> eller skriv til <a href='mailto:post@kurs.example'>post@kurs.example"
        "</a>.</p><ol><li>Logg inn</li><li>Last ned</li></ol><style>p{}</style>"
    )

    assert html_to_text(html) == (
        "Hei Kari,\n\nTakk for sist!\nSe kursbeviset (https://kurs.example/bevis) "
        "eller skriv til post@kurs.example.\n\n1. Logg inn\n2. Last ned"
    )


def test_html_blockquotes_become_quoted_lines() -> None:
    html = (
        "<div>Takk!</div><div>On Tue, Kari wrote:<blockquote>Hei<br><br>Ny linje</blockquote></div>"
    )

    assert html_to_text(html) == "Takk!\nOn Tue, Kari wrote:\n\n> Hei\n>\n> Ny linje"


@pytest.mark.parametrize(
    ("html", "kept"),
    [
        ('<a href="javascript:alert(1)">x</a>', "<a"),
        ('<img src="//tracker.example/p.gif">', "<img>"),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "<img>"),
        ('<img src="data:image/png;base64,iVBOR">', 'src="data:image/png;base64,iVBOR"'),
        ('<a href="data:text/html,x">x</a>', "<a"),
        ('<form action="https://evil.example"><input name="p"></form>', ""),
        ('<base href="https://evil.example/"><iframe src="https://evil.example"></iframe>', ""),
        ('<table background="https://t.example/x.png"><tr><td>t</td></tr></table>', "<td>t</td>"),
    ],
)
def test_sanitiser_removes_active_and_remote_content(html: str, kept: str) -> None:
    cleaned = sanitise_html(html)

    assert kept in cleaned
    for forbidden in ("javascript", "//tracker", "svg", "data:text", "form", "evil", "background"):
        assert forbidden not in cleaned
