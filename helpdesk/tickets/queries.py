"""Reading tickets: the filtered, keyset-paginated list and the full ticket detail.

The list is ordered by `last_message_at` desc, then id desc (search results by rank
first); the cursor is the position of the last row shown (base64url JSON), so pages
neither repeat nor skip rows while new tickets arrive at the top.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, literal, or_, select, tuple_
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
from helpdesk.privacy.restriction import visible_to_work
from helpdesk.privacy.schemas import privacy_request_of
from helpdesk.tickets.search_index import Snippet, parse_query, ranked_hits, snippets

PAGE_SIZE = 25


@dataclass(frozen=True)
class TicketRow:
    """A ticket with what its list item shows besides its own columns."""

    ticket: Ticket
    learner: Learner | None
    assignee_email: str | None
    # Set on search results: how well the ticket matched, and the text around the match.
    rank: float | None = None
    snippet: Snippet | None = None
    # Set in the privacy queue: the request's legal deadline (extended, if it was).
    privacy_due_at: datetime | None = None


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


@dataclass(frozen=True)
class Ordering:
    """A list order for keyset pages: sort keys, all ascending or all descending.

    One direction for every key lets the cursor condition be a row comparison,
    `(last_message_at, id) < (:at, :id)`, which both databases answer from an index.
    """

    name: str
    keys: tuple[Any, ...]
    descending: bool = True

    def order_by(self) -> list[ColumnElement[Any]]:
        return [key.desc() if self.descending else key.asc() for key in self.keys]


BY_ACTIVITY = Ordering("activity", (col(Ticket.last_message_at), col(Ticket.id)))


def ticket_rows() -> Select[Ticket, Learner | None, str | None]:
    """Tickets with their learner and assignee's address: the list items' query."""
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
    an operator's email; `q` is a full-text search (subject, addresses, message text),
    whose results come best match first, each with a snippet.
    """
    conditions = [
        status_condition(status),
        await assignee_condition(session, operator, assignee),
    ]
    query = ticket_rows()
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    return await keyset_page(session, query, BY_ACTIVITY, cursor=cursor, q=q, limit=limit)


async def keyset_page(
    session: AsyncSession,
    query: Select[Ticket, Learner | None, str | None],
    ordering: Ordering,
    *,
    cursor: str | None,
    q: str | None = None,
    limit: int = PAGE_SIZE,
) -> TicketPage:
    """One page of `query` in `ordering` after `cursor`; with `q`, search results by rank.

    The keys are selected too, so the cursor is the position of the last row shown: pages
    neither repeat nor skip rows while new tickets arrive at the top.
    """
    visible = await visible_to_work(session)  # restricted learners' tickets stay out
    if visible is not None:
        query = query.where(visible)
    search = parse_query(q) if q and q.strip() else None
    if search is not None:
        if search.is_empty:
            return TicketPage([], None)
        hits = await ranked_hits(session, search)
        query = query.join(hits, hits.c.ticket_id == col(Ticket.id))
        ordering = Ordering("rank", (hits.c.rank, *BY_ACTIVITY.keys))
    after = after_cursor(cursor, ordering)
    if after is not None:
        query = query.where(after)
    statement = query.add_columns(*ordering.keys).order_by(*ordering.order_by()).limit(limit + 1)
    found = list(await session.execute(statement))
    has_more = len(found) > limit
    found = found[:limit]
    rank_of = (lambda r: float(r[3])) if search is not None else (lambda r: None)
    rows = [TicketRow(r[0], r[1], r[2], rank=rank_of(r)) for r in found]
    if search is not None and rows:
        found_snippets = await snippets(session, search, [r.ticket.id or 0 for r in rows])
        rows = [replace(r, snippet=found_snippets.get(r.ticket.id or 0)) for r in rows]
    next_cursor = encode_cursor(ordering, found[-1][3:]) if has_more else None
    return TicketPage(rows, next_cursor)


def status_condition(status: str | None) -> ColumnElement[bool] | None:
    """Tickets in one of the comma-separated statuses (422 naming `status` if unknown)."""
    if not status:
        return None
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        raise ValidationFailed({"status": f"must be one of {', '.join(STATUSES)}"})
    return col(Ticket.status).in_(wanted)


async def assignee_condition(
    session: AsyncSession, operator: Operator, assignee: str | None
) -> ColumnElement[bool] | None:
    """`me`, `none` or an operator's email (422 naming `assignee` otherwise)."""
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


def encode_cursor(ordering: Ordering, values: Sequence[Any]) -> str:
    """The opaque position just after a row with these key values in this order."""
    keys = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps({"o": ordering.name, "k": keys}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(cursor: str | None, ordering: Ordering) -> ColumnElement[bool] | None:
    """The rows after the cursor's position (422 naming `cursor` if it is not one of ours)."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if position["o"] != ordering.name or len(position["k"]) != len(ordering.keys):
            raise ValueError("another list's cursor")
        values = [
            _key_value(key, value) for key, value in zip(ordering.keys, position["k"], strict=True)
        ]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": "not a cursor returned by this list"}) from None
    bound = tuple_(*(literal(v, key.type) for key, v in zip(ordering.keys, values, strict=True)))
    keys = tuple_(*ordering.keys)
    return keys < bound if ordering.descending else keys > bound


def _key_value(key: Any, value: Any) -> Any:
    """A cursor value checked against its key's type (times are ISO text with an offset)."""
    python_type = key.type.python_type
    if isinstance(value, str) and python_type in (datetime, object):
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at
    if python_type is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if python_type is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError("wrong type")


async def ticket_row(session: AsyncSession, ticket: Ticket) -> TicketRow:
    """The list-item view of a ticket already loaded (e.g. after an update)."""
    learner = await session.get(Learner, ticket.learner_id) if ticket.learner_id else None
    assignee = await session.get(Operator, ticket.assignee_id) if ticket.assignee_id else None
    return TicketRow(ticket, learner, assignee.email if assignee else None)


async def get_ticket_detail(session: AsyncSession, number: int) -> TicketDetail:
    """The ticket with its messages (oldest first), learner, enrolments and orders."""
    found = (await session.execute(ticket_rows().where(col(Ticket.number) == number))).first()
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
