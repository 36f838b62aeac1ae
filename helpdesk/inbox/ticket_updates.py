"""What an open ticket page needs to catch up: new messages, delivery statuses, ticket fields.

A `TicketView` remembers what the page shows (the newest message, each reply's delivery
status, the ticket's fields); `catch_up` re-reads the database and returns only what
differs, updating the view. Events on the ticket's channel are only the reason to call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.inbox.conversation import DELIVERY_LABELS, ConversationItem, conversation_items
from helpdesk.models import Attachment, Message, Operator, OutboundEmail, Ticket
from helpdesk.tickets.queries import MessageRow


@dataclass
class TicketView:
    ticket_id: int
    last_message_id: int
    delivery: dict[int, str] = field(default_factory=dict)
    facts: dict[str, Any] | None = None


@dataclass(frozen=True)
class TicketChanges:
    messages: list[ConversationItem]
    # Message id → (status, label) for replies whose delivery status changed.
    delivery: dict[int, tuple[str, str]]
    # The ticket's fields when they changed (None: unchanged); `gone` when it was deleted.
    facts: dict[str, Any] | None
    gone: bool = False


async def catch_up(session: AsyncSession, view: TicketView) -> TicketChanges:
    """Everything that changed on the ticket since `view`; `view` is moved forward."""
    facts = await _facts(session, view.ticket_id)
    if facts is None:
        return TicketChanges([], {}, None, gone=True)
    statuses = await _delivery_statuses(session, view.ticket_id)
    rows = await _new_messages(session, view.ticket_id, view.last_message_id, statuses)
    if rows:
        view.last_message_id = max(view.last_message_id, *(r.message.id or 0 for r in rows))
    changed = {
        message_id: (status, DELIVERY_LABELS.get(status, status))
        for message_id, status in statuses.items()
        if view.delivery.get(message_id) != status
    }
    view.delivery = statuses
    new_facts = facts if facts != view.facts else None
    view.facts = facts
    return TicketChanges(conversation_items(rows), changed, new_facts)


async def newest_message_id(session: AsyncSession, ticket_id: int) -> int:
    """The id of the ticket's newest message (0 when it has none)."""
    newest = await session.scalar(
        select(col(Message.id))
        .where(col(Message.ticket_id) == ticket_id)
        .order_by(col(Message.id).desc())
        .limit(1)
    )
    return int(newest or 0)


async def _facts(session: AsyncSession, ticket_id: int) -> dict[str, Any] | None:
    found = (
        await session.execute(
            select(Ticket, col(Operator.name))
            .outerjoin(Operator, col(Operator.id) == col(Ticket.assignee_id))
            .where(col(Ticket.id) == ticket_id)
        )
    ).first()
    if found is None:
        return None
    ticket, assignee = found
    return {
        "status": ticket.status,
        "status_label": ticket.status.capitalize(),
        "priority": ticket.priority,
        "priority_label": f"{ticket.priority.capitalize()} priority",
        "assignee": assignee,
        "tags": list(ticket.tags),
        "needs_review": bool(ticket.needs_review),
    }


async def _delivery_statuses(session: AsyncSession, ticket_id: int) -> dict[int, str]:
    """Delivery status of each reply on the ticket (its newest outgoing mail wins)."""
    statuses: dict[int, str] = {}
    for message_id, status in await session.execute(
        select(col(OutboundEmail.message_id), col(OutboundEmail.status))
        .join(Message, col(Message.id) == col(OutboundEmail.message_id))
        .where(col(Message.ticket_id) == ticket_id)
        .order_by(col(OutboundEmail.id))
    ):
        if message_id is not None:
            statuses[message_id] = status
    return statuses


async def _new_messages(
    session: AsyncSession, ticket_id: int, after_id: int, statuses: dict[int, str]
) -> list[MessageRow]:
    messages = list(
        await session.scalars(
            select(Message)
            .where(col(Message.ticket_id) == ticket_id, col(Message.id) > after_id)
            .order_by(col(Message.created_at), col(Message.id))
        )
    )
    if not messages:
        return []
    attachments: dict[int | None, list[Attachment]] = {}
    for attachment in await session.scalars(
        select(Attachment)
        .where(col(Attachment.message_id).in_([m.id for m in messages]))
        .order_by(col(Attachment.id))
    ):
        attachments.setdefault(attachment.message_id, []).append(attachment)
    return [MessageRow(m, attachments.get(m.id, []), statuses.get(m.id or 0)) for m in messages]
