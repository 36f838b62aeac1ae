"""Reading bounces: which of our messages failed, for whom, and whether for good."""

from __future__ import annotations

import string
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from helpdesk.inbound.bounces import find_bounced_message_ids
from helpdesk.signing import make_message_id, make_reply_address

SECRET_KEY = "bounce-tests-secret-0123456789abc"
SUPPORT = "support@kurs.example"
DATA = Path(__file__).parent / "data" / "machine"


def parse(text: str) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(text.encode("utf-8"))


def load(name: str, message_id: str, ticket: int = 1042) -> EmailMessage:
    template = string.Template((DATA / name).read_text(encoding="utf-8"))
    return parse(
        template.safe_substitute(
            our_message_id=message_id,
            reply_address=make_reply_address(SECRET_KEY, SUPPORT, ticket),
        )
    )


def test_postfix_dsn_names_our_message_the_recipient_and_a_permanent_failure() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 1042)
    report = find_bounced_message_ids(load("postfix-dsn.eml", ours))

    assert report.message_ids == (ours,)
    assert report.failed_recipients == ("kari.nordmann@example.no",)
    assert report.permanent is True
    assert report.recipients[0].status == "5.1.1"
    assert report.diagnostic == (
        "550 5.1.1 <kari.nordmann@example.no>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert report.ticket_numbers(SECRET_KEY, SUPPORT) == (1042,)


def test_exchange_ndr_with_returned_headers_only() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 1042)
    report = find_bounced_message_ids(load("exchange-ndr.eml", ours))

    assert report.message_ids == (ours,)
    assert report.failed_recipients == ("ola.hansen@bedrift.example.no",)
    assert report.permanent is True
    assert report.diagnostic.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient ")
    assert "\n" not in report.diagnostic


def test_exim_text_bounce_is_read_from_the_quoted_copy() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 1043)
    report = find_bounced_message_ids(load("exim-failure.eml", ours, ticket=1043))

    assert report.message_ids == (ours,)
    assert report.failed_recipients == ("per.olsen@skole.example.no",)
    assert report.permanent is True
    assert report.diagnostic == (
        "550 5.1.1 <per.olsen@skole.example.no>: Recipient address rejected: User unknown"
    )
    assert make_reply_address(SECRET_KEY, SUPPORT, 1043) in report.reply_addresses
    assert report.ticket_numbers(SECRET_KEY, SUPPORT) == (1043,)


def test_qmail_failure_notice() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 9)
    report = find_bounced_message_ids(
        parse(
            "From: MAILER-DAEMON@mail.example.no\nTo: support@kurs.example\n"
            "Subject: failure notice\n\n"
            "Hi. This is the qmail-send program at mail.example.no.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            "<anne.lie@example.no>:\n"
            "203.0.113.9 does not like recipient.\n"
            "Remote host said: 550 5.1.1 <anne.lie@example.no>... User unknown\n"
            "Giving up on 203.0.113.9.\n\n"
            "--- Below this line is a copy of the message.\n\n"
            "Return-Path: <support@kurs.example>\n"
            "From: support@kurs.example\n"
            f"Message-ID: <{ours}>\n"
            "Subject: [#9] Kursbevis\n\nHei Anne, ...\n"
        )
    )

    assert report.message_ids == (ours,)
    assert report.failed_recipients == ("anne.lie@example.no",)
    assert report.permanent is True
    assert report.diagnostic == "Remote host said: 550 5.1.1 <anne.lie@example.no>... User unknown"


def test_delayed_dsn_is_temporary() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 12)
    report = find_bounced_message_ids(
        parse(
            "From: MAILER-DAEMON@mx.kurs.example (Mail Delivery System)\n"
            "Subject: Delayed Mail (still being retried)\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nThis is a warning only.\n"
            "--b\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.kurs.example\n\n"
            "Final-Recipient: rfc822; ola@treg.example.no\nAction: delayed\nStatus: 4.4.1\n"
            "Diagnostic-Code: X-Postfix; connect to mx.treg.example.no[203.0.113.7]:25:\n"
            "    Connection timed out\n\n"
            "--b\nContent-Type: text/rfc822-headers\n\n"
            f"From: support@kurs.example\nMessage-ID: <{ours}>\n\n"
            "--b--\n"
        )
    )

    assert report.permanent is False
    assert report.failed_recipients == ("ola@treg.example.no",)
    assert report.diagnostic == (
        "connect to mx.treg.example.no[203.0.113.7]:25: Connection timed out"
    )
    assert report.message_ids == (ours,)


def test_exim_delay_warning_without_a_status_code_is_temporary() -> None:
    report = find_bounced_message_ids(
        parse(
            "From: Mail Delivery System <Mailer-Daemon@mail.example.no>\n"
            "X-Failed-Recipients: nils@treg.example.no\n"
            "Subject: Warning: message 1rkOzb-0004Zq-1T delayed 24 hours\n\n"
            "This message was created automatically by mail delivery software.\n"
            "A message that you sent has not yet been delivered to one or more of its\n"
            "recipients after more than 24 hours on the queue on mail.example.no.\n"
        )
    )
    assert report.permanent is False
    assert report.failed_recipients == ("nils@treg.example.no",)


def test_text_bounce_quoting_only_our_reply_address_still_finds_the_ticket() -> None:
    reply_address = make_reply_address(SECRET_KEY, SUPPORT, 1050)
    report = find_bounced_message_ids(
        parse(
            "From: postmaster@kommune.example.no\nSubject: Kan ikke leveres: Kursbevis\n\n"
            "Meldingen kunne ikke leveres til mottakeren.\n\n"
            "-----Original Message-----\n"
            f"From: =?utf-8?q?Kursst=C3=B8tte?= <{SUPPORT}>\n"
            f"Reply-To: <{reply_address}>\n"
            "Subject: [#1050] Kursbevis\n"
        )
    )
    assert report.message_ids == ()
    assert report.ticket_numbers(SECRET_KEY, SUPPORT) == (1050,)
    assert report.permanent is True  # a failure notice, not a delay warning


def test_dsn_without_returned_content_falls_back_to_in_reply_to() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 31)
    report = find_bounced_message_ids(
        parse(
            "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
            f"In-Reply-To: <{ours}>\n"
            "References: <older-thread-message@kurs.example>\n"
            "Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; googlemail.com\n\n"
            "Final-Recipient: rfc822; siri@example.no\nAction: failed\nStatus: 5.2.1\n"
            "Diagnostic-Code: smtp; 550 5.2.1 The email account that you tried to reach\n"
            "    is disabled.\n"
            "--b--\n"
        )
    )
    assert report.message_ids == (ours,)
    assert report.ticket_numbers(SECRET_KEY, SUPPORT) == (31,)


def test_messages_attached_inside_the_returned_original_are_not_counted() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 40)
    forwarded = make_message_id(SECRET_KEY, "kurs.example", 41)
    report = find_bounced_message_ids(
        parse(
            "From: MAILER-DAEMON@mx.kurs.example\nSubject: Undelivered Mail Returned to Sender\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.kurs.example\n\n"
            "Final-Recipient: rfc822; kari@example.no\nAction: failed\nStatus: 5.1.1\n\n"
            "--b\nContent-Type: message/rfc822\n\n"
            f"From: support@kurs.example\nMessage-ID: <{ours}>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="inner"\n\n'
            "--inner\nContent-Type: text/plain\n\nVideresendt melding vedlagt.\n"
            "--inner\nContent-Type: message/rfc822\n\n"
            f"From: support@kurs.example\nMessage-ID: <{forwarded}>\n\nEldre melding.\n"
            "--inner--\n\n--b--\n"
        )
    )
    assert report.message_ids == (ours,)


def test_unsigned_message_ids_name_no_ticket() -> None:
    report = find_bounced_message_ids(
        parse(
            "From: MAILER-DAEMON@mx.kurs.example\nSubject: failure notice\n\n"
            "<kari@example.no>:\nRemote host said: 550 5.1.1 User unknown\n\n"
            "--- Below this line is a copy of the message.\n\n"
            "Message-ID: <1234.5678@somewhere.example>\nFrom: someone@somewhere.example\n"
        )
    )
    assert report.message_ids == ("1234.5678@somewhere.example",)
    assert report.ticket_numbers(SECRET_KEY, SUPPORT) == ()


def test_html_only_ndr_quoting_the_original_headers() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 60)
    report = find_bounced_message_ids(
        parse(
            "From: postmaster@kommune.example.no\nSubject: Undeliverable: Kursbevis\n"
            "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
            "<html><body><p>Delivery has failed to these recipients:</p>"
            "<p>eva.dahl@kommune.example.no<br>Remote Server returned "
            "'550 5.7.1 Delivery not authorized'</p>"
            "<p><b>Original message headers:</b></p><pre>"
            "From: Kursst&#248;tte &lt;support@kurs.example&gt;\n"
            f"Message-ID: &lt;{ours}&gt;\nSubject: [#60] Kursbevis\n</pre></body></html>\n"
        )
    )
    assert report.message_ids == (ours,)
    assert report.failed_recipients == ("eva.dahl@kommune.example.no",)
    assert report.diagnostic == "Remote Server returned '550 5.7.1 Delivery not authorized'"
    assert report.permanent is True
