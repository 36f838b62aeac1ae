"""What a bounce reports: which of our messages failed, for whom, and whether for good.

RFC 3464 delivery status notifications carry a machine-readable `message/delivery-status`
part (per-recipient Action, Status, Diagnostic-Code) and the returned message, whole
(`message/rfc822`) or its headers only (`text/rfc822-headers`). Older MTAs (qmail, Exim,
Sendmail, some appliances) send plain text with the original's headers quoted below a
separator; for those the report is read from the text. Either way the original's
Message-ID (or our signed reply address in its From/Reply-To) leads to the `OutboundEmail`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses

from helpdesk.inbound.rules import header_addresses, header_text
from helpdesk.signing import verify_message_id, verify_reply_address

_DELIVERY_STATUS = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_MESSAGE = frozenset({"message/rfc822", "message/global"})
_RETURNED_HEADERS = frozenset({"text/rfc822-headers", "message/global-headers"})
_DIAGNOSTIC_LIMIT = 300


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN, or what a text bounce says about one recipient."""

    address: str
    action: str = ""  # failed, delayed, delivered, relayed, expanded; "" when not stated
    status: str = ""  # RFC 3463 enhanced status code such as "5.1.1"; "" when not stated
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        return self.action in {"failed", "delayed"} or self.status[:1] in {"4", "5"}

    @property
    def permanent(self) -> bool:
        return self.action == "failed" or self.status.startswith("5")


@dataclass(frozen=True)
class BounceReport:
    """The original message(s) a bounce is about and what went wrong with them."""

    message_ids: tuple[str, ...]  # of the returned original(s), without angle brackets
    reply_addresses: tuple[str, ...]  # From/Reply-To of the original, lower-cased
    recipients: tuple[RecipientStatus, ...]
    permanent: bool  # 5.x.x / Action: failed; False for 4.x.x / delayed warnings
    diagnostic: str  # the first failure's diagnostic, one trimmed line; "" if none given

    @property
    def failed_recipients(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.failed)

    def ticket_numbers(self, secret_key: str, support_address: str) -> tuple[int, ...]:
        """Tickets named by our signed Message-IDs or reply addresses in the original."""
        found = [verify_message_id(secret_key, mid) for mid in self.message_ids]
        found += [
            verify_reply_address(secret_key, support_address, a) for a in self.reply_addresses
        ]
        return tuple(dict.fromkeys(t for t in found if t is not None))


def find_bounced_message_ids(message: EmailMessage) -> BounceReport:
    """Read a bounce (RFC 3464 DSN or a home-made MTA notice) into a `BounceReport`."""
    parts = list(_leaf_parts(message))
    originals = [o for p in parts if (o := _returned_headers(p)) is not None]
    recipients = [r for p in parts if p.get_content_type() in _DELIVERY_STATUS for r in _dsn(p)]
    text = "\n".join(
        _part_text(p)
        for p in parts
        if p.get_content_maintype() == "text" and p.get_content_type() not in _RETURNED_HEADERS
    )
    notice, quoted = _split_at_quoted_original(text)

    message_ids = [mid for o in originals if (mid := _message_id(header_text(o, "Message-ID")))]
    message_ids += _QUOTED_MESSAGE_ID.findall(quoted)
    if not message_ids:
        # Gmail and Exchange point In-Reply-To at the failed message. References would also
        # name older messages of the thread, so it is not used.
        message_ids += filter(None, [_message_id(header_text(message, "In-Reply-To"))])
    reply_addresses = [
        a for o in originals for n in ("From", "Reply-To") for a in header_addresses(o, n)
    ]
    reply_addresses += _quoted_addresses(quoted)

    if not recipients:
        recipients = _text_recipients(message, notice)
    return BounceReport(
        message_ids=tuple(dict.fromkeys(message_ids)),
        reply_addresses=tuple(dict.fromkeys(reply_addresses)),
        recipients=tuple(recipients),
        permanent=_permanent(message, recipients),
        diagnostic=next((r.diagnostic for r in recipients if r.failed and r.diagnostic), "")
        or next((r.diagnostic for r in recipients if r.diagnostic), ""),
    )


def _leaf_parts(part: Message) -> Iterator[Message]:
    """Parts in order, descending into multiparts but never into a returned message."""
    payload = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from _leaf_parts(child)
    else:
        yield part


# --- RFC 3464 --------------------------------------------------------------------------------


def _dsn(part: Message) -> list[RecipientStatus]:
    """Per-recipient blocks of a message/delivery-status part (the first block is per-message)."""
    payload = part.get_payload()
    if isinstance(payload, str):  # message/global-delivery-status is left as text by the stdlib
        payload = [
            _parse_headers(block) for block in re.split(r"\n\s*\n", payload) if block.strip()
        ]
    statuses = []
    for block in (b for b in payload if isinstance(b, Message)):
        address = _dsn_address(header_text(block, "Final-Recipient")) or _dsn_address(
            header_text(block, "Original-Recipient")
        )
        if not address:
            continue
        statuses.append(
            RecipientStatus(
                address=address,
                action=header_text(block, "Action").split(" ")[0].lower(),
                status=_status_code(header_text(block, "Status")),
                diagnostic=_one_line(_drop_type(header_text(block, "Diagnostic-Code"))),
            )
        )
    return statuses


def _dsn_address(value: str) -> str:
    """`rfc822; kari@example.no` → `kari@example.no` (RFC 3464 §2.3.1 address-type; address)."""
    return _drop_type(value).strip("<> ").lower()


def _drop_type(value: str) -> str:
    kind, separator, rest = value.partition(";")
    return rest.strip() if separator and " " not in kind.strip() else value.strip()


def _returned_headers(part: Message) -> Message | None:
    content_type = part.get_content_type()
    if content_type in _RETURNED_MESSAGE:
        payload = part.get_payload()
        returned = payload[0] if isinstance(payload, list) and payload else None
        return returned if isinstance(returned, Message) else None
    if content_type in _RETURNED_HEADERS:
        return _parse_headers(_part_text(part))
    return None


def _parse_headers(text: str) -> Message:
    return HeaderParser(policy=default_policy).parsestr(text.lstrip())


# --- text bounces ------------------------------------------------------------------------------

# Where MTAs start quoting the original: their separator lines, or a run of header lines.
_QUOTE_SEPARATOR = re.compile(
    r"^[ \t>]*(?:-+ ?(?:this is a copy of the message|below this line is a copy of the message"
    r"|original message)|original message headers:|undelivered message headers:)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_RUN = re.compile(
    r"^[ \t>]*(?:Return-Path|Received|Message-ID|Date|From|To|Subject|MIME-Version):[^\n]*\n"
    r"(?:[ \t][^\n]*\n)*[ \t>]*[A-Za-z][\w-]*:",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_QUOTED_SENDER = re.compile(
    r"^[ \t>]*(?:From|Reply-To):[ \t]*([^\n]+)", re.IGNORECASE | re.MULTILINE
)
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")
_REPLY_CODE = re.compile(r"(?:^|said:|error:)\s*([45])\d\d[\s-]", re.IGNORECASE | re.MULTILINE)
_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:[ \t]*$", re.MULTILINE)
_LISTED_RECIPIENT = re.compile(
    r"^[ \t]*(?:(?:Final|Original)-Recipient:[ \t]*(?:rfc822;)?[ \t]*)?"
    r"<?([^\s<>@]+@[\w.-]+\.[a-z]{2,})>?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_DELAY_SUBJECT = re.compile(
    r"^(?:warning:|delayed mail|delivery status notification \(delay\))", re.I
)


def _split_at_quoted_original(text: str) -> tuple[str, str]:
    """(the MTA's own explanation, the quoted original) of a text bounce."""
    starts = [m.start() for m in (_QUOTE_SEPARATOR.search(text), _HEADER_RUN.search(text)) if m]
    cut = min(starts, default=len(text))
    return text[:cut], text[cut:]


def _quoted_addresses(quoted: str) -> list[str]:
    found = getaddresses(_QUOTED_SENDER.findall(quoted))
    return [address.lower() for _, address in found if "@" in address]


def _text_recipients(message: EmailMessage, notice: str) -> list[RecipientStatus]:
    """Recipients named by X-Failed-Recipients (Exim) or listed in the notice (qmail, Exim)."""
    listed = [a.strip() for a in header_text(message, "X-Failed-Recipients").split(",")]
    listed += _QMAIL_RECIPIENT.findall(notice) + _LISTED_RECIPIENT.findall(notice)
    addresses = list(dict.fromkeys(a.lower() for a in listed if "@" in a))
    code, diagnostic = _notice_status(notice)
    delayed = code.startswith("4") or (not code and _is_delay_notice(message))
    action = "delayed" if delayed else "failed"
    return [RecipientStatus(a, action, code, diagnostic) for a in addresses]


def _notice_status(notice: str) -> tuple[str, str]:
    """The first status code in a text notice and the line it stands on."""
    for line in notice.splitlines():
        if match := _ENHANCED_STATUS.search(line):
            return match.group(0), _one_line(line)
    for line in notice.splitlines():
        if match := _REPLY_CODE.search(line):
            return f"{match.group(1)}.0.0", _one_line(line)
    return "", ""


def _permanent(message: EmailMessage, recipients: list[RecipientStatus]) -> bool:
    failed = [r for r in recipients if r.failed]
    if failed:
        return any(r.permanent for r in failed)
    if recipients:  # only delivered/relayed/expanded: a success report, nothing failed
        return False
    # A home-made notice naming nobody we could read: anything but a delay warning is the
    # MTA's final failure notice.
    return not _is_delay_notice(message)


def _is_delay_notice(message: EmailMessage) -> bool:
    return bool(_DELAY_SUBJECT.match(header_text(message, "Subject")))


# --- small helpers -----------------------------------------------------------------------------


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding must not lose the rest of the report
        payload = None
    if not isinstance(payload, bytes):
        return str(part.get_payload()) if isinstance(part.get_payload(), str) else ""
    try:
        text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_type() == "text/html":
        # Tags first, entities after: `&lt;id@host&gt;` must survive as `<id@host>`.
        text = re.sub(r"<(?:br|/p|/div|/tr|/pre)[^>]*>", "\n", text, flags=re.I)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return text


def _message_id(value: str) -> str:
    match = re.search(r"<([^<>\s]+)>", value)
    return match.group(1) if match else value.strip()


def _status_code(value: str) -> str:
    match = _ENHANCED_STATUS.search(value)
    return match.group(0) if match else ""


def _one_line(value: str) -> str:
    line = " ".join(value.split())
    return line if len(line) <= _DIAGNOSTIC_LIMIT else line[: _DIAGNOSTIC_LIMIT - 1] + "…"
