"""The figures of the reports page: volume per day and channel, response times and breaches.

A period is a range of calendar days in the business time zone (Oslo by default), both
ends included. Tickets count on the day they were created. Response and resolution times
are business time (the hours the service levels count), so a ticket that arrived on
Friday evening and was answered on Monday at 09:00 took one hour, not 61.

Volume is grouped by the hour in SQL (Oslo's offset is whole hours, so each UTC hour falls
in one local day) and folded into days here; the times need each ticket's own values.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.errors import ValidationFailed
from helpdesk.models import Ticket
from helpdesk.models.tickets import CHANNELS
from helpdesk.privacy.restriction import visible_to_work
from helpdesk.tickets.business_time import business_time_between
from helpdesk.tickets.service_levels import ServiceLevelPolicy

MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    """Calendar days `first`..`last` (inclusive) in the business time zone."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def parse_period(first: str | None, last: str | None, today: date) -> Period:
    """The period of the form's `from`/`to` (default: the last 30 days); 422 if bad."""
    try:
        end = date.fromisoformat(last) if last else today
        start = date.fromisoformat(first) if first else end - timedelta(days=29)
    except ValueError:
        raise ValidationFailed({"period": "dates must look like 2026-11-21"}) from None
    if start > end:
        raise ValidationFailed({"period": "the start must not be after the end"})
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed({"period": f"at most {MAX_DAYS} days at a time"})
    return Period(start, end)


@dataclass
class DayFigures:
    """One day's row of the report."""

    day: date
    volume: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    first_response_hours: list[float] = field(default_factory=list)
    resolution_hours: list[float] = field(default_factory=list)
    first_response_breaches: int = 0
    resolution_breaches: int = 0

    @property
    def total(self) -> int:
        return sum(self.volume.values())

    @property
    def median_first_response(self) -> float | None:
        return _median(self.first_response_hours)

    @property
    def median_resolution(self) -> float | None:
        return _median(self.resolution_hours)


@dataclass(frozen=True)
class Report:
    period: Period
    days: list[DayFigures]

    @property
    def total(self) -> int:
        return sum(day.total for day in self.days)

    def volume_by_channel(self) -> dict[str, int]:
        return {c: sum(day.volume[c] for day in self.days) for c in CHANNELS}

    @property
    def median_first_response(self) -> float | None:
        return _median([h for day in self.days for h in day.first_response_hours])

    @property
    def median_resolution(self) -> float | None:
        return _median([h for day in self.days for h in day.resolution_hours])

    @property
    def first_response_breaches(self) -> int:
        return sum(day.first_response_breaches for day in self.days)

    @property
    def resolution_breaches(self) -> int:
        return sum(day.resolution_breaches for day in self.days)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


async def build_report(
    session: AsyncSession, period: Period, policy: ServiceLevelPolicy, now: datetime
) -> Report:
    """Every figure of the reports page for the period."""
    zone = policy.hours.zone
    start = datetime.combine(period.first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(period.last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    days = {day: DayFigures(day) for day in period.days}
    in_period: tuple[ColumnElement[bool], ...] = (
        col(Ticket.created_at) >= start,
        col(Ticket.created_at) < end,
    )
    visible = await visible_to_work(session)  # restricted learners' tickets are not counted
    if visible is not None:
        in_period = (*in_period, visible)
    for hour, channel, count in await session.execute(_volume_by_hour(session, in_period)):
        local_day = _as_utc(hour).astimezone(zone).date()
        if local_day in days and channel in CHANNELS:
            days[local_day].volume[channel] += count
    times = select(
        col(Ticket.created_at),
        col(Ticket.first_response_at),
        col(Ticket.first_response_due_at),
        col(Ticket.resolved_at),
        col(Ticket.resolution_due_at),
    ).where(*in_period)
    for created, responded, response_due, resolved, resolution_due in await session.execute(times):
        figures = days.get(created.astimezone(zone).date())
        if figures is None:
            continue
        if responded is not None:
            figures.first_response_hours.append(_hours(created, responded, policy))
        if resolved is not None:
            figures.resolution_hours.append(_hours(created, resolved, policy))
        if response_due is not None and (responded or now) > response_due:
            figures.first_response_breaches += 1
        if resolution_due is not None and (resolved or now) > resolution_due:
            figures.resolution_breaches += 1
    return Report(period, [days[day] for day in period.days])


def _volume_by_hour(
    session: AsyncSession, in_period: tuple[ColumnElement[bool], ...]
) -> Select[Any, str, int]:
    if session.get_bind().dialect.name == "postgresql":
        hour = func.date_trunc("hour", col(Ticket.created_at))
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", col(Ticket.created_at))
    return (
        select(hour.label("hour"), col(Ticket.channel), func.count())
        .where(*in_period)
        .group_by(hour, col(Ticket.channel))
    )


def _as_utc(hour: datetime | str) -> datetime:
    at = datetime.fromisoformat(hour) if isinstance(hour, str) else hour
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _hours(start: datetime, end: datetime, policy: ServiceLevelPolicy) -> float:
    return business_time_between(start, end, policy.hours) / timedelta(hours=1)
