"""What a new mail about a ticket refers to: its threading headers and the quoted history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Message, Ticket
from helpdesk.outbound.headers import message_id_list

QUOTED_MESSAGES = 3


@dataclass(frozen=True)
class ThreadHeaders:
    """In-Reply-To and References of the next mail in a ticket (ids without brackets)."""

    in_reply_to: str | None
    references: list[str]


@dataclass(frozen=True)
class QuotedMessage:
    """One earlier message as it is quoted below a reply."""

    author: str
    at: datetime
    text: str


def _human() -> ColumnElement[bool]:
    """Learner mail that is not machine mail, or an operator's reply (DESIGN §7)."""
    return or_(
        and_(col(Message.direction) == "inbound", col(Message.machine).is_(None)),
        and_(col(Message.direction) == "outbound", col(Message.author_kind) == "operator"),
    )


async def thread_headers(session: AsyncSession, ticket: Ticket) -> ThreadHeaders:
    """Reply to the learner's latest mail; without one (widget, form), to our latest mail.

    RFC 5322 §3.6.4: References is the parent's References (or its In-Reply-To) followed
    by the parent's Message-ID; `message_id_list` trims the middle of long chains.
    """
    parent = await _latest_with_message_id(session, ticket, "inbound")
    if parent is None:
        parent = await _latest_with_message_id(session, ticket, "outbound")
    return replying_to(parent) if parent is not None else ThreadHeaders(None, [])


def replying_to(parent: Message) -> ThreadHeaders:
    """In-Reply-To and References of a mail that answers `parent`."""
    if parent.rfc_message_id is None:
        return ThreadHeaders(None, [])
    ancestors = (parent.references or parent.in_reply_to or "").split()
    chain = message_id_list([*ancestors, parent.rfc_message_id])
    return ThreadHeaders(parent.rfc_message_id, chain)


async def _latest_with_message_id(
    session: AsyncSession, ticket: Ticket, direction: str
) -> Message | None:
    query = (
        select(Message)
        .where(
            col(Message.ticket_id) == ticket.id,
            col(Message.direction) == direction,
            col(Message.rfc_message_id).is_not(None),
            _human(),
        )
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(1)
    )
    return await session.scalar(query)


async def quoted_history(
    session: AsyncSession,
    ticket: Ticket,
    *,
    brand: str,
    exclude_message_id: int | None = None,
    limit: int = QUOTED_MESSAGES,
) -> list[QuotedMessage]:
    """The latest few human messages, newest first, as the learner would want them quoted.

    Inbound mail is quoted by its new text only (`reply_text`, without the quotes the
    learner's own client added), so the history does not grow with every round.
    """
    query = (
        select(Message)
        .where(col(Message.ticket_id) == ticket.id, _human())
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(limit + 1)
    )
    quoted: list[QuotedMessage] = []
    for message in await session.scalars(query):
        text = (message.reply_text or message.text or "").strip()
        if message.id == exclude_message_id or not text:
            continue
        quoted.append(QuotedMessage(_author(message, brand), message.created_at, text))
    return quoted[:limit]


def _author(message: Message, brand: str) -> str:
    if message.direction == "outbound":
        return f"{message.author_name} ({brand})" if message.author_name else brand
    return message.author_name or message.author_email or "?"
