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
    # The newest message id the page has (what a reconnecting browser resumes from).
    last_message_id: int
    # Ids of the messages on the page; None until the first catch-up reads them (every
    # message up to `last_message_id` is on the page then).
    shown: set[int] | None = None
    delivery: dict[int, str] = field(default_factory=dict)
    facts: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewMessage:
    item: ConversationItem
    # The message it follows in the conversation (None: the first), so a message moved or
    # merged in from another ticket lands in its place, not at the end.
    after: int | None


@dataclass(frozen=True)
class TicketChanges:
    messages: list[NewMessage]
    # Messages no longer on the ticket (moved, split off or merged away).
    removed: list[int]
    # Message id → (status, label) for replies whose delivery status changed.
    delivery: dict[int, tuple[str, str]]
    # The ticket's fields when they changed (None: unchanged); `gone` when it was deleted.
    facts: dict[str, Any] | None
    gone: bool = False


async def catch_up(session: AsyncSession, view: TicketView) -> TicketChanges:
    """Everything that changed on the ticket since `view`; `view` is moved forward."""
    facts = await _facts(session, view.ticket_id)
    if facts is None:
        return TicketChanges([], [], {}, None, gone=True)
    order = await _conversation_order(session, view.ticket_id)
    if view.shown is None:
        view.shown = {i for i in order if i <= view.last_message_id}
    previous = dict(zip(order, [None, *order[:-1]], strict=True))
    new_ids = [i for i in order if i not in view.shown]
    removed = sorted(view.shown - set(order))
    statuses = await _delivery_statuses(session, view.ticket_id)
    rows = await _message_rows(session, new_ids, statuses)
    view.shown = set(order)
    view.last_message_id = max([view.last_message_id, *order])
    changed = {
        message_id: (status, DELIVERY_LABELS.get(status, status))
        for message_id, status in statuses.items()
        if view.delivery.get(message_id) != status
    }
    view.delivery = statuses
    new_facts = facts if facts != view.facts else None
    view.facts = facts
    messages = [
        NewMessage(item, previous[item.row.message.id or 0]) for item in conversation_items(rows)
    ]
    return TicketChanges(messages, removed, changed, new_facts)


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


async def _conversation_order(session: AsyncSession, ticket_id: int) -> list[int]:
    """The ticket's message ids in the order the page shows them."""
    ids = await session.scalars(
        select(col(Message.id))
        .where(col(Message.ticket_id) == ticket_id)
        .order_by(col(Message.created_at), col(Message.id))
    )
    return [int(i) for i in ids if i is not None]


async def _message_rows(
    session: AsyncSession, ids: list[int], statuses: dict[int, str]
) -> list[MessageRow]:
    """These messages, with attachments and delivery status, in the order of `ids`."""
    if not ids:
        return []
    found = {
        m.id: m for m in await session.scalars(select(Message).where(col(Message.id).in_(ids)))
    }
    messages = [found[i] for i in ids if i in found]
    attachments: dict[int | None, list[Attachment]] = {}
    for attachment in await session.scalars(
        select(Attachment).where(col(Attachment.message_id).in_(ids)).order_by(col(Attachment.id))
    ):
        attachments.setdefault(attachment.message_id, []).append(attachment)
    return [MessageRow(m, attachments.get(m.id, []), statuses.get(m.id or 0)) for m in messages]
