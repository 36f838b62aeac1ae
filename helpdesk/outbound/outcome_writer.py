"""Recording delivery outcomes beside the sending loop, in group commits.

Delivery is at least once: a message the relay accepted is sent again only if the worker
dies before its outcome is written, and at most `max_pending` outcomes wait at any time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpdesk.adapters.pubsub import PubSub
from helpdesk.metrics import OUTBOX_DELIVERIES
from helpdesk.models.types import UtcDateTime
from helpdesk.outbound.announcements import announce_delivery, tickets_of_replies
from helpdesk.outbound.attempts import Progress, RecipientOutcome, RowUpdate, next_state
from helpdesk.outbound.leases import DUE_STATUSES, LOG, OUTBOX, ClaimedEmail

# The delivery loop's logger: operators follow one name for the whole of delivery.
log = logging.getLogger("helpdesk.outbound.delivery")


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
        self,
        connection: AsyncConnection,
        report: DeliveryReport,
        max_pending: int = 16,
        pubsub: PubSub | None = None,
    ) -> None:
        self._connection = connection
        self._report = report
        self._pubsub = pubsub  # open ticket pages follow their replies' delivery status
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
            ids = [item.claim.id for item in written] if self._pubsub else []
            tickets = await tickets_of_replies(self._connection, ids)
        if self._pubsub is not None:
            await announce_delivery(self._pubsub, tickets)
        for item in written:
            status = item.state.status
            setattr(self._report, status, getattr(self._report, status) + 1)
            OUTBOX_DELIVERIES.labels(status).inc()
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
