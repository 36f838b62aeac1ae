"""What the retention admin page shows: the policy table, recent runs, next run, holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.config import RetentionSettings
from helpdesk.models import RetentionRun, Ticket
from helpdesk.retention.policy import Window, policy_table
from helpdesk.retention.runs import recent_runs

OSLO = ZoneInfo("Europe/Oslo")
DAILY_AT = time(3, 15)  # helpdesk.retention.tasks.DAILY_RUN


def next_daily_run(now: datetime) -> datetime:
    """The next 03:15 in Oslo after `now`, in UTC."""
    local = now.astimezone(OSLO)
    candidate = datetime.combine(local.date(), DAILY_AT, tzinfo=OSLO)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), DAILY_AT, tzinfo=OSLO)
    return candidate.astimezone(UTC)


@dataclass(frozen=True)
class HeldTicket:
    number: int
    subject: str
    until: date
    reason: str


@dataclass(frozen=True)
class RetentionOverview:
    windows: list[Window]
    runs: list[RetentionRun]
    next_run: datetime
    holds: list[HeldTicket]


async def legal_holds_in_force(session: AsyncSession, today: date) -> list[HeldTicket]:
    """Tickets whose legal hold still protects them (through the end date), soonest end first."""
    rows = await session.execute(
        select(
            col(Ticket.number),
            col(Ticket.subject),
            col(Ticket.legal_hold_until),
            col(Ticket.legal_hold_reason),
        )
        .where(col(Ticket.legal_hold_until) >= today)
        .order_by(col(Ticket.legal_hold_until), col(Ticket.number))
    )
    return [HeldTicket(n, s, u, r or "") for n, s, u, r in rows if u is not None]


async def retention_overview(
    session: AsyncSession, policy: RetentionSettings, now: datetime
) -> RetentionOverview:
    """Everything the admin page shows, read in one session."""
    return RetentionOverview(
        windows=policy_table(policy),
        runs=await recent_runs(session),
        next_run=next_daily_run(now),
        holds=await legal_holds_in_force(session, now.date()),
    )
