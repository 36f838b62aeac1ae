"""Solved tickets are closed automatically after some days without a learner message.

"Solved" waits for the learner to confirm or write again; after
`HELPDESK_RETENTION_AUTO_CLOSE_DAYS` (default 7, 0 turns it off) of silence from the
learner, and as long since anything changed on the ticket, it is closed. A later message
then opens a follow-up ticket (DESIGN §7).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import transaction
from helpdesk.models import Message, Ticket
from helpdesk.tickets.lifecycle import change_status

BATCH_SIZE = 200


def _quiet_solved(now: datetime, days: int) -> tuple[ColumnElement[bool], ...]:
    since = now - timedelta(days=days)
    learner_wrote = exists().where(
        col(Message.ticket_id) == col(Ticket.id),
        col(Message.direction) == "inbound",
        col(Message.machine).is_(None),
        col(Message.created_at) >= since,
    )
    return (col(Ticket.status) == "solved", col(Ticket.updated_at) < since, ~learner_wrote)


async def close_quiet_solved_tickets(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, days: int
) -> int:
    """Close every solved ticket quiet for `days`; returns how many were closed."""
    if days <= 0:
        return 0
    closed = 0
    while True:
        async with transaction(sessions) as session:
            batch = await _close_batch(session, now, days)
        closed += batch
        if batch < BATCH_SIZE:
            return closed


async def _close_batch(session: AsyncSession, now: datetime, days: int) -> int:
    tickets = await session.scalars(
        select(Ticket)
        .where(*_quiet_solved(now, days))
        .order_by(col(Ticket.id))
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    count = 0
    for ticket in tickets:
        await change_status(
            session, ticket, "closed", actor="system", now=now, cause="solved-without-reply"
        )
        count += 1
    return count
