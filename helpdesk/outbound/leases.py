"""Leases on outbox rows: which worker may send a row, and until when.

Several workers (and `helpdesk send-outbox`) may deliver at once against one database.
A row is claimed by setting `claimed_until` in a short transaction that is committed
before any SMTP traffic: on PostgreSQL the candidates are picked with
`SELECT … FOR UPDATE SKIP LOCKED`, on SQLite one conditional `UPDATE … RETURNING` does it
under SQLite's single write lock. Outcomes are written only while the lease is still ours
(see `outcome_writer`), so a worker that lost its lease cannot overwrite the work of the
one that took the row over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from helpdesk.bootstrap import Runtime
from helpdesk.models import OutboundEmail
from helpdesk.models.outbound import DeliveryAttempt

# Core statements on the tables: the per-message path skips the ORM's unit of work,
# which cost about half the throughput in bench/outbox.py.
OUTBOX: Table = SQLModel.metadata.tables[OutboundEmail.__tablename__]
LOG: Table = SQLModel.metadata.tables[DeliveryAttempt.__tablename__]

LEASE = timedelta(minutes=10)
DUE_STATUSES = ("queued", "retrying")


def lease_length(runtime: Runtime) -> timedelta:
    """How long a claim holds (configurable; LEASE by default)."""
    return timedelta(seconds=runtime.settings.outbox_lease_seconds)


@dataclass(frozen=True)
class ClaimedEmail:
    """An outbox row leased to this worker until `lease_until`."""

    id: int
    recipients: list[str]
    raw: bytes | None
    attempts: int
    created_at: datetime
    lease_until: datetime
    kind: str = "reply"


async def claim_due(
    runtime: Runtime,
    now: datetime,
    batch: int = 50,
    lease: timedelta | None = None,
    *,
    unwritten_only: bool = False,
) -> list[ClaimedEmail]:
    """Lease up to `batch` due rows to this worker and commit, before any network I/O.

    The lease is `HELPDESK_OUTBOX_LEASE_SECONDS` unless given. `unwritten_only` claims only
    rows whose mail is still to be written (`raw` is null: acknowledgements queued by ingest).
    """
    lease_until = now + (lease or lease_length(runtime))
    due = (
        OUTBOX.c.status.in_(DUE_STATUSES),
        OUTBOX.c.next_attempt_at <= now,
        or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now),
        *((OUTBOX.c.raw.is_(None),) if unwritten_only else ()),
    )
    candidates = (
        select(OUTBOX.c.id).where(*due).order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(batch)
    )
    async with runtime.engine.begin() as connection:
        if runtime.settings.is_sqlite:
            # One statement under SQLite's write lock: the subquery and the re-checked
            # conditions see the same state, so two workers can never both win a row.
            chosen = OUTBOX.c.id.in_(candidates.scalar_subquery())
        else:
            ids = (await connection.execute(candidates.with_for_update(skip_locked=True))).scalars()
            chosen = OUTBOX.c.id.in_(list(ids))
        claimed = await connection.execute(
            update(OUTBOX)
            .where(chosen, *due)
            .values(claimed_until=lease_until)
            .returning(
                OUTBOX.c.id,
                OUTBOX.c.recipients,
                OUTBOX.c.raw,
                OUTBOX.c.attempts,
                OUTBOX.c.created_at,
                OUTBOX.c.kind,
            )
        )
        rows = claimed.all()
    return [
        ClaimedEmail(
            id=row.id,
            recipients=row.recipients,
            raw=row.raw,
            attempts=row.attempts,
            created_at=row.created_at,
            lease_until=lease_until,
            kind=row.kind,
        )
        for row in rows
    ]


async def release_claims(connection: AsyncConnection, claims: Sequence[ClaimedEmail]) -> int:
    """Hand untried rows back at once instead of letting their lease run out."""
    if not claims:
        return 0
    async with connection.begin():
        for claim in claims:
            await connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.id == claim.id,
                    OUTBOX.c.claimed_until == claim.lease_until,
                )
                .values(claimed_until=None)
            )
    return len(claims)
