"""Ticket numbers stay unique under concurrent creation, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select

from helpdesk.db import transaction
from helpdesk.models import Ticket
from helpdesk.tickets import service as tickets
from tests.factories import T0, learner_mail

CONCURRENT = 50


async def create_one(runtime, n: int) -> int:
    """One learner's ticket, in its own session and transaction."""
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session,
            subject=f"Spørsmål om kurs {n}",
            channel="widget",
            requester=f"learner{n}@example.no",
            first_message=learner_mail(f"Melding {n}", author_email=f"learner{n}@example.no"),
            now=T0,
        )
        return ticket.number


async def test_fifty_concurrent_creations_get_fifty_distinct_numbers(runtime) -> None:
    pool = runtime.engine.pool
    peak = 0

    def count_connections(*_: object) -> None:
        nonlocal peak
        peak = max(peak, pool.checkedout())

    event.listen(runtime.engine.sync_engine, "checkout", count_connections)
    # The first batch also races through the one-time move of the counter to 1001.
    first = await asyncio.gather(*(create_one(runtime, n) for n in range(CONCURRENT)))
    second = await asyncio.gather(*(create_one(runtime, n) for n in range(CONCURRENT)))
    assert peak > 5, "the creations did not actually overlap on several connections"
    numbers = first + second
    assert len(set(numbers)) == 2 * CONCURRENT
    assert min(numbers) >= 1001
    assert min(second) > max(first)
    async with transaction(runtime.sessions) as session:
        stored = await session.scalar(select(func.count(func.distinct(Ticket.number))))
    assert stored == 2 * CONCURRENT


async def test_a_rolled_back_creation_leaves_a_gap_not_a_reused_number(runtime) -> None:
    before = await create_one(runtime, 1)
    try:
        async with transaction(runtime.sessions) as session:
            await tickets.allocate_ticket_number(session, T0)
            raise RuntimeError("the ingest failed after allocating")
    except RuntimeError:
        pass
    after = await create_one(runtime, 2)
    assert after > before
