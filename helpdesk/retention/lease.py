"""A lease row per job, so two schedulers or workers never run the same job at once.

One mechanism for both databases: a row in `job_leases` that a runner takes with a single
conditional UPDATE (free, or its previous lease ran out), renews while it works and gives
back at the end. A runner that dies holds the job only until `expires_at`. Each step is
its own short transaction, so the lease never holds a database lock while work runs.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.adapters.clock import Clock
from helpdesk.db import transaction
from helpdesk.models import JobLease

LEASE_SECONDS = 300


class JobBusy(Exception):
    """Another runner holds the job's lease."""

    def __init__(self, name: str, holder: str, until: datetime) -> None:
        super().__init__(f"{name} is already running ({holder}, lease until {until.isoformat()})")
        self.holder = holder
        self.until = until


class Lease:
    """The lease of job `name` held by this process; `renew()` between batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, name: str) -> None:
        self.sessions = sessions
        self.clock = clock
        self.name = name
        self.holder = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.duration = timedelta(seconds=LEASE_SECONDS)

    async def acquire(self) -> None:
        """Take the lease or raise JobBusy naming who holds it."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            await _ensure_row(session, self.name, now)
            taken = await session.execute(
                update(JobLease)
                .where(
                    col(JobLease.name) == self.name,
                    or_(col(JobLease.expires_at) <= now, col(JobLease.holder) == self.holder),
                )
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.duration)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return
            current = await session.scalar(select(JobLease).where(col(JobLease.name) == self.name))
        assert current is not None
        raise JobBusy(self.name, current.holder, current.expires_at)

    async def renew(self) -> None:
        """Extend the lease; JobBusy if it was lost (ran out and another runner took it)."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            kept = await session.execute(
                update(JobLease)
                .where(col(JobLease.name) == self.name, col(JobLease.holder) == self.holder)
                .values(expires_at=now + self.duration)
            )
        if kept.rowcount != 1:  # type: ignore[attr-defined]
            raise JobBusy(self.name, "another runner", now)

    async def release(self) -> None:
        """Give the lease back at once (a no-op if it was lost)."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            await session.execute(
                update(JobLease)
                .where(col(JobLease.name) == self.name, col(JobLease.holder) == self.holder)
                .values(expires_at=now)
            )


async def _ensure_row(session: AsyncSession, name: str, now: datetime) -> None:
    """Insert the job's free lease row if it does not exist yet (race-free on both databases)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"name": name, "holder": "", "acquired_at": now, "expires_at": now}
    await session.execute(insert(JobLease).values(**values).on_conflict_do_nothing())
