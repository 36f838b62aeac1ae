"""What one delivery attempt settled, and what the outbox row becomes next.

Per-recipient outcomes go to the delivery log (`DeliveryAttempt`). A retry is sent only
to the recipients that have neither been accepted nor permanently refused yet, so one
dead Cc address does not make the requester receive the reply twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from helpdesk.bootstrap import Runtime
from helpdesk.outbound.leases import LOG, ClaimedEmail

GIVE_UP_AFTER = timedelta(days=4)
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))
RETRY_DELAY_LATER = timedelta(hours=1)


@dataclass(frozen=True)
class RecipientOutcome:
    """How the relay answered for one recipient in one attempt."""

    recipient: str
    status: str  # accepted | deferred | rejected
    reply: str


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed try: 1, 5, 15 minutes, then hourly."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else RETRY_DELAY_LATER


@dataclass(frozen=True)
class Progress:
    """What earlier attempts settled: recipients accepted, or refused for good."""

    accepted: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()

    def pending(self, claim: ClaimedEmail) -> list[str]:
        return [r for r in claim.recipients if r not in self.accepted | self.rejected]


async def load_progress(runtime: Runtime, claims: list[ClaimedEmail]) -> dict[int, Progress]:
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
