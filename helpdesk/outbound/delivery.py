"""Delivering the outbox: claim due rows with a lease, send the stored bytes, record the outcome.

Several workers (and `helpdesk send-outbox`) may run this at once against one database.
A row is claimed by setting `claimed_until` in a short transaction that is committed
before any SMTP traffic: on PostgreSQL the candidates are picked with
`SELECT … FOR UPDATE SKIP LOCKED`, on SQLite one conditional `UPDATE … RETURNING` does it
under SQLite's single write lock. The outcome is written only while the lease is still
ours (`WHERE claimed_until = <our lease>`), so a worker that lost its lease cannot
overwrite the work of the one that took the row over.

Delivery is at least once, never silently zero times: if a worker dies after the relay
accepted a message but before the row was marked `sent`, the lease runs out and another
worker sends the same stored bytes again — with the same Message-ID, fixed when the row
was written. Receivers that deduplicate by Message-ID (our own inbound side does, and
many mail stores and clients do) then show it once; at worst a learner sees the same
reply twice, never a lost one. Outcomes are written by an `OutcomeWriter` beside the
sending loop, so at most its `max_pending` (16) accepted messages can be resent so.

Per-recipient outcomes go to the delivery log (`DeliveryAttempt`). A retry is sent only
to the recipients that have neither been accepted nor permanently refused yet, so one
dead Cc address does not make the requester receive the reply twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from helpdesk.adapters.smtp import (
    DeliveryError,
    MailTransport,
    PermanentDeliveryError,
    ServerUnavailableError,
    is_permanent,
)
from helpdesk.bootstrap import Runtime
from helpdesk.models import OutboundEmail
from helpdesk.models.outbound import DeliveryAttempt
from helpdesk.models.types import UtcDateTime

log = logging.getLogger("helpdesk.outbound.delivery")

# Core statements on the tables: the per-message path skips the ORM's unit of work,
# which cost about half the throughput in bench/outbox.py.
OUTBOX: Table = SQLModel.metadata.tables[OutboundEmail.__tablename__]
LOG: Table = SQLModel.metadata.tables[DeliveryAttempt.__tablename__]

LEASE = timedelta(minutes=10)
# Stop starting new sends this long before the batch's lease ends, so that a send in
# progress (several SMTP round trips, each with a 30 s timeout) finishes inside the lease.
LEASE_SAFETY_MARGIN = timedelta(minutes=3)
GIVE_UP_AFTER = timedelta(days=4)
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))
RETRY_DELAY_LATER = timedelta(hours=1)
DUE_STATUSES = ("queued", "retrying")


@dataclass
class DeliveryReport:
    """What one run did: rows claimed, and how many ended sent, retrying or failed."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0  # claimed, then handed back untried because the lease ran short
    lost_lease: int = 0  # sent, but another worker had taken the row over meanwhile

    def add(self, other: DeliveryReport) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class ClaimedEmail:
    id: int
    recipients: list[str]
    raw: bytes | None
    attempts: int
    created_at: datetime
    lease_until: datetime


@dataclass(frozen=True)
class RecipientOutcome:
    recipient: str
    status: str  # accepted | deferred | rejected
    reply: str


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed try: 1, 5, 15 minutes, then hourly."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else RETRY_DELAY_LATER


async def claim_due(
    runtime: Runtime, now: datetime, batch: int = 50, lease: timedelta = LEASE
) -> list[ClaimedEmail]:
    """Lease up to `batch` due rows to this worker and commit, before any network I/O."""
    lease_until = now + lease
    due = (
        OUTBOX.c.status.in_(DUE_STATUSES),
        OUTBOX.c.next_attempt_at <= now,
        or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now),
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
        )
        for row in rows
    ]


async def deliver_due(
    runtime: Runtime,
    transport: MailTransport,
    now: datetime | None = None,
    batch: int = 50,
) -> DeliveryReport:
    """Claim what is due and send it over `transport` (one connection for the batch).

    `now` is the instant the run starts (the runtime's clock if not given); times written
    later in the run move on from it by the real time that has passed.
    """
    started, start = time.monotonic(), now or runtime.clock.now()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - started)

    claims = await claim_due(runtime, start, batch)
    report = DeliveryReport(claimed=len(claims))
    if not claims:
        return report
    envelope_from = runtime.settings.support_address  # bounces come back to support
    progress = await _load_progress(runtime, claims)
    unsent: list[ClaimedEmail] = []
    async with runtime.engine.connect() as connection:
        async with OutcomeWriter(connection, report) as writer:
            for position, claim in enumerate(claims):
                if clock() >= claim.lease_until - LEASE_SAFETY_MARGIN:
                    unsent = claims[position:]
                    break
                done = progress.get(claim.id, Progress())
                try:
                    outcomes = await _send(transport, envelope_from, claim, done.pending(claim))
                except ServerUnavailableError as exc:
                    # No connection at all: the rest of the batch would fail the same way.
                    log.warning("relay unavailable, %d deferred: %s", len(claims) - position, exc)
                    for waiting in claims[position:]:
                        done = progress.get(waiting.id, Progress())
                        deferred = _outcomes(done.pending(waiting), {}, "deferred", exc.reply)
                        await writer.put(waiting, done, deferred, clock())
                    break
                await writer.put(claim, done, outcomes, clock())
        report.released += await _release(connection, unsent)
    return report


async def deliver_all_due(
    runtime: Runtime, transport: MailTransport, batch: int = 50
) -> DeliveryReport:
    """Run `deliver_due` until the backlog is gone or the relay is unavailable."""
    total = DeliveryReport()
    while True:
        report = await deliver_due(runtime, transport, batch=batch)
        total.add(report)
        relay_down = report.retrying and not report.sent
        if report.claimed < batch or relay_down:
            return total


async def deliver_until_stopped(
    runtime: Runtime, transport: MailTransport, stop: asyncio.Event, interval: float = 5.0
) -> None:
    """`helpdesk send-outbox`: deliver what is due every `interval` seconds until `stop`."""
    while not stop.is_set():
        try:
            await deliver_all_due(runtime, transport)
        except Exception:  # the database may be away for a moment; the rows are safe
            log.exception("delivery run failed; trying again in %.0f s", interval)
        finally:
            await transport.close()  # reconnect per run rather than hold an idle session
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _send(
    transport: MailTransport, envelope_from: str, claim: ClaimedEmail, pending: list[str]
) -> list[RecipientOutcome]:
    """Send the stored bytes unchanged to the recipients still waiting for them."""
    if not pending:
        return []
    if claim.raw is None:
        return _outcomes(pending, {}, "rejected", "554 nothing to send: the message is gone")
    try:
        receipt = await transport.send(envelope_from, pending, claim.raw)
    except ServerUnavailableError:
        raise
    except DeliveryError as exc:
        whole = "rejected" if isinstance(exc, PermanentDeliveryError) else "deferred"
        return _outcomes(pending, exc.refused, whole, exc.reply)
    return _outcomes(pending, receipt.refused, "accepted", receipt.reply)


def _outcomes(
    pending: Sequence[str], refused: Mapping[str, str], status: str, reply: str
) -> list[RecipientOutcome]:
    """`status` and `reply` for each recipient, unless the relay refused it by itself."""
    return [
        RecipientOutcome(r, "rejected" if is_permanent(refused[r]) else "deferred", refused[r])
        if r in refused
        else RecipientOutcome(r, status, reply)
        for r in pending
    ]


@dataclass(frozen=True)
class Progress:
    """What earlier attempts settled: recipients accepted, or refused for good."""

    accepted: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()

    def pending(self, claim: ClaimedEmail) -> list[str]:
        return [r for r in claim.recipients if r not in self.accepted | self.rejected]


async def _load_progress(runtime: Runtime, claims: list[ClaimedEmail]) -> dict[int, Progress]:
    """What earlier attempts settled, for the claimed rows that had any (one query)."""
    retried = [claim.id for claim in claims if claim.attempts > 0]
    if not retried:
        return {}
    async with runtime.engine.connect() as connection:
        settled = await connection.execute(
            select(LOG.c.outbound_email_id, LOG.c.recipient, LOG.c.status).where(
                LOG.c.outbound_email_id.in_(retried), LOG.c.status.in_(("accepted", "rejected"))
            )
        )
        rows = settled.all()
    return {
        row_id: Progress(
            accepted=frozenset(r for i, r, status in rows if i == row_id and status == "accepted"),
            rejected=frozenset(r for i, r, status in rows if i == row_id and status == "rejected"),
        )
        for row_id in retried
    }


@dataclass(frozen=True)
class RowUpdate:
    """The outbox row after an attempt."""

    status: str  # sent | retrying | failed
    last_reply: str
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None


def next_state(
    claim: ClaimedEmail, progress: Progress, outcomes: list[RecipientOutcome], now: datetime
) -> RowUpdate:
    """Sent once nobody is left waiting; retrying with back-off; failed if nobody got it."""
    accepted_now = any(o.status == "accepted" for o in outcomes)
    accepted = accepted_now or bool(progress.accepted)
    deferred = any(o.status == "deferred" for o in outcomes)
    reply = _summary(outcomes)
    sent_at = now if accepted_now and not progress.accepted else None
    deadline = claim.created_at + GIVE_UP_AFTER
    if deferred and now < deadline:
        retry_at = min(now + retry_delay(claim.attempts + 1), deadline)
        return RowUpdate("retrying", reply, next_attempt_at=retry_at, sent_at=sent_at)
    if deferred:
        reply = f"gave up after {GIVE_UP_AFTER.days} days: {reply}"
    return RowUpdate("sent" if accepted else "failed", reply, sent_at=sent_at)


@dataclass(frozen=True)
class _Outcome:
    claim: ClaimedEmail
    state: RowUpdate
    outcomes: list[RecipientOutcome]
    at: datetime


class OutcomeWriter:
    """Writes outcomes in the background while the next messages are being sent.

    Whatever has piled up since the last commit is written in one transaction (group
    commit), so the database costs a few round trips per batch of outcomes rather than a
    dozen per message. At most `max_pending` sent messages wait unrecorded: that bounds
    what a crash can make us send twice (with their same Message-IDs).
    """

    def __init__(
        self, connection: AsyncConnection, report: DeliveryReport, max_pending: int = 16
    ) -> None:
        self._connection = connection
        self._report = report
        self._queue: asyncio.Queue[_Outcome | None] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutcomeWriter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._enqueue(None)
        assert self._task is not None
        await self._task  # raises what the writer raised: the rows stay claimed, not lost

    async def put(
        self,
        claim: ClaimedEmail,
        progress: Progress,
        outcomes: list[RecipientOutcome],
        now: datetime,
    ) -> None:
        """Queue one row's outcome; waits while `max_pending` are already queued."""
        state = next_state(claim, progress, outcomes, now)
        await self._enqueue(_Outcome(claim, state, outcomes, now))
        assert self._task is not None
        if self._task.done():
            await self._task  # the writer failed: stop sending and raise its error

    async def _enqueue(self, item: _Outcome | None) -> None:
        """Put `item` on the queue, unless the writer stops (fails) while it is full."""
        assert self._task is not None
        putting = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({putting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()

    async def _run(self) -> None:
        while (first := await self._queue.get()) is not None:
            group, finished = [first], False
            while not self._queue.empty() and not finished:
                item = self._queue.get_nowait()
                if item is None:
                    finished = True
                else:
                    group.append(item)
            await self._write(group)
            if finished:
                return

    async def _write(self, group: list[_Outcome]) -> None:
        """Each row only while the lease is still ours; then their delivery-log lines."""
        written = []
        async with self._connection.begin():
            for item in group:
                result = await self._connection.execute(_RECORD_OUTCOME, _row_values(item))
                if cast(CursorResult[Any], result).rowcount == 1:
                    written.append(item)
                else:
                    self._report.lost_lease += 1
                    log.warning("outbound %d: lease lost before the outcome", item.claim.id)
            lines = [_log_line(item, o) for item in written for o in item.outcomes]
            if lines:
                await self._connection.execute(insert(LOG), lines)
        for item in written:
            status = item.state.status
            setattr(self._report, status, getattr(self._report, status) + 1)
            log.info(
                "outbound %d: %s after attempt %d", item.claim.id, status, item.claim.attempts + 1
            )


# Built once: per message only the parameters change (this path runs for every mail).
_RECORD_OUTCOME = (
    update(OUTBOX)
    .where(
        OUTBOX.c.id == bindparam("row_id"),
        OUTBOX.c.claimed_until == bindparam("lease_until"),
        OUTBOX.c.status.in_(DUE_STATUSES),
    )
    .values(
        status=bindparam("new_status"),
        last_reply=bindparam("reply"),
        attempts=bindparam("attempt"),
        claimed_until=None,
        updated_at=bindparam("at"),
        next_attempt_at=func.coalesce(
            bindparam("retry_at", type_=UtcDateTime()), OUTBOX.c.next_attempt_at
        ),
        sent_at=func.coalesce(bindparam("first_sent_at", type_=UtcDateTime()), OUTBOX.c.sent_at),
    )
)


def _row_values(item: _Outcome) -> dict[str, object]:
    return {
        "row_id": item.claim.id,
        "lease_until": item.claim.lease_until,
        "new_status": item.state.status,
        "reply": item.state.last_reply,
        "attempt": item.claim.attempts + 1,
        "at": item.at,
        "retry_at": item.state.next_attempt_at,
        "first_sent_at": item.state.sent_at,
    }


def _log_line(item: _Outcome, outcome: RecipientOutcome) -> dict[str, object]:
    return {
        "outbound_email_id": item.claim.id,
        "attempt": item.claim.attempts + 1,
        "recipient": outcome.recipient,
        "status": outcome.status,
        "reply": outcome.reply[:2000],
        "attempted_at": item.at,
    }


def _summary(outcomes: list[RecipientOutcome]) -> str:
    """The reply shown to the operator: the relay's answer, and who was refused and why."""
    if not outcomes:
        return "no recipients left to send to"
    refused = [o for o in outcomes if o.status != "accepted"]
    if not refused:
        return outcomes[0].reply
    if len(refused) == len(outcomes) and len({o.reply for o in refused}) == 1:
        return refused[0].reply
    return "; ".join(f"{o.recipient}: {o.reply}" for o in refused)


async def _release(connection: AsyncConnection, claims: Sequence[ClaimedEmail]) -> int:
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
