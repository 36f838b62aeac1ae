"""Operator replies: the message on the ticket and its mail in the outbox, in one transaction.

`queue_reply` never sends anything itself; it writes the operator's message, stores the
attachments, composes the complete mail and adds the `OutboundEmail` row to the caller's
session. Committing that session is what makes the reply real (DESIGN §7, outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict, PayloadTooLarge, ValidationFailed
from helpdesk.models import Attachment, Message, Operator, OutboundEmail, Ticket
from helpdesk.outbound.compose import (
    MailAttachment,
    OutgoingMail,
    Recipient,
    clean_text,
    mime_type,
)
from helpdesk.outbound.headers import reply_subject, safe_filename
from helpdesk.outbound.history import quoted_history, thread_headers
from helpdesk.outbound.outbox import (
    SUPPORT_NAME,
    add_to_outbox,
    deliverable,
    learner_locale,
    new_message_id,
    reply_address,
    reply_recipients,
)
from helpdesk.outbound.suppression import RecipientsSuppressed, suppressed_among
from helpdesk.outbound.templates import render_mail
from helpdesk.tickets.lifecycle import MessageDraft, append_message, target
from helpdesk.widget.followup import widget_followup

MAX_REPLY_LENGTH = 100_000
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_TOTAL_ATTACHMENT_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class UploadedFile:
    """A file the operator attached to a reply."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class QueuedReply:
    message: Message
    # None for a reply that only goes to an unverified widget learner's open widget.
    outbound: OutboundEmail | None
    attachments: list[Attachment]
    # Suppressed recipients the operator chose to mail anyway (`force`).
    overridden: list[str]


def reply_text(body: str) -> str:
    """The operator's text, cleaned; 422 when empty or too long."""
    text = clean_text(body).strip()
    if not text:
        raise ValidationFailed({"body": "must not be empty"})
    if len(text) > MAX_REPLY_LENGTH:
        raise ValidationFailed({"body": f"must be at most {MAX_REPLY_LENGTH} characters"})
    return text


def check_attachment_sizes(files: Sequence[UploadedFile]) -> None:
    """413 for a file over 10 MB or more than 25 MB together; 422 for too many files."""
    if len(files) > MAX_ATTACHMENTS:
        raise ValidationFailed({"files": f"at most {MAX_ATTACHMENTS} files"})
    for upload in files:
        if len(upload.content) > MAX_ATTACHMENT_BYTES:
            raise PayloadTooLarge(
                f"{safe_filename(upload.filename)} is larger than "
                f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."
            )
    if sum(len(upload.content) for upload in files) > MAX_TOTAL_ATTACHMENT_BYTES:
        raise PayloadTooLarge(
            f"The attachments together are larger than "
            f"{MAX_TOTAL_ATTACHMENT_BYTES // (1024 * 1024)} MB."
        )


async def queue_reply(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    ticket: Ticket,
    operator: Operator,
    body: str,
    *,
    now: datetime,
    attachments: Sequence[UploadedFile] = (),
    force: bool = False,
    brand: str = SUPPORT_NAME,
) -> QueuedReply:
    """Store the operator's reply and queue its mail (To the requester, Cc participants).

    Refused before anything is written: an empty body (422), files too large (413), a
    closed ticket or an address we cannot mail (409), and suppressed recipients unless
    `force` (409, `RecipientsSuppressed`). On a widget ticket the mail is held back two
    minutes (cancelled if the widget shows the reply) and left out for an unverified
    address (`helpdesk.widget.followup`).
    """
    text = reply_text(body)
    check_attachment_sizes(attachments)
    if ticket.status == "closed":
        raise Conflict(f"Ticket #{ticket.number} is closed; a reply needs a new ticket.")
    followup = await widget_followup(session, settings, ticket, now)
    mailed = followup is None or followup.mail
    to, cc = reply_recipients(ticket, settings.support_address)
    if mailed and not deliverable(to):
        raise Conflict(f"The requester's address of ticket #{ticket.number} cannot be mailed.")
    suppressed = await suppressed_among(session, [to, *cc]) if mailed else []
    if suppressed and not force:
        raise RecipientsSuppressed(suppressed)

    message_id = new_message_id(settings, ticket)
    threading = await thread_headers(session, ticket)
    actor = f"operator:{operator.id}"
    draft = MessageDraft(
        direction="outbound",
        text=text,
        author_kind="operator",
        author_name=operator.name,
        author_email=operator.email,
        operator_id=operator.id,
        rfc_message_id=message_id,
        # No `sender`: (sender, Message-ID) is the key of *inbound* mail, and our own mail
        # looping back is stored under our address with this very Message-ID.
        sender=None,
        in_reply_to=threading.in_reply_to,
        references=" ".join(threading.references) or None,
    )
    message = await append_message(session, ticket, draft, now=now, actor=actor)
    stored = [await _store_attachment(session, storage, message, f) for f in attachments]
    if not mailed:
        await record_event(
            session, actor, "reply.widget_only", target(ticket), message=message.id
        )
        return QueuedReply(message, None, stored, [])

    history = await quoted_history(session, ticket, brand=brand, exclude_message_id=message.id)
    rendered = render_mail(
        "reply" if followup is None else "widget-reply",
        await learner_locale(session, ticket),
        {
            "body": text,
            "operator_name": operator.name,
            "brand": brand,
            "ticket_number": ticket.number,
            "history": history,
            **({} if followup is None else {"conversation_url": followup.conversation_url}),
        },
    )
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name=brand,
        reply_to=reply_address(settings, ticket),
        to=Recipient(to, ticket.requester_name),
        cc=cc,
        subject=reply_subject(ticket.subject, ticket.number),
        message_id=message_id,
        date=now,
        text=rendered.text,
        html=rendered.html,
        in_reply_to=threading.in_reply_to,
        references=threading.references,
        attachments=[MailAttachment(f.filename, f.content_type, f.content) for f in attachments],
        loop_stamp=settings.support_address,
    )
    outbound = await add_to_outbox(
        session,
        mail,
        kind="reply",
        ticket=ticket,
        message=message,
        now=now,
        not_before=followup.not_before if followup is not None else None,
    )
    overridden = [s.address for s in suppressed]
    await record_event(
        session,
        actor,
        "reply.queued",
        target(ticket),
        message=message.id,
        outbound_email=outbound.id,
        recipients=len(outbound.recipients),
        attachments=len(stored),
        suppressed_overridden=len(overridden),
    )
    return QueuedReply(message, outbound, stored, overridden)


async def _store_attachment(
    session: AsyncSession, storage: FileStorage, message: Message, upload: UploadedFile
) -> Attachment:
    """Keep the file by SHA-256 (like inbound attachments) and link it to the message."""
    assert message.id is not None
    file = storage.put("attachments", upload.content)
    attachment = Attachment(
        message_id=message.id,
        filename=safe_filename(upload.filename),
        content_type=mime_type(upload.content_type),
        size=file.size,
        sha256=file.sha256,
        storage_path=file.path,
    )
    session.add(attachment)
    await session.flush()
    return attachment
