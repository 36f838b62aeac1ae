"""Public ticket numbers: increasing, unique under concurrent creation, gaps allowed.

A number is the autoincrement key of a new `ticket_numbers` row. The insert is atomic on
both databases, so two transactions never get the same number; a rolled-back transaction
leaves a gap. Numbers start above `FIRST_NUMBER - 1` so even the first ticket looks like
a real one (#1001), which is arranged the first time the counter is used.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import Insert, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db import execute_core
from helpdesk.models import Ticket, TicketNumber
from helpdesk.models.rows import attach_inserted, insert_instance, instance_values

FIRST_NUMBER = 1001

# SQLite: AUTOINCREMENT continues from sqlite_sequence, which may be updated like any table
# (https://sqlite.org/autoinc.html). Our insert already holds the database's write lock.
_RAISE_SQLITE_COUNTER = text(
    "UPDATE sqlite_sequence SET seq = :floor WHERE name = 'ticket_numbers' AND seq < :floor"
)
# PostgreSQL: sequences are not transactional, so concurrent first users serialise on an
# advisory lock and only the first one moves the sequence; later ones see it already moved.
_LOCK_POSTGRES_COUNTER = text("SELECT pg_advisory_xact_lock(hashtext('helpdesk.ticket_numbers'))")
_RAISE_POSTGRES_COUNTER = text(
    "SELECT setval(seq, :floor) FROM "
    "(SELECT pg_get_serial_sequence('ticket_numbers', 'number')::regclass AS seq) AS s "
    "WHERE coalesce(pg_sequence_last_value(seq), 0) < :floor"
)


async def allocate_ticket_number(session: AsyncSession, now: datetime) -> int:
    """Reserve the next public ticket number in the caller's transaction."""
    number = await _insert_number(session, now)
    if number >= FIRST_NUMBER:
        return number
    await _raise_counter(session, FIRST_NUMBER - 1)
    return await _insert_number(session, now)


def issued_on_insert(session: AsyncSession) -> bool:
    """Whether `insert_ticket` issues the number itself (PostgreSQL), so that a new
    ticket needs no `allocate_ticket_number` first (and its round trip)."""
    return session.get_bind().dialect.name == "postgresql"


async def insert_ticket(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """INSERT a new ticket and make it the session's object, as `insert_instance` does.

    Where `issued_on_insert`, the ticket's number is issued by the same statement (a
    WITH clause inserting its `ticket_numbers` row) and set on it; elsewhere the caller
    allocated it before.
    """
    if not issued_on_insert(session):
        await insert_instance(session, ticket)
        return
    values = instance_values(ticket)
    del values["number"]
    row = (await execute_core(session, _numbered_insert(), {**values, "issued_at": now})).one()
    ticket.id, ticket.number = row.id, row.number
    if ticket.number < FIRST_NUMBER:  # the first ticket of a new database
        ticket.number = await allocate_ticket_number(session, now)
        renumbered = {"ticket_id": ticket.id, "new_number": ticket.number}
        await execute_core(session, _RENUMBER, renumbered)
    attach_inserted(session, ticket)


# Built once, and on the table rather than the ORM class: as plain SQL it skips the ORM's
# bulk-insert machinery (this runs for every new ticket).
_NUMBERS = TicketNumber.__table__  # type: ignore[attr-defined]  # (SQLModel declares no type)
_INSERT_NUMBER = insert(_NUMBERS).returning(_NUMBERS.c.number)


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_RENUMBER = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("ticket_id"))
    .values(number=bindparam("new_number"))
)


@functools.cache
def _numbered_insert() -> Insert:
    """INSERT INTO tickets (number, …) SELECT issued.number, … FROM issued, where `issued`
    inserts the number's row: one statement (and round trip) instead of two."""
    issued = (
        insert(_NUMBERS)
        .values(issued_at=bindparam("issued_at", type_=_NUMBERS.c.issued_at.type))
        .returning(_NUMBERS.c.number)
        .cte("issued")
    )
    columns = [c for c in _TICKETS.columns if c.key not in ("id", "number")]
    chosen = select(issued.c.number, *(bindparam(c.key, type_=c.type) for c in columns))
    return (
        insert(_TICKETS)
        .from_select(["number", *(c.key for c in columns)], chosen)
        .returning(_TICKETS.c.id, _TICKETS.c.number)
        .add_cte(issued)
    )


async def _insert_number(session: AsyncSession, now: datetime) -> int:
    result = await execute_core(session, _INSERT_NUMBER, {"issued_at": now})
    number = result.scalar_one()
    assert number is not None, "an inserted primary key is never null"
    return int(number)


async def _raise_counter(session: AsyncSession, floor: int) -> None:
    """Make the next allocated number at least `floor + 1` (only ever needed on first use)."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(_RAISE_SQLITE_COUNTER, {"floor": floor})
    else:
        await session.execute(_LOCK_POSTGRES_COUNTER)
        await session.execute(_RAISE_POSTGRES_COUNTER, {"floor": floor})
