"""Reading tickets: the filtered, keyset-paginated list and the full ticket detail.

The list is ordered by `last_message_at` desc, then id desc; the cursor is the position of
the last row shown (base64url JSON), so pages neither repeat nor skip rows while new
tickets arrive at the top.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.errors import NotFound, ValidationFailed
from helpdesk.models import (
    Attachment,
    Enrolment,
    Learner,
    Message,
    Operator,
    Order,
    OutboundEmail,
    Ticket,
    TicketOrder,
)
from helpdesk.models.tickets import STATUSES
from helpdesk.operators.service import find_operator
from helpdesk.privacy.schemas import privacy_request_of

PAGE_SIZE = 25


@dataclass(frozen=True)
class TicketRow:
    """A ticket with what its list item shows besides its own columns."""

    ticket: Ticket
    learner: Learner | None
    assignee_email: str | None


@dataclass(frozen=True)
class TicketPage:
    items: list[TicketRow]
    next_cursor: str | None


@dataclass(frozen=True)
class MessageRow:
    message: Message
    attachments: list[Attachment]
    # Delivery status of the outgoing mail carrying an outbound message, if any.
    delivery_status: str | None


@dataclass(frozen=True)
class OrderRow:
    order: Order
    # True when the ticket is explicitly about this order (TicketOrder), not just the learner's.
    linked: bool


@dataclass(frozen=True)
class TicketDetail:
    row: TicketRow
    messages: list[MessageRow]
    enrolments: list[Enrolment]
    orders: list[OrderRow]
    privacy_request: Any = field(default=None)


def _ticket_rows() -> Select[Ticket, Learner | None, str | None]:
    return (
        select(Ticket, Learner, col(Operator.email))
        .outerjoin(Learner, col(Learner.id) == col(Ticket.learner_id))
        .outerjoin(Operator, col(Operator.id) == col(Ticket.assignee_id))
    )


async def list_tickets(
    session: AsyncSession,
    *,
    operator: Operator,
    status: str | None = None,
    assignee: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> TicketPage:
    """One page of tickets, newest human activity first, filtered as the inbox asks.

    `status` may list several statuses separated by commas; `assignee` is `me`, `none` or
    an operator's email; `q` matches subject, requester and message text (any case).
    """
    query = _ticket_rows()
    for condition in [
        _status_condition(status),
        await _assignee_condition(session, operator, assignee),
        _text_condition(q),
        _after_cursor(cursor),
    ]:
        if condition is not None:
            query = query.where(condition)
    query = query.order_by(col(Ticket.last_message_at).desc(), col(Ticket.id).desc()).limit(
        limit + 1
    )
    rows = [TicketRow(t, learner, email) for t, learner, email in await session.execute(query)]
    has_more = len(rows) > limit
    rows = rows[:limit]
    return TicketPage(rows, encode_cursor(rows[-1].ticket) if has_more else None)


def _status_condition(status: str | None) -> ColumnElement[bool] | None:
    if not status:
        return None
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        raise ValidationFailed({"status": f"must be one of {', '.join(STATUSES)}"})
    return col(Ticket.status).in_(wanted)


async def _assignee_condition(
    session: AsyncSession, operator: Operator, assignee: str | None
) -> ColumnElement[bool] | None:
    if not assignee:
        return None
    if assignee == "me":
        return col(Ticket.assignee_id) == operator.id
    if assignee == "none":
        return col(Ticket.assignee_id).is_(None)
    other = await find_operator(session, assignee.strip())
    if other is None:
        raise ValidationFailed({"assignee": "must be me, none or an operator's email"})
    return col(Ticket.assignee_id) == other.id


def _text_condition(q: str | None) -> ColumnElement[bool] | None:
    """Case-insensitive substring match (full-text search comes with the inbox)."""
    needle = (q or "").strip().lower()
    if not needle:
        return None
    in_messages = exists().where(
        col(Message.ticket_id) == col(Ticket.id),
        func.lower(col(Message.text)).contains(needle, autoescape=True),
    )
    return or_(
        func.lower(col(Ticket.subject)).contains(needle, autoescape=True),
        func.lower(col(Ticket.requester)).contains(needle, autoescape=True),
        func.lower(col(Ticket.requester_name)).contains(needle, autoescape=True),
        in_messages,
    )


def encode_cursor(ticket: Ticket) -> str:
    """The opaque position just after this ticket in the list order."""
    position = {"at": ticket.last_message_at.isoformat(), "id": ticket.id}
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after_cursor(cursor: str | None) -> ColumnElement[bool] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at = datetime.fromisoformat(position["at"])
        ticket_id = int(position["id"])
        if at.tzinfo is None:
            raise ValueError("naive time")
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": "not a cursor returned by this list"}) from None
    return or_(
        col(Ticket.last_message_at) < at,
        and_(col(Ticket.last_message_at) == at, col(Ticket.id) < ticket_id),
    )


async def ticket_row(session: AsyncSession, ticket: Ticket) -> TicketRow:
    """The list-item view of a ticket already loaded (e.g. after an update)."""
    learner = await session.get(Learner, ticket.learner_id) if ticket.learner_id else None
    assignee = await session.get(Operator, ticket.assignee_id) if ticket.assignee_id else None
    return TicketRow(ticket, learner, assignee.email if assignee else None)


async def get_ticket_detail(session: AsyncSession, number: int) -> TicketDetail:
    """The ticket with its messages (oldest first), learner, enrolments and orders."""
    found = (await session.execute(_ticket_rows().where(col(Ticket.number) == number))).first()
    if found is None:
        raise NotFound(f"No ticket #{number}.")
    ticket, learner, assignee_email = found
    row = TicketRow(ticket, learner, assignee_email)
    learner_id = row.learner.id if row.learner else None
    return TicketDetail(
        row=row,
        messages=await _message_rows(session, row.ticket),
        enrolments=await _enrolments(session, learner_id),
        orders=await _orders(session, row.ticket, learner_id),
        privacy_request=await privacy_request_of(session, row.ticket),
    )


async def _message_rows(session: AsyncSession, ticket: Ticket) -> list[MessageRow]:
    messages = list(
        await session.scalars(
            select(Message)
            .where(col(Message.ticket_id) == ticket.id)
            .order_by(col(Message.created_at), col(Message.id))
        )
    )
    ids = [m.id for m in messages]
    attachments: dict[int | None, list[Attachment]] = {}
    for attachment in await session.scalars(
        select(Attachment).where(col(Attachment.message_id).in_(ids)).order_by(col(Attachment.id))
    ):
        attachments.setdefault(attachment.message_id, []).append(attachment)
    statuses: dict[int | None, str] = {}
    outbound_ids = [m.id for m in messages if m.direction == "outbound"]
    # Ordered by id so that the newest outgoing mail for a message wins.
    for message_id, status in await session.execute(
        select(col(OutboundEmail.message_id), col(OutboundEmail.status))
        .where(col(OutboundEmail.message_id).in_(outbound_ids))
        .order_by(col(OutboundEmail.id))
    ):
        statuses[message_id] = status
    return [MessageRow(m, attachments.get(m.id, []), statuses.get(m.id)) for m in messages]


async def _enrolments(session: AsyncSession, learner_id: int | None) -> list[Enrolment]:
    if learner_id is None:
        return []
    query = (
        select(Enrolment)
        .where(col(Enrolment.learner_id) == learner_id)
        .order_by(col(Enrolment.course))
    )
    return list(await session.scalars(query))


async def _orders(session: AsyncSession, ticket: Ticket, learner_id: int | None) -> list[OrderRow]:
    """Orders the ticket is linked to, plus the learner's other orders, newest first.

    Operators answering "where is my certificate / refund" need the learner's purchases
    even when nobody linked one yet; `linked` tells the two apart.
    """
    linked_ids = select(col(TicketOrder.order_id)).where(col(TicketOrder.ticket_id) == ticket.id)
    condition: ColumnElement[bool] = col(Order.id).in_(linked_ids)
    if learner_id is not None:
        condition = or_(condition, col(Order.learner_id) == learner_id)
    orders = await session.scalars(
        select(Order)
        .where(condition)
        .order_by(col(Order.purchased_at).desc(), col(Order.id).desc())
    )
    linked = set(await session.scalars(linked_ids))
    return [OrderRow(order, order.id in linked) for order in orders]
