"""The inbox's queues: named ticket lists with counts, filters and keyset pagination.

The ordering, cursor, status/assignee/text conditions and row shape are those of the
operator API's list (`helpdesk.tickets.queries`), so a page of a queue and a page of
`GET /api/v1/tickets` agree; a queue only adds its own condition and the inbox's extra
filters (channel, tag).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.errors import ValidationFailed
from helpdesk.models import Message, Operator, Ticket
from helpdesk.models.tickets import CHANNELS
from helpdesk.tickets import queries
from helpdesk.tickets.queries import PAGE_SIZE, TicketPage, TicketRow

ACTIVE = ("new", "open", "pending")


@dataclass(frozen=True)
class Queue:
    key: str
    title: str


QUEUES = (
    Queue("unassigned", "Unassigned"),
    Queue("mine", "Mine"),
    Queue("open", "All open"),
    Queue("pending", "Pending"),
    Queue("solved", "Solved"),
    Queue("review", "Needs review"),
    Queue("machine", "Machine mail"),
    Queue("all", "All tickets"),
)
QUEUE_KEYS = frozenset(q.key for q in QUEUES)


@dataclass(frozen=True)
class QueueFilters:
    status: str | None = None
    assignee: str | None = None
    channel: str | None = None
    tag: str | None = None
    q: str | None = None


def _has_machine_mail() -> ColumnElement[bool]:
    return exists().where(
        col(Message.ticket_id) == col(Ticket.id), col(Message.machine).is_not(None)
    )


def queue_condition(key: str, operator: Operator) -> ColumnElement[bool]:
    """What puts a ticket in a queue (unknown keys are a 422 naming `queue`)."""
    status = col(Ticket.status)
    conditions: dict[str, ColumnElement[bool]] = {
        "unassigned": and_(col(Ticket.assignee_id).is_(None), status.in_(("new", "open"))),
        "mine": and_(col(Ticket.assignee_id) == operator.id, status.in_(ACTIVE)),
        "open": status.in_(("new", "open")),
        "pending": status == "pending",
        "solved": status == "solved",
        "review": and_(col(Ticket.needs_review).is_(True), status != "closed"),
        "machine": _has_machine_mail(),
        "all": true(),
    }
    if key not in conditions:
        raise ValidationFailed({"queue": f"must be one of {', '.join(sorted(conditions))}"})
    return conditions[key]


async def queue_counts(session: AsyncSession, operator: Operator) -> dict[str, int]:
    """How many tickets each queue holds, in one query."""
    columns = [
        func.count().filter(queue_condition(queue.key, operator)).label(queue.key)
        for queue in QUEUES
    ]
    row = (await session.execute(select(*columns).select_from(Ticket))).one()
    return {queue.key: int(row._mapping[queue.key] or 0) for queue in QUEUES}


async def list_queue(
    session: AsyncSession,
    *,
    operator: Operator,
    queue: str,
    filters: QueueFilters,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> TicketPage:
    """One page of a queue, newest human activity first (the API list's order and cursor)."""
    query = queries._ticket_rows().where(queue_condition(queue, operator))
    conditions = [
        queries._status_condition(filters.status),
        await queries._assignee_condition(session, operator, filters.assignee),
        queries._text_condition(filters.q),
        _channel_condition(filters.channel),
        _tag_condition(session, filters.tag),
        queries._after_cursor(cursor),
    ]
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    query = query.order_by(col(Ticket.last_message_at).desc(), col(Ticket.id).desc()).limit(
        limit + 1
    )
    rows = [TicketRow(t, learner, email) for t, learner, email in await session.execute(query)]
    has_more = len(rows) > limit
    rows = rows[:limit]
    return TicketPage(rows, queries.encode_cursor(rows[-1].ticket) if has_more else None)


def _channel_condition(channel: str | None) -> ColumnElement[bool] | None:
    if not channel:
        return None
    if channel not in CHANNELS:
        raise ValidationFailed({"channel": f"must be one of {', '.join(CHANNELS)}"})
    return col(Ticket.channel) == channel


def _tag_condition(session: AsyncSession, tag: str | None) -> ColumnElement[bool] | None:
    """Tickets carrying this tag; tags are a JSON list (JSONB on PostgreSQL)."""
    wanted = (tag or "").strip().lower()
    if not wanted:
        return None
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(col(Ticket.tags), JSONB).contains([wanted])
    each = func.json_each(col(Ticket.tags)).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == wanted))
