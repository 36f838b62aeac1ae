"""Widget conversations: start one, read and add messages, record what the widget showed.

A conversation is a ticket on channel `widget` plus a bearer token only the learner's
browser holds (256 random bits, stored as SHA-256). Every lookup is by conversation id
*and* token hash, so one conversation's token never finds another's (404). The learner
sees their own messages and operator replies, never internal notes, machine mail or
automatic mail.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.errors import NotFound, ValidationFailed
from helpdesk.live import announce_ticket_change
from helpdesk.models import Attachment, Message, Ticket, WidgetConversation
from helpdesk.models.rows import defer_inserts
from helpdesk.outbound.compose import clean_text
from helpdesk.outbound.headers import is_sendable
from helpdesk.tickets.lifecycle import (
    MessageDraft,
    append_message,
    create_ticket,
    open_followup_ticket,
    target,
)
from helpdesk.widget.followup import cancel_unseen_mail
from helpdesk.widget.uploads import checked_upload, store_upload

MAX_NAME = 200
MAX_EMAIL = 254
MAX_BODY = 5000
SUBJECT_WORDS = 12
ACTOR = "widget"
SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class StartedConversation:
    conversation: WidgetConversation
    ticket: Ticket
    message: Message
    token: str  # shown once, to the browser; only its hash is stored


def hash_token(token: str) -> str:
    """The stored form of a conversation token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def check_learner_fields(name: str, email: str, message: str) -> tuple[str, str, str]:
    """Trimmed name, address and text; 422 naming each field that is wrong."""
    name, email = " ".join(name.split()), email.strip()
    text = clean_text(message).strip()
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = "Please tell us your name."
    elif len(name) > MAX_NAME:
        problems["name"] = f"At most {MAX_NAME} characters."
    if len(email) > MAX_EMAIL or not is_sendable(email):
        problems["email"] = "Please give an email address like kari@example.no."
    problems.update(body_problems(text, "message"))
    if problems:
        raise ValidationFailed(problems)
    return name, email, text


def body_problems(text: str, field: str) -> dict[str, str]:
    if not text:
        return {field: "Please write a message."}
    if len(text) > MAX_BODY:
        return {field: f"At most {MAX_BODY} characters; please split it up."}
    return {}


def subject_from(text: str) -> str:
    """The ticket subject: the first words of the first line."""
    words = text.strip().splitlines()[0].split() if text.strip() else []
    subject = " ".join(words[:SUBJECT_WORDS])
    return subject + (" …" if len(words) > SUBJECT_WORDS else "")


async def start_conversation(
    session: AsyncSession,
    *,
    name: str,
    email: str,
    message: str,
    now: datetime,
) -> StartedConversation:
    """A new ticket on channel `widget` from an unverified learner, with its token.

    The ticket is not linked to any learner's data until the address is verified.
    """
    name, email, text = check_learner_fields(name, email, message)
    ticket, first = await create_ticket(
        session,
        subject=subject_from(text),
        channel="widget",
        requester=email,
        requester_name=name,
        first_message=learner_draft(name, email, text, thread_reason="new", verified=False),
        now=now,
        link_learner=False,
        actor=ACTOR,
    )
    token = secrets.token_urlsafe(32)
    assert ticket.id is not None
    conversation = WidgetConversation(
        public_id=secrets.token_urlsafe(12),
        ticket_id=ticket.id,
        token_hash=hash_token(token),
        name=name,
        email=email,
        created_at=now,
        last_seen_at=now,
    )
    session.add(conversation)
    await session.flush()
    return StartedConversation(conversation, ticket, first, token)


def learner_draft(
    name: str,
    email: str,
    text: str,
    *,
    thread_reason: str | None = None,
    verified: bool = True,
) -> MessageDraft:
    """A learner's message; `verified=False` shows operators the address is unproven."""
    return MessageDraft(
        direction="inbound",
        text=text,
        author_kind="learner",
        author_name=name,
        author_email=email,
        thread_reason=thread_reason,
        sender_verified=verified,
    )


# Built once: every widget request looks its conversation up this way.
_BY_ID_AND_TOKEN = select(WidgetConversation).where(
    col(WidgetConversation.public_id) == bindparam("public_id"),
    col(WidgetConversation.token_hash) == bindparam("token_hash"),
)
# A learner's post: the conversation and its ticket, locked for the new message, at once.
_BY_ID_AND_TOKEN_FOR_POSTING = (
    select(WidgetConversation, Ticket)
    .join(Ticket, col(Ticket.id) == col(WidgetConversation.ticket_id))
    .where(
        col(WidgetConversation.public_id) == bindparam("public_id"),
        col(WidgetConversation.token_hash) == bindparam("token_hash"),
    )
    .with_for_update(of=Ticket)
)


def touch(conversation: WidgetConversation, now: datetime) -> None:
    """Record the learner's activity, to the minute (one UPDATE less on most requests)."""
    if now - conversation.last_seen_at >= SEEN_RESOLUTION:
        conversation.last_seen_at = now


async def find_conversation(
    session: AsyncSession, public_id: str, token: str | None
) -> WidgetConversation:
    """The conversation this token opens; 404 for a wrong id, a wrong token or none."""
    conversation = await session.scalar(_BY_ID_AND_TOKEN, _lookup(public_id, token))
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


async def find_conversation_for_posting(
    session: AsyncSession, public_id: str, token: str | None
) -> tuple[WidgetConversation, Ticket]:
    """`find_conversation` and its ticket, locked (FOR UPDATE) for `post_message`."""
    found = (await session.execute(_BY_ID_AND_TOKEN_FOR_POSTING, _lookup(public_id, token))).first()
    if found is None:
        raise NotFound("No such conversation.")
    return found[0], found[1]


def _lookup(public_id: str, token: str | None) -> dict[str, str]:
    if not token or len(token) > 200 or len(public_id) > 32:
        raise NotFound("No such conversation.")
    return {"public_id": public_id, "token_hash": hash_token(token)}


def learner_visible():  # type: ignore[no-untyped-def]
    """Messages a learner may see: their side's human mail and operators' replies."""
    return or_(
        and_(col(Message.direction) == "inbound", col(Message.machine).is_(None)),
        and_(col(Message.direction) == "outbound", col(Message.author_kind) == "operator"),
    )


async def visible_messages(
    session: AsyncSession, ticket_id: int, *, after: int | None = None, limit: int = 500
) -> list[Message]:
    """The conversation's visible messages in order, only those newer than `after`."""
    query = select(Message).where(col(Message.ticket_id) == ticket_id, learner_visible())
    if after is not None:
        query = query.where(col(Message.id) > after)
    query = query.order_by(col(Message.id)).limit(limit)
    return list((await session.scalars(query)).all())


async def post_message(
    session: AsyncSession,
    conversation: WidgetConversation,
    body: str,
    now: datetime,
    *,
    ticket: Ticket | None = None,
) -> Message:
    """The learner writes again; on a closed ticket the conversation moves to a follow-up.

    `ticket` is the conversation's ticket when the caller holds it locked already
    (`find_conversation_for_posting`); otherwise it is read and locked here.
    """
    text = clean_text(body).strip()
    problems = body_problems(text, "body")
    if problems:
        raise ValidationFailed(problems)
    defer_inserts(session)  # the post's audit events: written together at commit
    if ticket is None:
        ticket = await session.get(Ticket, conversation.ticket_id, with_for_update=True)
    assert ticket is not None and ticket.id == conversation.ticket_id
    draft = learner_draft(
        conversation.name, conversation.email, text, verified=conversation.verified_at is not None
    )
    touch(conversation, now)
    if ticket.status != "closed":
        return await append_message(session, ticket, draft, now=now, actor=ACTOR)
    followup, message = await open_followup_ticket(
        session,
        refers_to=ticket.number,
        matched_by="new",
        first_message=draft,
        subject=ticket.subject,
        channel="widget",
        requester=ticket.requester,
        requester_name=ticket.requester_name,
        now=now,
        link_learner=False,
        actor=ACTOR,
    )
    assert followup.id is not None
    followup.learner_id = conversation.learner_id
    conversation.ticket_id = followup.id
    announce_ticket_change(session, ticket)  # open streams of the old ticket reconnect
    return message


async def mark_displayed(
    session: AsyncSession, conversation: WidgetConversation, message_id: int, now: datetime
) -> int:
    """The widget showed messages up to `message_id`: cancel their held-back mail.

    Returns how many mails were cancelled. An id that is not in this conversation is 404.
    """
    shown = await session.scalar(
        select(col(Message.id)).where(
            col(Message.id) == message_id,
            col(Message.ticket_id) == conversation.ticket_id,
            learner_visible(),
        )
    )
    if shown is None:
        raise NotFound("No such message in this conversation.")
    touch(conversation, now)
    if (conversation.last_displayed_message_id or 0) < message_id:
        conversation.last_displayed_message_id = message_id
    cancelled = await cancel_unseen_mail(session, conversation.ticket_id, message_id, now)
    if cancelled:
        ticket = await session.get(Ticket, conversation.ticket_id)
        assert ticket is not None
        await record_event(
            session, ACTOR, "widget.reply_mail_cancelled", target(ticket), mails=cancelled
        )
    return cancelled


async def post_file(
    session: AsyncSession,
    storage: FileStorage,
    conversation: WidgetConversation,
    *,
    body: str,
    filename: str | None,
    content: bytes,
    now: datetime,
) -> tuple[Message, Attachment]:
    """The learner sends a file (with an optional line of text); checked by its content."""
    name, content_type = checked_upload(filename, content)
    message = await post_message(session, conversation, body.strip() or name, now)
    attachment = await store_upload(session, storage, message, name, content_type, content)
    return message, attachment


async def learner_attachment(
    session: AsyncSession, conversation: WidgetConversation, attachment_id: int
) -> Attachment:
    """An attachment of a message this conversation's learner can see; 404 otherwise."""
    found = await session.scalar(
        select(Attachment)
        .join(Message, col(Message.id) == col(Attachment.message_id))
        .where(
            col(Attachment.id) == attachment_id,
            col(Message.ticket_id) == conversation.ticket_id,
            learner_visible(),
        )
    )
    if found is None:
        raise NotFound("No such file in this conversation.")
    return found
