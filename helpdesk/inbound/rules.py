"""Machine mail: our own mail looping back, bounces, auto-replies, list posts (issue 3 item 4).

Mailman-style: each rule is a small object with a `name` and a `check()` that returns a
readable reason when it matches, and `RULES` is the plain list they are tried in; the first
match classifies the message. Machine mail is stored and marked but never answered and never
reopens a ticket, so a rule that fires wrongly hides a learner's real message: every check
here wants evidence that a person writing by hand would not produce. Reasons name the rule
and the evidence, never the learner's subject or address, because they are shown and logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage, Message
from email.utils import getaddresses
from typing import Literal, Protocol

from helpdesk.inbound.encoded_words import decode_header_text
from helpdesk.signing import verify_message_id, verify_reply_address

MachineKind = Literal["loop", "bounce", "auto-reply", "list", "rate-limit"]

# Stamped on every message we send, with our support address as its value, so our own mail
# is recognised when it comes back even through a forwarder that replaces the Message-ID.
LOOP_HEADER = "X-Helpdesk-Loop"
DEFAULT_RATE_LIMIT = 20
RATE_LIMIT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RuleContext:
    """What the rules need besides the headers: who we are and how busy this sender is."""

    support_address: str
    secret_key: str
    # Messages already stored from this sender within RATE_LIMIT_WINDOW, not counting this one.
    recent_from_sender: int = 0
    # Most messages per RATE_LIMIT_WINDOW a sender gets before the backstop fires; None: off.
    limit: int | None = DEFAULT_RATE_LIMIT

    @property
    def support_domain(self) -> str:
        return self.support_address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Classification:
    """Why a message is machine mail: the rule's name and its readable reason."""

    kind: MachineKind
    reason: str


class Rule(Protocol):
    name: MachineKind

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        """A readable reason starting with the rule's name when it matches, else None."""
        ...


def classify(
    message: EmailMessage, context: RuleContext, rules: Sequence[Rule] | None = None
) -> Classification | None:
    """The first rule that recognises machine mail, or None for a message a person wrote."""
    for rule in RULES if rules is None else rules:
        reason = rule.check(message, context)
        if reason is not None:
            return Classification(rule.name, reason)
    return None


# --- the rules, in the order RULES tries them ------------------------------------------------


class LoopRule:
    """Our own outgoing mail come back: our signed Message-ID, our From, or our loop stamp."""

    name: MachineKind = "loop"

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        ticket = verify_message_id(context.secret_key, header_text(message, "Message-ID"))
        if ticket is not None:
            return f"loop: the Message-ID is one we signed for ticket #{ticket}"
        ours = context.support_address.lower()
        for address in header_addresses(message, "From"):
            if address == ours:
                return "loop: From is our own support address"
            ticket = verify_reply_address(context.secret_key, context.support_address, address)
            if ticket is not None:
                return f"loop: From is our signed reply address for ticket #{ticket}"
        # Only a stamp naming *our* address counts: another helpdesk running this software
        # stamps its own address on its operators' replies, and those are human mail.
        for name in (LOOP_HEADER, "X-Loop"):
            if ours in header_addresses(message, name):
                return f"loop: {name} carries our support address"
        return None


class BounceRule:
    """Delivery failure reports: RFC 3464 DSNs and the home-made formats of common MTAs."""

    name: MachineKind = "bounce"

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        if report_type(message) == "delivery-status":
            return "bounce: multipart/report delivery-status notification (RFC 3464)"
        if header_text(message, "X-Failed-Recipients"):
            return "bounce: X-Failed-Recipients header"
        sender = _bounce_sender(message)
        if sender:
            return f"bounce: sent by {sender}"
        prefix = _matching_prefix(header_text(message, "Subject"), BOUNCE_SUBJECTS)
        if prefix:
            return f"bounce: subject starts with “{prefix}” ({BOUNCE_SUBJECTS[prefix]})"
        # RFC 5321 §4.5.5 sends DSNs with a null reverse-path, but RFC 3834 §3.3 asks
        # auto-responders to do the same, so `Return-Path: <>` alone is a bounce only when
        # nothing marks the message as an auto-reply (the next rule's business).
        if _null_return_path(message) and AutoReplyRule().check(message, context) is None:
            return "bounce: empty Return-Path (<>), as delivery reports are sent"
        return None


class AutoReplyRule:
    """Out-of-office and other automatic answers (RFC 3834 and the headers vendors use)."""

    name: MachineKind = "auto-reply"

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        checks: tuple[Callable[[EmailMessage], str | None], ...] = (
            _auto_submitted,
            _vendor_autoreply_header,
            _auto_response_suppress_all,
            _bulk_precedence,
            _read_receipt,
            _out_of_office_subject,
        )
        for check in checks:
            evidence = check(message)
            if evidence:
                return f"auto-reply: {evidence}"
        return None


class ListRule:
    """Posts distributed by a mailing list (RFC 2919 List-Id, RFC 2369 List-* headers)."""

    name: MachineKind = "list"

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        list_id = header_text(message, "List-Id")
        if list_id:
            return f"list: List-Id: {_shorten(list_id)}"
        # Unsubscribe/Post values can hold per-subscriber addresses, so only the name is shown.
        for name in ("List-Unsubscribe", "List-Post"):
            if header_text(message, name):
                return f"list: {name} header"
        if _precedence(message) == "list":
            return "list: Precedence: list"
        return None


class RateLimitRule:
    """Backstop against loops no other rule caught: too many messages from one sender."""

    name: MachineKind = "rate-limit"

    def check(self, message: EmailMessage, context: RuleContext) -> str | None:
        if context.limit is None or context.recent_from_sender < context.limit:
            return None
        minutes = int(RATE_LIMIT_WINDOW.total_seconds() // 60)
        return (
            f"rate-limit: {context.recent_from_sender} messages from this sender in the last "
            f"{minutes} minutes (limit {context.limit})"
        )


RULES: list[Rule] = [LoopRule(), BounceRule(), AutoReplyRule(), ListRule(), RateLimitRule()]


# --- evidence ---------------------------------------------------------------------------------

# Subjects that MTAs put on their home-made (non-RFC 3464) failure notices, matched at the start.
BOUNCE_SUBJECTS: dict[str, str] = {
    "Undeliverable:": "Exchange/Outlook non-delivery report",
    "Kan ikke leveres:": "Exchange non-delivery report, Norwegian/Danish",
    "Olevererbart:": "Exchange non-delivery report, Swedish",
    "Unzustellbar:": "Exchange non-delivery report, German",
    "Undelivered Mail Returned to Sender": "Postfix",
    "Delayed Mail (still being retried)": "Postfix delay warning",
    "Delivery Status Notification": "Gmail/Exchange",
    "failure notice": "qmail",
    "Mail delivery failed": "Exim",
    "Warning: message": "Exim delay warning",
    "Returned mail:": "Sendmail",
    "Warning: could not send message": "Sendmail delay warning",
    "Mail System Error - Returned Mail": "MDaemon",
}
_BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"})
# Exchange Online sends its reports from MicrosoftExchange<32 hex digits>@<tenant>.
_EXCHANGE_SYSTEM_SENDER = re.compile(r"^microsoftexchange[0-9a-f]{32}$")


def _bounce_sender(message: EmailMessage) -> str | None:
    for address in header_addresses(message, "From"):
        local = address.partition("@")[0]
        if local in _BOUNCE_LOCAL_PARTS or _EXCHANGE_SYSTEM_SENDER.match(local):
            return address
    return None


def _null_return_path(message: EmailMessage) -> bool:
    # The topmost Return-Path is the one the final delivery agent wrote; IIS writes "<<>>".
    return header_text(message, "Return-Path").replace(" ", "") in {"<>", "<<>>"}


def _auto_submitted(message: EmailMessage) -> str | None:
    """RFC 3834 §5: any keyword other than "no" (parameters and comments may follow)."""
    value = _strip_comments(header_text(message, "Auto-Submitted"))
    keyword = value.split(";")[0].strip().lower()
    return f"Auto-Submitted: {_shorten(keyword)}" if keyword and keyword != "no" else None


_VENDOR_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoreply-From", "X-Mail-Autoreply")


def _vendor_autoreply_header(message: EmailMessage) -> str | None:
    for name in _VENDOR_AUTOREPLY_HEADERS:
        value = header_text(message, name)
        if value and value.lower() not in {"no", "false", "0"}:
            return f"{name} header"
    return None


def _auto_response_suppress_all(message: EmailMessage) -> str | None:
    """Exchange's X-Auto-Response-Suppress, only in the one form that marks machine mail.

    By Microsoft's definition ([MS-OXCMAIL] 2.1.3.2.20, [MS-OXOMSG] 2.2.1.77) the header asks
    *recipients* not to auto-answer this message; it does not say the message is automatic.
    Exchange puts partial values ("DR, OOF, AutoReply", "OOF") on ordinary human mail sent to
    distribution groups, and bulk senders add them too, so those mark nothing: Discourse,
    osTicket, Redmine, GLPI and Sisimai all lost real mail by treating them as auto-replies.
    "All" (PidTagAutoResponseSuppress = -1) is what Exchange's own agents stamp on the replies
    they generate (automatic replies, rule replies, meeting responses), so only it counts.
    """
    values = {
        v.strip().lower() for v in header_text(message, "X-Auto-Response-Suppress").split(",")
    }
    return "X-Auto-Response-Suppress: All" if "all" in values else None


def _bulk_precedence(message: EmailMessage) -> str | None:
    """Precedence bulk/junk/auto_reply; "list" is left to the list rule, and so is "bulk" on
    a message carrying list headers (Mailman 2 marks its posts bulk)."""
    precedence = _precedence(message)
    if precedence in {"junk", "auto_reply"}:
        return f"Precedence: {precedence}"
    if precedence == "bulk" and not any(
        header_text(message, name) for name in ("List-Id", "List-Unsubscribe", "List-Post")
    ):
        return "Precedence: bulk"
    return None


def _read_receipt(message: EmailMessage) -> str | None:
    if report_type(message) == "disposition-notification":
        return "read receipt (multipart/report disposition-notification, RFC 8098)"
    return None


# Phrases only an autoresponder puts at the start of a subject (Outlook's localised prefixes
# and the usual hand-set ones), in nb/nn/da/sv/en and the neighbours our learners' employers use.
_OUT_OF_OFFICE = re.compile(
    r"^(?P<phrase>automatic reply|auto[- ]?reply|auto[- ]?response|out of (?:the )?office"
    r"|out-of-office|away from (?:the )?office|automatisk svar|automatiskt svar|auto[- ]?svar"
    r"|ikke på kontoret|ute av kontoret|borte fra kontoret|inte på kontoret"
    r"|abwesenheitsnotiz|automatische antwort|automatisch antwoord|réponse automatique"
    r"|automaattinen vastaus)(?=$|\W)",
    re.IGNORECASE,
)
# "Fravær"/"Fråvær"/"Frånvaro" (absence) and "Fraværsmelding" (absence notice) are also how a
# learner reports missing a course day, so they count only as an autoresponder writes them:
# the word, a colon, then the echoed subject of the mail it answers, which is a reply
# ("Re:", "SV:", …) or carries our ticket token, since what it answers is our mail.
_ABSENCE = re.compile(r"^(?P<phrase>(?:fravær|fråvær|frånvar)\w*)\s*:\s*(?P<echo>\S.*)$", re.I)
_ECHOED_SUBJECT = re.compile(r"^(?:(?:re|sv|aw|vs|fw|fwd|wg|antw)\s*:|.*\[#\d+\])", re.I)


def _out_of_office_subject(message: EmailMessage) -> str | None:
    subject = header_text(message, "Subject")
    match = _OUT_OF_OFFICE.match(subject)
    if match:
        return f"subject starts with “{match['phrase']}”"
    match = _ABSENCE.match(subject)
    if match and _ECHOED_SUBJECT.match(match["echo"]):
        return f"subject starts with “{match['phrase']}:” followed by the subject it answers"
    return None


def _precedence(message: EmailMessage) -> str:
    return _strip_comments(header_text(message, "Precedence")).strip().lower()


def _matching_prefix(subject: str, prefixes: dict[str, str]) -> str | None:
    folded = subject.casefold()
    return next((p for p in prefixes if folded.startswith(p.casefold())), None)


# --- header access that never raises ---------------------------------------------------------


def header_text(message: Message, name: str) -> str:
    """The first `name` header as one line of decoded text; "" when absent.

    Read from the field's raw text with its RFC 2047 words decoded, not through the
    stdlib's structured header parser: rules only look at text (and addresses, which
    `header_addresses` parses itself), that parser has raised on malformed input
    (IndexError, HeaderParseError), and running it on every field a rule reads was most of
    what classifying a message cost.
    """
    wanted = name.lower()
    value = next((v for k, v in message.raw_items() if k.lower() == wanted), None)
    return " ".join(decode_header_text(str(value)).split()) if value is not None else ""


def header_addresses(message: Message, name: str) -> list[str]:
    """The lower-cased addresses in the first `name` header."""
    return [a.lower() for _, a in getaddresses([header_text(message, name)]) if "@" in a]


def report_type(message: EmailMessage) -> str:
    """The report-type of a multipart/report message (RFC 6522), "" for anything else."""
    if message.get_content_type() != "multipart/report":
        return ""
    value = message.get_param("report-type", failobj="")
    return str(value).strip().lower() if isinstance(value, str) else ""


def _strip_comments(value: str) -> str:
    return re.sub(r"\([^()]*\)", " ", value)


def _shorten(value: str, limit: int = 80) -> str:
    printable = "".join(ch for ch in value if ch.isprintable())
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"
