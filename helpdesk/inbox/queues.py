"""The inbox's queues: named ticket lists with counts, filters, search and keyset pages.

Rows, cursor and search are those of the operator API's list (`helpdesk.tickets.queries`),
so a queue page and `GET /api/v1/tickets` agree; a queue adds its own condition (and the
privacy queue its order: the nearest legal deadline first, so overdue requests lead), and
the inbox adds two filters (channel, tag). Queues are work lists: closed tickets appear only
in "All tickets" and in searches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.clock import utcnow
from helpdesk.errors import ValidationFailed
from helpdesk.models import Message, Operator, PrivacyRequest, Ticket
from helpdesk.models.privacy import OPEN_STATUSES as OPEN_PRIVACY
from helpdesk.models.tickets import CHANNELS
from helpdesk.models.types import UtcDateTime
from helpdesk.privacy.restriction import restricted_learner_ids, visible_unless
from helpdesk.tickets.queries import (
    BY_ACTIVITY,
    PAGE_SIZE,
    Ordering,
    TicketPage,
    assignee_condition,
    keyset_page,
    status_condition,
    ticket_rows,
)
from helpdesk.tickets.service_levels import ACTIVE_STATUSES

WAITING = ("new", "open")


@dataclass(frozen=True)
class Queue:
    key: str
    title: str
    # Whether the queue shows a count (a count of every ticket ever is not worth a scan).
    counted: bool = True


QUEUES = (
    Queue("unassigned", "Unassigned"),
    Queue("mine", "Mine"),
    Queue("open", "All open"),
    Queue("pending", "Pending"),
    Queue("breaches", "Breached SLA"),
    Queue("review", "Needs review"),
    Queue("privacy", "Privacy requests"),
    Queue("machine", "Machine mail"),
    Queue("solved", "Solved"),
    Queue("all", "All tickets", counted=False),
)
QUEUE_KEYS = frozenset(q.key for q in QUEUES)


@dataclass(frozen=True)
class QueueFilters:
    status: str | None = None
    assignee: str | None = None
    channel: str | None = None
    tag: str | None = None
    q: str | None = None


def breached(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """An active ticket past its first-response or resolution due time."""
    return and_(
        col(Ticket.status).in_(ACTIVE_STATUSES),
        or_(
            and_(
                col(Ticket.first_response_at).is_(None),
                col(Ticket.first_response_due_at) < now,
            ),
            col(Ticket.resolution_due_at) < now,
        ),
    )


def _has_machine_mail() -> ColumnElement[bool]:
    # A hash semi-join of two small indexes: the active tickets' covering index (it holds
    # the id) and the partial index of machine mail. `id + 0` keeps the planner from
    # looking up every machine message's ticket by primary key instead, which at 5,000
    # machine messages (most on closed tickets) took 200 ms.
    with_machine_mail = select(col(Message.ticket_id)).where(col(Message.machine).is_not(None))
    return and_(
        col(Ticket.status).in_(ACTIVE_STATUSES), (col(Ticket.id) + 0).in_(with_machine_mail)
    )


def _open_privacy_request() -> ColumnElement[bool]:
    return col(PrivacyRequest.status).in_(OPEN_PRIVACY)


def queue_condition(
    key: str,
    operator_id: int | None | BindParameter[int],
    now: datetime | BindParameter[datetime],
) -> ColumnElement[bool]:
    """What puts a ticket in a queue (unknown keys are a 422 naming `queue`).

    `operator_id` is whose "mine" it is; it and `now` may be bound parameters.
    """
    status = col(Ticket.status)
    conditions: dict[str, ColumnElement[bool]] = {
        "unassigned": and_(col(Ticket.assignee_id).is_(None), status.in_(WAITING)),
        "mine": and_(col(Ticket.assignee_id) == operator_id, status.in_(ACTIVE_STATUSES)),
        "open": status.in_(WAITING),
        "pending": status == "pending",
        "solved": status == "solved",
        "review": and_(col(Ticket.needs_review).is_(True), status.in_(ACTIVE_STATUSES)),
        "machine": _has_machine_mail(),
        "breaches": breached(now),
        "privacy": _open_privacy_request(),
        "all": true(),
    }
    if key not in conditions:
        raise ValidationFailed({"queue": f"must be one of {', '.join(sorted(conditions))}"})
    return conditions[key]


def _privacy_due() -> ColumnElement[datetime]:
    return func.coalesce(col(PrivacyRequest.extended_until), col(PrivacyRequest.due_at))


async def queue_counts(
    session: AsyncSession, operator: Operator, now: datetime | None = None
) -> dict[str, int]:
    """How many tickets each counted queue holds, in one statement.

    The active queues are counted from one partial index (ix_tickets_active_service);
    solved, machine mail and privacy from their own small indexes.
    """
    # A restricted learner's tickets are not counted (privacy-request tickets excepted).
    restricted = await restricted_learner_ids(session)
    params: dict[str, Any] = {"operator_id": operator.id, "now": now or utcnow()}
    if restricted:
        params["restricted"] = restricted
    row = (await session.execute(_counts_statement(bool(restricted)), params)).one()
    return {queue.key: int(row._mapping[queue.key] or 0) for queue in QUEUES if queue.counted}


@functools.lru_cache(maxsize=2)
def _counts_statement(any_restricted: bool) -> Select[Any]:
    """`queue_counts`' SELECT, built once per shape: building it took ~2 ms of Python per
    page, longer than the page's own rows take to read; the operator, the time and the
    restricted learners are bound on each run."""
    status = col(Ticket.status)
    operator_id = bindparam("operator_id", type_=Integer)
    now = bindparam("now", type_=UtcDateTime)
    active = [
        func.count().filter(queue_condition(key, operator_id, now)).label(key)
        for key in ("unassigned", "mine", "open", "pending", "review", "breaches")
    ]
    visible = [visible_unless(bindparam("restricted", expanding=True))] if any_restricted else []
    solved = select(func.count()).select_from(Ticket).where(status == "solved", *visible)
    machine = select(func.count()).select_from(Ticket).where(_has_machine_mail(), *visible)
    privacy = select(func.count()).select_from(PrivacyRequest).where(_open_privacy_request())
    columns = [
        *active,
        solved.scalar_subquery().label("solved"),
        machine.scalar_subquery().label("machine"),
        privacy.scalar_subquery().label("privacy"),
    ]
    return select(*columns).select_from(Ticket).where(status.in_(ACTIVE_STATUSES), *visible)


async def list_queue(
    session: AsyncSession,
    *,
    operator: Operator,
    queue: str,
    filters: QueueFilters,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    now: datetime | None = None,
) -> TicketPage:
    """One page of a queue: newest human activity first (privacy: nearest deadline first;
    a search: best match first, each row with the matched text)."""
    query = ticket_rows().where(queue_condition(queue, operator.id, now or utcnow()))
    ordering: Ordering = BY_ACTIVITY
    if queue == "privacy":
        query = query.join(PrivacyRequest, col(PrivacyRequest.ticket_id) == col(Ticket.id))
        ordering = Ordering("due", (_privacy_due(), col(Ticket.id)), descending=False)
    conditions = [
        status_condition(filters.status),
        await assignee_condition(session, operator, filters.assignee),
        _channel_condition(filters.channel),
        _tag_condition(session, filters.tag),
    ]
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    page = await keyset_page(session, query, ordering, cursor=cursor, q=filters.q, limit=limit)
    if queue == "privacy":
        page = await _with_privacy_due(session, page)
    return page


async def _with_privacy_due(session: AsyncSession, page: TicketPage) -> TicketPage:
    ids = [row.ticket.id for row in page.items]
    found = await session.execute(
        select(col(PrivacyRequest.ticket_id), _privacy_due()).where(
            col(PrivacyRequest.ticket_id).in_(ids)
        )
    )
    due = {ticket_id: at for ticket_id, at in found}
    items = [replace(row, privacy_due_at=due.get(row.ticket.id or 0)) for row in page.items]
    return TicketPage(items, page.next_cursor)


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
