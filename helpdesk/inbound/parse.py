"""Raw RFC 5322 bytes to a `ParsedMessage`: the first, pure step of inbound mail.

`parse_message` never raises. What it cannot make sense of is recorded in `defects`; a
message that is not mail at all is returned with `unparseable` set and a reason, and the
ingest pipeline quarantines it with its raw bytes (DESIGN §7: nothing inbound is lost).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import NamedTuple

from helpdesk.inbound.attachments import ParsedAttachment, build_attachment
from helpdesk.inbound.charsets import decode_text
from helpdesk.inbound.encoded_words import decode_header_text
from helpdesk.inbound.flowed import unflow_text
from helpdesk.inbound.header_policy import INBOUND_POLICY
from helpdesk.inbound.headers import (
    MAX_REFERENCES,
    Mailbox,
    clean_line,
    clean_subject,
    extract_message_ids,
    header_values,
    parse_date,
    parse_mailboxes,
)
from helpdesk.inbound.html import html_to_text
from helpdesk.inbound.mime import describe_defects, param_of, payload_bytes
from helpdesk.inbound.parts import MessageParts, collect_parts
from helpdesk.inbound.sanitise import sanitise_html

__all__ = ["ParsedAttachment", "ParsedMessage", "parse_message"]

logger = logging.getLogger(__name__)

_FEED_CHUNK = 1 << 16
# nh3 builds a DOM of roughly 30 times the size of its input and html.parser reads about
# 1 MB/s: beyond this an HTML body is only turned into text from its beginning, which keeps
# a 25 MB message well under 300 MB RSS (measured: 24 MB of HTML took 780 MB in nh3).
MAX_HTML_CHARS = 2_000_000
MAX_BOUNDARY_LINES = 5_000
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER_BYTES = 1 << 20
MAX_FIELDS_READ = 20  # of one name (To, Cc, References…); more is abuse, not mail
_MAX_DEFECTS = 50
_MAIL_FIELDS = frozenset(
    "from sender to cc subject date message-id received return-path mime-version "  # noqa: SIM905
    "reply-to in-reply-to references".split()
)
_NEWLINES = re.compile(r"\r\n?")
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:\-]{1,40})", re.I
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedMessage:
    """One inbound message as a ticket needs it; `email` keeps the full parsed tree for rules.

    Message-IDs are without angle brackets; addresses have lower-cased domains; `date` is
    aware UTC; `text` is the readable body (HTML converted when there is no plain text) and
    `html` the sanitised HTML or None; `defects` lists in words what was wrong with the mail.
    """

    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    date: datetime | None
    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    defects: list[str]
    unparseable: bool = False
    unparseable_reason: str | None = None
    email: EmailMessage = field(repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first field with this name, unfolded, RFC 2047 decoded, on one line; or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every field with this name, in order, decoded like `header`."""
        return [
            clean_line(decode_header_text(raw), 100_000) for raw in header_values(self.email, name)
        ]


def parse_message(raw: bytes, max_attachment_bytes: int | None = None) -> ParsedMessage:
    """Parse a raw message; attachments over `max_attachment_bytes` are listed but not decoded."""
    if raw.count(b"\n--") > MAX_BOUNDARY_LINES:
        # The stdlib needs about half a millisecond per MIME part: a 25 MB message of tiny
        # parts would hold a worker for minutes. Only its header fields are read.
        return _headers_only(raw, f"more than {MAX_BOUNDARY_LINES:,} MIME boundary lines")
    try:
        message = _parse_bytes(raw)
    except Exception as error:  # the parser is lenient, but deep nesting can exhaust the stack
        return _headers_only(raw, f"the email package could not read it ({type(error).__name__})")
    try:
        return _read_message(message, max_attachment_bytes)
    except Exception as error:  # our bug or an input we did not foresee: quarantine, never crash
        logger.error("parse_message failed: %s", type(error).__name__, exc_info=False)
        return _unparseable(message, f"the message could not be read ({type(error).__name__})")


def _parse_bytes(raw: bytes) -> EmailMessage:
    # Fed in slices: BytesParser.parsebytes would first copy the whole message into a str
    # and then into a StringIO (four bytes per character) before parsing.
    parser = BytesFeedParser(_factory=EmailMessage, policy=INBOUND_POLICY)
    view = memoryview(raw)
    for start in range(0, len(view), _FEED_CHUNK):
        parser.feed(bytes(view[start : start + _FEED_CHUNK]))
    message = parser.close()
    return message if isinstance(message, EmailMessage) else EmailMessage()


def _read_message(message: EmailMessage, max_attachment_bytes: int | None) -> ParsedMessage:
    defects: list[str] = []
    fields = _read_fields(message, defects)
    parts = collect_parts(message)
    text, html = _read_body(parts, defects)
    attachments = [build_attachment(part, max_attachment_bytes) for part in parts.attachments]
    # Read after decoding: the stdlib records bad base64 on a part only when it decodes it.
    found = [text for part in parts.seen for text in describe_defects(part)]
    reason = _unparseable_reason(message)
    return ParsedMessage(
        **fields._asdict(),
        text=text,
        html=html,
        attachments=attachments,
        defects=_unique([*found, *parts.defects, *defects, *([reason] if reason else [])]),
        unparseable=reason is not None,
        unparseable_reason=reason,
        email=message,
    )


def _headers_only(raw: bytes, reason: str) -> ParsedMessage:
    """What the header fields say of a message whose body cannot be read; flagged unparseable."""
    end = _HEADER_END.search(raw, 0, _MAX_HEADER_BYTES)
    try:
        message = BytesParser(policy=INBOUND_POLICY).parsebytes(
            raw[: end.start() if end else _MAX_HEADER_BYTES], headersonly=True
        )
        defects: list[str] = []
        fields = _read_fields(message, defects)
    except Exception:
        return _unparseable(EmailMessage(), reason)
    return ParsedMessage(
        **fields._asdict(),
        text="",
        html=None,
        attachments=[],
        defects=_unique([*defects, reason]),
        unparseable=True,
        unparseable_reason=reason,
        email=message,
    )


class _Fields(NamedTuple):
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    date: datetime | None


def _read_fields(message: EmailMessage, defects: list[str]) -> _Fields:
    sender = _read_sender(message, defects)
    return _Fields(
        message_id=next(iter(_ids(message, "message-id")), None),
        in_reply_to=_ids(message, "in-reply-to"),
        references=_ids(message, "references"),
        subject=clean_subject(next(iter(header_values(message, "subject")), None)),
        from_address=sender.address if sender else None,
        from_name=sender.name if sender else None,
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        reply_to=_addresses(message, "reply-to"),
        date=_read_date(message, defects),
    )


def _read_sender(message: EmailMessage, defects: list[str]) -> Mailbox | None:
    fields = header_values(message, "from")
    if not fields:
        defects.append("no From field")
        return None
    if len(fields) > 1:
        # RFC 5322 §3.6 allows one From field; two is a known way to spoof the sender.
        defects.append(f"{len(fields)} From fields; the first is used")
    senders = parse_mailboxes("from", fields[:1])
    if len(senders) > 1:
        defects.append("several addresses in From; the first is used")
    if not senders:
        defects.append("From has no usable address")
    return senders[0] if senders else None


def _read_date(message: EmailMessage, defects: list[str]) -> datetime | None:
    raw = next(iter(header_values(message, "date")), None)
    date = parse_date(raw)
    if raw and date is None:
        defects.append("unreadable Date field")
    return date


def _read_body(parts: MessageParts, defects: list[str]) -> tuple[str, str | None]:
    plain = [_part_text(part, defects, is_html=False) for part in parts.plain]
    sources = [_part_text(part, defects, is_html=True) for part in parts.html]
    html_source = "\n".join(source for source in sources if source.strip())
    if len(html_source) > MAX_HTML_CHARS:
        defects.append(
            f"HTML body over {MAX_HTML_CHARS:,} characters: not kept as HTML, "
            "text made from its beginning"
        )
    html_source, oversized = html_source[:MAX_HTML_CHARS], len(html_source) > MAX_HTML_CHARS
    text = "\n".join(chunk for chunk in plain if chunk.strip())
    if not text.strip() and html_source:
        text = html_to_text(html_source)
    html = _scrub(sanitise_html(html_source)).strip() if html_source and not oversized else None
    return _scrub(text).strip("\n"), html


def _part_text(part: Message, defects: list[str], is_html: bool) -> str:
    data = payload_bytes(part)
    charset = param_of(part, "charset")
    if charset is None and is_html:
        found = _META_CHARSET.search(data[:4096])
        charset = found.group(1).decode("ascii") if found else None
    decoded = decode_text(data, charset)
    if decoded.defect:
        defects.append(decoded.defect)
    text = _NEWLINES.sub("\n", decoded.text)
    if not is_html and (param_of(part, "format") or "").lower() == "flowed":
        text = unflow_text(text, delsp=(param_of(part, "delsp") or "").lower() == "yes")
    return text


def _scrub(text: str) -> str:
    """No NUL or other control bytes (PostgreSQL text refuses NUL) and no lone surrogates."""
    return _SURROGATES.sub("\ufffd", _UNPRINTABLE.sub("", text))


def _ids(message: EmailMessage, name: str) -> list[str]:
    ids: dict[str, None] = {}
    for raw in header_values(message, name)[:MAX_FIELDS_READ]:
        ids.update(dict.fromkeys(extract_message_ids(raw)))
    return list(ids)[-MAX_REFERENCES:]


def _addresses(message: EmailMessage, name: str) -> list[str]:
    fields = header_values(message, name)[:MAX_FIELDS_READ]
    return [mailbox.address for mailbox in parse_mailboxes(name, fields)]


def _unparseable_reason(message: EmailMessage) -> str | None:
    names = {str(key).lower() for key in message}
    if not names:
        return "no header fields: this is not an email message"
    if not names & _MAIL_FIELDS:
        return "none of the header fields of an email message (From, To, Subject, Date, Message-ID)"
    return None


def _unparseable(message: EmailMessage, reason: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        in_reply_to=[],
        references=[],
        subject="",
        from_address=None,
        from_name=None,
        to=[],
        cc=[],
        reply_to=[],
        date=None,
        text="",
        html=None,
        attachments=[],
        defects=[reason],
        unparseable=True,
        unparseable_reason=reason,
        email=message,
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))[:_MAX_DEFECTS]
