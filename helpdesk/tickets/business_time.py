"""Business-time arithmetic: support hours in a time zone, skipping Norwegian public holidays.

Pure functions over aware datetimes. Days are walked in the business time zone so that
opening hours follow the wall clock across daylight-saving changes, while durations are
measured in UTC (an aware subtraction in one zone would count wall-clock time, not real
time). Holidays come from the `holidays` package's Norwegian calendar (Easter-dependent
days, 17 May, Christmas…), not from a hand-written list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEPT_WINDOWS = 4096  # days; a few years either side of today


@dataclass(frozen=True)
class BusinessHours:
    """When support works: weekdays, opening and closing wall-clock time, zone, holidays."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Oslo"))
    opens: time = time(8, 0)
    closes: time = time(16, 0)
    weekdays: frozenset[int] = frozenset(range(5))
    country: str = "NO"

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError("closing time must be after opening time")
        if not self.weekdays:
            raise ValueError("at least one working weekday is needed")

    @cached_property
    def _holidays(self) -> holidays.HolidayBase:
        if self.country == "NO":
            # Sundays are weekend days here already; the package can list them too.
            return holidays.Norway(include_sundays=False)
        return holidays.country_holidays(self.country)

    @property
    def day_length(self) -> timedelta:
        """The length of one business day (a target of "1d" is this long)."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on this day, if any."""
        name = self._holidays.get(day)
        return str(name) if name else None

    def is_business_day(self, day: date) -> bool:
        """A working weekday that is not a public holiday."""
        return day.weekday() in self.weekdays and day not in self._holidays

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's business hours as UTC instants, or None on a closed day."""
        # Kept per day: every new ticket's due times walk the same few days, and the
        # holiday look-up and zone conversions cost more than the walk itself.
        windows = self._windows
        if day not in windows:
            if len(windows) >= _KEPT_WINDOWS:
                windows.clear()
            windows[day] = self._compute_window(day)
        return windows[day]

    @cached_property
    def _windows(self) -> dict[date, tuple[datetime, datetime] | None]:
        return {}

    def _compute_window(self, day: date) -> tuple[datetime, datetime] | None:
        if not self.is_business_day(day):
            return None
        start = datetime.combine(day, self.opens, tzinfo=self.zone)
        end = datetime.combine(day, self.closes, tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)


def add_business_time(start: datetime, duration: timedelta, hours: BusinessHours) -> datetime:
    """The instant when `duration` of business time has passed after `start` (UTC)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    remaining = duration
    at = start.astimezone(UTC)
    day = at.astimezone(hours.zone).date()
    # A year of closed days in a row would be a configuration error, not a real calendar.
    for _ in range(366 + int(duration / hours.day_length) * 2):
        window = hours.window(day)
        if window is not None and at < window[1]:
            begin = max(at, window[0])
            available = window[1] - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        day += timedelta(days=1)
    raise ValueError("no business hours found within a year")


def business_time_between(start: datetime, end: datetime, hours: BusinessHours) -> timedelta:
    """How much business time lies between two instants (zero if `end` is not later)."""
    begin, finish = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day = begin.astimezone(hours.zone).date()
    last = finish.astimezone(hours.zone).date()
    while day <= last:
        window = hours.window(day)
        if window is not None:
            overlap = min(finish, window[1]) - max(begin, window[0])
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


_HOURS_PATTERN = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<opens>\d{1,2}:\d{2})\s*-\s*(?P<closes>\d{1,2}:\d{2})\s*$"
)


def parse_business_hours(value: str, zone: str = "Europe/Oslo") -> BusinessHours:
    """`mon-fri 08:00-16:00` (or `mon-sat 09:00-15:00`) in an IANA zone; ValueError if bad."""
    match = _HOURS_PATTERN.match(value.lower())
    if match is None:
        raise ValueError("expected days and hours like 'mon-fri 08:00-16:00'")
    first, last = match["first"], match["last"] or match["first"]
    if first not in WEEKDAYS or last not in WEEKDAYS:
        raise ValueError(f"days must be among {', '.join(WEEKDAYS)}")
    begin, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
    if end < begin:
        raise ValueError("the day range must run forwards, e.g. mon-fri")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    return BusinessHours(
        zone=tz,
        opens=_clock_time(match["opens"]),
        closes=_clock_time(match["closes"]),
        weekdays=frozenset(range(begin, end + 1)),
    )


def _clock_time(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    if hour == 24 and minute == 0:
        return time.max
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"{text} is not a time of day")
    return time(hour, minute)
