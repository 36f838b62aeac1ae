"""Machine-mail rules: which inbound mail is automatic, and why (issue 3 item 4)."""

from __future__ import annotations

import string
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.inbound.bounces import find_bounced_message_ids
from helpdesk.inbound.rules import (
    LOOP_HEADER,
    RULES,
    AutoReplyRule,
    RuleContext,
    classify,
)
from helpdesk.signing import make_message_id, make_reply_address

SECRET_KEY = "machine-rules-secret-0123456789ab"
SUPPORT = "support@kurs.example"
DATA = Path(__file__).parent / "data" / "machine"
CONTEXT = RuleContext(support_address=SUPPORT, secret_key=SECRET_KEY)


def load(name: str, ticket: int = 1042) -> EmailMessage:
    """A fixture from tests/data/machine with our signed identifiers for `ticket` filled in."""
    template = string.Template((DATA / name).read_text(encoding="utf-8"))
    text = template.safe_substitute(
        our_message_id=make_message_id(SECRET_KEY, "kurs.example", ticket),
        reply_address=make_reply_address(SECRET_KEY, SUPPORT, ticket),
    )
    return BytesParser(policy=policy.default).parsebytes(text.encode("utf-8"))


def mail(headers: dict[str, str], body: str = "Hei,\n\nnoe tekst.\n") -> EmailMessage:
    """A small message from a learner with the given headers on top of the usual ones."""
    lines = {
        "From": "Kari Nordmann <kari.nordmann@example.no>",
        "To": SUPPORT,
        "Subject": "Spørsmål om kursbevis",
        "Message-ID": "<20240315104229.1a2b@example.no>",
        "Date": "Fri, 15 Mar 2024 11:42:29 +0100",
        **headers,
    }
    raw = "".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None)
    raw += "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" + body
    return BytesParser(policy=policy.default).parsebytes(raw.encode("utf-8"))


def assert_readable(reason: str, kind: str) -> None:
    assert reason.startswith(f"{kind}: ")
    assert "\n" not in reason and len(reason) < 200
    assert "kari.nordmann" not in reason  # reasons are shown and logged: no learner address


@pytest.mark.parametrize(
    ("fixture", "kind", "evidence"),
    [
        ("postfix-dsn.eml", "bounce", "delivery-status"),
        ("exchange-ndr.eml", "bounce", "delivery-status"),
        ("exim-failure.eml", "bounce", "X-Failed-Recipients"),
        ("gmail-vacation.eml", "auto-reply", "Auto-Submitted: auto-replied"),
        ("fravaersmelding.eml", "auto-reply", "Fraværsmelding"),
        ("mailman-post.eml", "list", "List-Id: Kursledere i Vestland"),
        ("own-reply-loop.eml", "loop", "Message-ID is one we signed for ticket #1042"),
    ],
)
def test_machine_mail_fixture_is_classified_with_a_readable_reason(
    fixture: str, kind: str, evidence: str
) -> None:
    result = classify(load(fixture), CONTEXT)

    assert result is not None
    assert result.kind == kind
    assert evidence in result.reason
    assert_readable(result.reason, kind)


def test_human_reply_from_outlook_is_not_machine_mail() -> None:
    assert classify(load("human-reply.eml"), CONTEXT) is None


def test_rules_run_loop_bounce_auto_reply_list_rate_limit_in_that_order() -> None:
    assert [rule.name for rule in RULES] == ["loop", "bounce", "auto-reply", "list", "rate-limit"]


def test_postfix_bounce_with_auto_submitted_is_a_bounce_not_an_auto_reply() -> None:
    message = load("postfix-dsn.eml")
    assert message["Auto-Submitted"] == "auto-replied"
    assert AutoReplyRule().check(message, CONTEXT) is not None

    result = classify(message, CONTEXT)
    assert result is not None and result.kind == "bounce"


# --- loop ------------------------------------------------------------------------------------


def test_our_signed_message_id_coming_back_is_a_loop_even_from_a_stranger() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 77)
    result = classify(mail({"Message-ID": f"<{ours}>"}), CONTEXT)

    assert result is not None and result.kind == "loop"
    assert result.reason == "loop: the Message-ID is one we signed for ticket #77"


def test_message_id_signed_with_another_key_is_not_ours() -> None:
    theirs = make_message_id("another-helpdesk-key-0123456789ab", "kurs.example", 77)
    assert classify(mail({"Message-ID": f"<{theirs}>"}), CONTEXT) is None


def test_mail_from_our_support_address_is_a_loop() -> None:
    result = classify(mail({"From": "Kursstøtte <Support@Kurs.Example>"}), CONTEXT)
    assert result is not None
    assert result.reason == "loop: From is our own support address"


def test_mail_from_our_signed_reply_address_is_a_loop() -> None:
    reply_address = make_reply_address(SECRET_KEY, SUPPORT, 1042)
    result = classify(mail({"From": f"Kursstøtte <{reply_address}>"}), CONTEXT)
    assert result is not None
    assert result.reason == "loop: From is our signed reply address for ticket #1042"


@pytest.mark.parametrize("header", [LOOP_HEADER, "X-Loop"])
def test_loop_stamp_with_our_address_is_a_loop(header: str) -> None:
    result = classify(mail({header: SUPPORT}), CONTEXT)
    assert result is not None and result.kind == "loop"
    assert header in result.reason


def test_loop_stamp_of_another_helpdesk_is_human_mail() -> None:
    # Another course provider on this software stamps its operators' replies with its address.
    assert (
        classify(mail({LOOP_HEADER: "kundeservice@annen-kursleverandor.example"}), CONTEXT) is None
    )


def test_own_notification_with_null_return_path_is_a_loop_not_a_bounce() -> None:
    ours = make_message_id(SECRET_KEY, "kurs.example", 5)
    result = classify(mail({"Message-ID": f"<{ours}>", "Return-Path": "<>"}), CONTEXT)
    assert result is not None and result.kind == "loop"


# --- bounce ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "mta"),
    [
        ("Kan ikke leveres: [#1042] Kursbevis for HMS-kurs", "Norwegian"),
        ("Undeliverable: [#1042] Kursbevis for HMS-kurs", "Exchange"),
        ("Delivery Status Notification (Failure)", "Gmail"),
        ("failure notice", "qmail"),
        ("Mail delivery failed: returning message to sender", "Exim"),
        ("Returned mail: see transcript for details", "Sendmail"),
        ("Undelivered Mail Returned to Sender", "Postfix"),
    ],
)
def test_home_made_bounce_is_recognised_by_its_subject(subject: str, mta: str) -> None:
    message = mail({"From": "Systemadministrator <drift@kommune.example.no>", "Subject": subject})
    result = classify(message, CONTEXT)

    assert result is not None and result.kind == "bounce"
    assert mta in result.reason
    assert_readable(result.reason, "bounce")


def test_forwarded_bounce_from_a_colleague_is_human_mail() -> None:
    assert classify(mail({"Subject": "VS: Kan ikke leveres: kursbevis"}), CONTEXT) is None


@pytest.mark.parametrize(
    "sender",
    [
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "MAILER-DAEMON@mx.example.no (Mail Delivery System)",
        "postmaster@kommune.example.no",
        "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@bedrift.example.no>",
    ],
)
def test_mail_from_a_delivery_system_is_a_bounce(sender: str) -> None:
    result = classify(mail({"From": sender, "Subject": "Hei"}), CONTEXT)
    assert result is not None and result.kind == "bounce"
    assert result.reason.startswith("bounce: sent by ")


def test_null_return_path_alone_marks_a_bounce() -> None:
    result = classify(mail({"Return-Path": "<>"}), CONTEXT)
    assert result is not None
    assert result.reason == "bounce: empty Return-Path (<>), as delivery reports are sent"


def test_out_of_office_with_null_return_path_is_an_auto_reply() -> None:
    # RFC 3834 §3.3: responders send with a null reverse-path too, as Exchange does.
    message = mail(
        {
            "Return-Path": "<>",
            "Subject": "Automatisk svar: [#1042] Kursbevis",
            "Auto-Submitted": "auto-generated",
        }
    )
    result = classify(message, CONTEXT)
    assert result is not None and result.kind == "auto-reply"


# --- auto-reply ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "evidence"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "Auto-Generated; owner-email=drift@example.no"}, "auto-generated"),
        ({"X-Autoreply": "yes"}, "X-Autoreply"),
        ({"X-Autorespond": "Jeg er på ferie"}, "X-Autorespond"),
        ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress: All"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"Precedence": "auto_reply"}, "Precedence: auto_reply"),
    ],
)
def test_auto_reply_headers(headers: dict[str, str], evidence: str) -> None:
    result = classify(mail(headers), CONTEXT)
    assert result is not None and result.kind == "auto-reply"
    assert evidence in result.reason
    assert_readable(result.reason, "auto-reply")


def test_auto_submitted_no_is_a_person_writing() -> None:
    assert classify(mail({"Auto-Submitted": "no"}), CONTEXT) is None


@pytest.mark.parametrize(
    "value", ["DR, OOF, AutoReply", "OOF", "DR, RN, NRN, OOF, AutoReply", "None"]
)
def test_partial_auto_response_suppress_from_an_exchange_group_is_human_mail(value: str) -> None:
    # Exchange adds these to ordinary mail sent through a distribution group: a request
    # not to auto-answer, not a sign that a machine wrote the message.
    assert classify(mail({"X-Auto-Response-Suppress": value}), CONTEXT) is None


def test_read_receipt_is_an_auto_reply() -> None:
    message = mail({})
    message.replace_header(
        "Content-Type", 'multipart/report; report-type=disposition-notification; boundary="x"'
    )
    result = classify(message, CONTEXT)
    assert result is not None and result.kind == "auto-reply"
    assert "read receipt" in result.reason


@pytest.mark.parametrize(
    "subject",
    [
        "Automatisk svar: [#1042] Kursbevis for HMS-kurs",
        "Autosvar: Kursbevis",
        "Automatiskt svar: [#1042] Kursbevis",
        "Out of Office: [#1042] Kursbevis",
        "Out of Office AutoReply: Kursbevis",
        "Automatic reply: [#1042] Kursbevis",
        "AutoReply: Kursbevis",
        "Abwesenheitsnotiz: [#1042] Kursbevis",
        "Ikke på kontoret",
        "Fraværsmelding: SV: Kursdato",
        "Fravær: Re: [#7] Påmelding",
        "Fråvær: [#12] Kursbevis",
        "Frånvaro: Re: Kursbevis",
    ],
)
def test_out_of_office_subject_without_headers_is_an_auto_reply(subject: str) -> None:
    result = classify(mail({"Subject": subject}), CONTEXT)
    assert result is not None and result.kind == "auto-reply"
    assert result.reason.startswith("auto-reply: subject starts with “")


@pytest.mark.parametrize(
    "subject",
    [
        "Fravær på kurset 12. mars",  # a learner reporting absence from a course day
        "Fraværsmelding",
        "Fravær: syk i dag",
        "Re: [#1042] Out of office-svar fra dere?",
        "Spørsmål om automatisk svar",
    ],
)
def test_learner_writing_about_absence_is_not_an_auto_reply(subject: str) -> None:
    assert classify(mail({"Subject": subject}), CONTEXT) is None


# --- list and rate limit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            {"List-Unsubscribe": "<mailto:nyhetsbrev-leave@example.no>"},
            "list: List-Unsubscribe header",
        ),
        ({"List-Post": "<mailto:kursledere@lists.example.no>"}, "list: List-Post header"),
        ({"Precedence": "list"}, "list: Precedence: list"),
        (
            {"Precedence": "bulk", "List-Id": "<kursledere.lists.example.no>"},
            "list: List-Id: <kursledere.lists.example.no>",
        ),
    ],
)
def test_list_headers(headers: dict[str, str], reason: str) -> None:
    result = classify(mail(headers), CONTEXT)
    assert result is not None
    assert (result.kind, result.reason) == ("list", reason)


def test_sender_at_the_hourly_limit_is_rate_limited() -> None:
    busy = RuleContext(SUPPORT, SECRET_KEY, recent_from_sender=20, limit=20)
    result = classify(mail({}), busy)
    assert result is not None and result.kind == "rate-limit"
    assert result.reason == (
        "rate-limit: 20 messages from this sender in the last 60 minutes (limit 20)"
    )


def test_sender_below_the_limit_or_with_the_backstop_off_is_not_rate_limited() -> None:
    assert classify(mail({}), RuleContext(SUPPORT, SECRET_KEY, recent_from_sender=19)) is None
    off = RuleContext(SUPPORT, SECRET_KEY, recent_from_sender=500, limit=None)
    assert classify(mail({}), off) is None


def test_classify_accepts_its_own_list_of_rules() -> None:
    message = mail({"List-Id": "<kursledere.lists.example.no>", "Auto-Submitted": "auto-replied"})
    only_lists = [rule for rule in RULES if rule.name == "list"]
    result = classify(message, CONTEXT, only_lists)
    assert result is not None and result.kind == "list"


def test_malformed_headers_never_raise() -> None:
    message = mail(
        {
            "From": "<<<@@>>> ,,, =?utf-8?q?broken",
            "Subject": "=?x-unknown?q?Frav=E6r?= =?utf-8?b?!!!?=",
            "Message-ID": "<<>>",
            "Content-Type": "multipart/report; report-type=",
        }
    )
    classify(message, CONTEXT)  # no exception: ingestion must go on


_HEADER_NAMES = st.sampled_from(
    [
        "From",
        "Subject",
        "Message-ID",
        "Return-Path",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Auto-Response-Suppress",
        "X-Failed-Recipients",
        "Content-Type",
        LOOP_HEADER,
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_HEADER_NAMES, st.text(max_size=60).map(lambda v: " ".join(v.split()))))
def test_classification_never_raises_on_arbitrary_header_values(headers: dict[str, str]) -> None:
    message = mail(headers)
    result = classify(message, CONTEXT)
    assert result is None or result.reason.startswith(f"{result.kind}: ")
    find_bounced_message_ids(message)
