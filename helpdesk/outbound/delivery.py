"""Delivering the outbox: claim due rows with a lease, send the stored bytes, record the outcome.

Several workers (and `helpdesk send-outbox`) may run this at once against one database:
`leases` claims rows so that each is sent by one worker at a time, `attempts` decides what
a row becomes after an attempt, and `outcome_writer` records that while the lease is ours.
This module is the sending loop that ties them together.

Delivery is at least once, never silently zero times: if a worker dies after the relay
accepted a message but before the row was marked `sent`, the lease runs out and another
worker sends the same stored bytes again — with the same Message-ID, fixed when the row
was written. Receivers that deduplicate by Message-ID (our own inbound side does, and
many mail stores and clients do) then show it once; at worst a learner sees the same
reply twice, never a lost one. Outcomes are written by an `OutcomeWriter` beside the
sending loop, so at most its `max_pending` (16) accepted messages can be resent so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from helpdesk.adapters.smtp import (
    DeliveryError,
    MailTransport,
    PermanentDeliveryError,
    ServerUnavailableError,
    is_permanent,
)
from helpdesk.bootstrap import Runtime
from helpdesk.outbound.acknowledgements import write_claimed
from helpdesk.outbound.attempts import (
    GIVE_UP_AFTER,
    RETRY_DELAY_LATER,
    RETRY_DELAYS,
    Progress,
    RecipientOutcome,
    RowUpdate,
    load_progress,
    next_state,
    retry_delay,
)
from helpdesk.outbound.leases import (
    DUE_STATUSES,
    LEASE,
    LOG,
    OUTBOX,
    ClaimedEmail,
    claim_due,
    lease_length,
    release_claims,
)
from helpdesk.outbound.outcome_writer import DeliveryReport, OutcomeWriter

__all__ = [
    "DUE_STATUSES",
    "GIVE_UP_AFTER",
    "LEASE",
    "LEASE_SAFETY_MARGIN",
    "LOG",
    "OUTBOX",
    "RETRY_DELAYS",
    "RETRY_DELAY_LATER",
    "ClaimedEmail",
    "DeliveryReport",
    "OutcomeWriter",
    "Progress",
    "RecipientOutcome",
    "RowUpdate",
    "claim_due",
    "deliver_all_due",
    "deliver_due",
    "deliver_until_stopped",
    "next_state",
    "retry_delay",
]

log = logging.getLogger("helpdesk.outbound.delivery")

# Stop starting new sends this long before the batch's lease ends, so that a send in
# progress (several SMTP round trips, each with a 30 s timeout) finishes inside the lease.
LEASE_SAFETY_MARGIN = timedelta(minutes=3)


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
    claims = await write_claimed(runtime, claims, start)
    if not claims:
        return report
    envelope_from = runtime.settings.support_address  # bounces come back to support
    progress = await load_progress(runtime, claims)
    unsent: list[ClaimedEmail] = []
    # A short lease (tests, impatient deployments) keeps a proportionate margin.
    margin = min(LEASE_SAFETY_MARGIN, lease_length(runtime) * 0.3)
    async with runtime.engine.connect() as connection:
        async with OutcomeWriter(connection, report, pubsub=runtime.pubsub) as writer:
            for position, claim in enumerate(claims):
                if clock() >= claim.lease_until - margin:
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
        report.released += await release_claims(connection, unsent)
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
