"""Inbox queues: which tickets each queue holds, the counts, filters and stable keyset pages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.queues import QUEUES, QueueFilters, list_queue, queue_counts
from helpdesk.models import Message, Operator, PrivacyRequest, Ticket
from helpdesk.operators import service as operators
from tests.factories import T0, add_ticket

LATER = T0 + timedelta(days=30)


async def _operators(runtime: Runtime) -> tuple[Operator, Operator]:
    async with transaction(runtime.sessions) as session:
        me = await operators.create_operator(session, "me@kurs.example", "Me", "agent", None)
        other = await operators.create_operator(session, "ola@kurs.example", "Ola", "agent", None)
        return me, other


async def _set(runtime: Runtime, ticket: Ticket, **values: object) -> None:
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        for name, value in values.items():
            setattr(stored, name, value)


async def _queue(
    runtime: Runtime,
    operator: Operator,
    queue: str,
    filters: QueueFilters | None = None,
    cursor: str | None = None,
    limit: int = 25,
):
    async with runtime.sessions() as session:
        return await list_queue(
            session,
            operator=operator,
            queue=queue,
            filters=filters or QueueFilters(),
            cursor=cursor,
            limit=limit,
            now=LATER,
        )


async def _numbers(runtime: Runtime, operator: Operator, queue: str, **filters: str) -> list[int]:
    page = await _queue(runtime, operator, queue, QueueFilters(**filters))
    return [row.ticket.number for row in page.items]


async def test_each_queue_holds_its_tickets_and_the_counts_agree(runtime: Runtime) -> None:
    me, other = await _operators(runtime)
    t = T0
    unassigned = await add_ticket(runtime, subject="Unassigned", now=t)
    mine = await add_ticket(runtime, subject="Mine", now=t + timedelta(minutes=1))
    await _set(runtime, mine, assignee_id=me.id, status="open", first_response_at=t)
    theirs = await add_ticket(runtime, subject="Theirs", now=t + timedelta(minutes=2))
    await _set(runtime, theirs, assignee_id=other.id, status="open", first_response_at=t)
    pending = await add_ticket(runtime, subject="Pending", now=t + timedelta(minutes=3))
    await _set(runtime, pending, assignee_id=me.id, status="pending", first_response_at=t)
    solved = await add_ticket(runtime, subject="Solved", now=t + timedelta(minutes=4))
    await _set(runtime, solved, status="solved", first_response_at=t, resolved_at=t)
    closed = await add_ticket(runtime, subject="Closed", now=t + timedelta(minutes=5))
    await _set(runtime, closed, status="closed", first_response_at=t, resolved_at=t)
    review = await add_ticket(runtime, subject="Review", now=t + timedelta(minutes=6))
    await _set(runtime, review, needs_review=True, assignee_id=other.id)
    machine = await add_ticket(runtime, subject="Bounce", now=t + timedelta(minutes=7))
    async with transaction(runtime.sessions) as session:
        session.add(
            Message(ticket_id=machine.id, direction="inbound", machine="bounce", text="DSN")
        )
    await _set(runtime, machine, assignee_id=other.id, first_response_at=t)
    privacy = await add_ticket(runtime, subject="Innsyn", now=t + timedelta(minutes=8))
    await _set(runtime, privacy, assignee_id=other.id, first_response_at=t)
    async with transaction(runtime.sessions) as session:
        session.add(
            PrivacyRequest(ticket_id=privacy.id, kind="access", due_at=t + timedelta(days=31))
        )

    expected = {
        "unassigned": [unassigned.number],
        "mine": [pending.number, mine.number],
        "open": [
            privacy.number,
            machine.number,
            review.number,
            theirs.number,
            mine.number,
            unassigned.number,
        ],
        "pending": [pending.number],
        "solved": [solved.number],
        "review": [review.number],
        "machine": [machine.number],
        "privacy": [privacy.number],
        # A month later: everything still active is past its resolution due time.
        "breaches": [
            privacy.number,
            machine.number,
            review.number,
            pending.number,
            theirs.number,
            mine.number,
            unassigned.number,
        ],
    }
    for queue, numbers in expected.items():
        assert await _numbers(runtime, me, queue) == numbers, queue
    assert len(await _numbers(runtime, me, "all")) == 9
    async with runtime.sessions() as session:
        counts = await queue_counts(session, me, LATER)
    assert counts == {queue: len(numbers) for queue, numbers in expected.items()}
    assert set(counts) == {q.key for q in QUEUES if q.counted}


async def test_privacy_queue_puts_the_nearest_deadline_first(runtime: Runtime) -> None:
    me, _ = await _operators(runtime)
    tickets = [await add_ticket(runtime, subject=f"Sak {n}", now=T0) for n in range(4)]
    due = [T0 + timedelta(days=40), T0 + timedelta(days=10), T0 + timedelta(days=20), T0]
    statuses = ["verified", "suggested", "completed", "awaiting_verification"]
    async with transaction(runtime.sessions) as session:
        for ticket, at, status in zip(tickets, due, statuses, strict=True):
            session.add(
                PrivacyRequest(ticket_id=ticket.id, kind="erasure", due_at=at, status=status)
            )
        # An extension moves the deadline: the first request is now due after 50 days.
        await session.flush()
        request = await session.scalar(
            select(PrivacyRequest).where(PrivacyRequest.ticket_id == tickets[1].id)
        )
        assert request is not None
        request.extended_until = T0 + timedelta(days=50)

    page = await _queue(runtime, me, "privacy")

    assert [row.ticket.number for row in page.items] == [
        tickets[3].number,  # overdue
        tickets[0].number,  # 40 days
        tickets[1].number,  # extended to 50 days
    ]
    assert page.items[0].privacy_due_at == T0
    assert page.items[2].privacy_due_at == T0 + timedelta(days=50)

    first = await _queue(runtime, me, "privacy", limit=2)
    rest = await _queue(runtime, me, "privacy", cursor=first.next_cursor, limit=2)
    assert [r.ticket.number for r in first.items + rest.items] == [
        r.ticket.number for r in page.items
    ]


async def test_filters_narrow_a_queue(runtime: Runtime) -> None:
    me, other = await _operators(runtime)
    email = await add_ticket(runtime, subject="E-post", now=T0)
    widget = await add_ticket(runtime, subject="Chat", channel="widget", now=T0)
    await _set(runtime, widget, tags=["faktura", "vip"], assignee_id=other.id, status="open")
    form = await add_ticket(runtime, subject="Skjema", channel="form", now=T0)
    await _set(runtime, form, tags=["faktura"], status="pending", assignee_id=me.id)

    assert await _numbers(runtime, me, "all", channel="widget") == [widget.number]
    assert sorted(await _numbers(runtime, me, "all", tag="faktura")) == sorted(
        [widget.number, form.number]
    )
    assert await _numbers(runtime, me, "all", tag="VIP") == [widget.number]
    assert await _numbers(runtime, me, "all", status="pending") == [form.number]
    assert await _numbers(runtime, me, "all", status="new,pending") == sorted(
        [email.number, form.number], reverse=True
    )
    assert await _numbers(runtime, me, "all", assignee="ola@kurs.example") == [widget.number]
    assert await _numbers(runtime, me, "all", assignee="none") == [email.number]
    assert await _numbers(runtime, me, "all", assignee="me", tag="faktura") == [form.number]
    assert await _numbers(runtime, me, "open", channel="widget", tag="faktura") == [widget.number]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "waiting"}, "status"),
        ({"channel": "fax"}, "channel"),
        ({"assignee": "nobody@kurs.example"}, "assignee"),
    ],
)
async def test_bad_filters_are_named(runtime: Runtime, filters: dict[str, str], field: str) -> None:
    me, _ = await _operators(runtime)

    with pytest.raises(ValidationFailed) as failure:
        await _queue(runtime, me, "open", QueueFilters(**filters))

    assert field in failure.value.fields


async def test_unknown_queue_and_foreign_cursor_are_refused(runtime: Runtime) -> None:
    me, _ = await _operators(runtime)
    for n in range(3):
        await add_ticket(runtime, subject=f"Sak {n}", text="kursbevis", now=T0)
    search_page = await _queue(runtime, me, "all", QueueFilters(q="kursbevis"), limit=1)
    assert search_page.next_cursor is not None

    with pytest.raises(ValidationFailed) as unknown:
        await _queue(runtime, me, "everything")
    with pytest.raises(ValidationFailed) as foreign:
        await _queue(runtime, me, "all", cursor=search_page.next_cursor)
    with pytest.raises(ValidationFailed):
        await _queue(runtime, me, "all", cursor="not-a-cursor")

    assert "queue" in unknown.value.fields
    assert "cursor" in foreign.value.fields


async def test_keyset_pages_neither_repeat_nor_skip_while_tickets_arrive(runtime: Runtime) -> None:
    me, _ = await _operators(runtime)
    # Several tickets share one last-activity time: the id breaks the tie.
    made = [
        await add_ticket(runtime, subject=f"Sak {n}", now=T0 + timedelta(minutes=n // 3))
        for n in range(10)
    ]
    seen: list[int] = []
    cursor = None
    for round_ in range(10):
        page = await _queue(runtime, me, "unassigned", cursor=cursor, limit=3)
        seen += [row.ticket.number for row in page.items]
        # New mail arrives at the top between page loads; it must not shift the pages.
        await add_ticket(runtime, subject=f"Ny {round_}", now=LATER + timedelta(minutes=round_))
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == [t.number for t in sorted(made, key=_activity_order, reverse=True)]


def _activity_order(ticket: Ticket) -> tuple[datetime, int]:
    assert ticket.id is not None
    return ticket.last_message_at, ticket.id
