"""Composing outgoing mail: the complete RFC 5322 message, built once and stored as bytes.

The outbox keeps exactly these bytes, so a resend after a crash is identical, Message-ID
included. Every header value that carries user input passes through `headers`, which
makes it one line before `email.headerregistry` encodes it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import compat32
from email.utils import format_datetime

from helpdesk.inbound.rules import LOOP_HEADER
from helpdesk.outbound.headers import (
    MAIL_POLICY,
    header_safe,
    is_sendable,
    mailbox,
    message_id_list,
    safe_filename,
)

# RFC 3834 §5 for automatic answers; X-Auto-Response-Suppress asks Exchange not to answer
# them with its own out-of-office or read receipts.
AUTOMATIC_HEADERS = (("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"))
_SAFE_CONTENT_TYPE = "application/octet-stream"
# clean_text: controls and lone surrogates are dropped, line and paragraph separators
# become newlines.
_CLEAN_TEXT_MAP = {"Cc": None, "Cs": None, "Zl": "\n", "Zp": "\n"}


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Recipient:
    address: str
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """Everything one message is made of; `compose` turns it into bytes."""

    from_address: str
    from_name: str
    reply_to: str
    to: Recipient
    cc: Sequence[str] = ()
    subject: str
    message_id: str  # without angle brackets
    date: datetime
    text: str
    html: str
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    attachments: Sequence[MailAttachment] = field(default_factory=tuple)
    automatic: bool = False
    # Our support address, stamped so our own mail is recognised if it comes back.
    loop_stamp: str


def compose(mail: OutgoingMail) -> EmailMessage:
    """The message: multipart/alternative text + HTML, in multipart/mixed with attachments."""
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = mailbox(mail.from_address, mail.from_name)
    message["Reply-To"] = mailbox(mail.reply_to)
    message["To"] = mailbox(mail.to.address, mail.to.name)
    cc = [mailbox(a) for a in dict.fromkeys(mail.cc) if a != mail.to.address and is_sendable(a)]
    if cc:
        message["Cc"] = cc
    message["Subject"] = header_safe(mail.subject, 900)
    message["Date"] = format_datetime(mail.date)
    message["Message-ID"] = f"<{mail.message_id}>"
    parent = message_id_list([mail.in_reply_to] if mail.in_reply_to else [])
    if parent:
        message["In-Reply-To"] = f"<{parent[0]}>"
    references = message_id_list(mail.references)
    if references:
        message["References"] = " ".join(f"<{i}>" for i in references)
    message[LOOP_HEADER] = mailbox(mail.loop_stamp).addr_spec
    for name, value in AUTOMATIC_HEADERS if mail.automatic else ():
        message[name] = value
    # Quoted-printable keeps the body 7-bit clean (no 8BITMIME needed) and short-lined.
    message.set_content(clean_text(mail.text), cte="quoted-printable")
    message.add_alternative(clean_text(mail.html), subtype="html", cte="quoted-printable")
    for attachment in mail.attachments:
        add_attachment(message, attachment)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the stdlib repeats it on parts it creates
    return message


class ComposeError(RuntimeError):
    """The composed bytes do not read back as the message we built (never sent)."""


def to_bytes(message: EmailMessage) -> bytes:
    """The wire form with CRLF line ends, exactly what the outbox stores and SMTP sends.

    Read back once before it is stored: if any header or part came out different from
    what was set (a stdlib folding bug fed with hostile text), nothing is queued.
    """
    raw = message.as_bytes(policy=MAIL_POLICY)
    written = [_header_names(part) for part in message.walk()]
    parsed = message_from_bytes(raw, policy=compat32)
    if [_header_names(part) for part in parsed.walk()] != written:
        raise ComposeError("the composed message does not parse back to its own headers")
    return raw


def add_attachment(message: EmailMessage, attachment: MailAttachment) -> None:
    """Attach a file under a header-safe name and a well-formed content type."""
    maintype, _, subtype = mime_type(attachment.content_type).partition("/")
    message.add_attachment(
        attachment.content,
        maintype=maintype,
        subtype=subtype,
        filename=safe_filename(attachment.filename),
    )


def mime_type(content_type: str | None) -> str:
    """`type/subtype` lower-cased, or application/octet-stream when it is not one."""
    maintype, _, subtype = (content_type or "").split(";", 1)[0].strip().lower().partition("/")
    if not (_is_token(maintype) and _is_token(subtype)) or maintype in ("multipart", "message"):
        return _SAFE_CONTENT_TYPE
    return f"{maintype}/{subtype}"


def clean_text(text: str) -> str:
    """Text with newline line ends and no control characters besides tab, no lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Categories are looked up once per distinct character, not once per character: a
    # mail body has a few dozen distinct characters and thousands of characters.
    table = {
        ord(c): _CLEAN_TEXT_MAP[category]
        for c in set(text)
        if (category := unicodedata.category(c)) in _CLEAN_TEXT_MAP and c not in "\t\n"
    }
    return text.translate(table).strip("\n") + "\n"


def _header_names(part: Message) -> list[str]:
    return [name.lower() for name, _ in part.items()]


def _is_token(value: str) -> bool:
    return (
        bool(value)
        and len(value) <= 100
        and all(c.isascii() and (c.isalnum() or c in "!#$&^_.+-") for c in value)
    )
