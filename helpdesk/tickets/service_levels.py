"""Service levels: first-response and resolution targets per priority, in business time.

Defaults (business time; one day is one business day of `BusinessHours`, 8 h by default):

    urgent  first response 1 h   resolution 8 h (1 day)
    high    first response 4 h   resolution 2 days
    normal  first response 8 h   resolution 3 days
    low     first response 2 days resolution 5 days

Configured with `HELPDESK_SERVICE_LEVELS=urgent=1h/8h,high=4h/2d,…` (any subset),
`HELPDESK_BUSINESS_HOURS=mon-fri 08:00-16:00` and `HELPDESK_BUSINESS_TIMEZONE=Europe/Oslo`.

Due times are stored on the ticket when it is created and when its priority changes
(both counted from `created_at`); the first operator reply sets `first_response_at`,
solving or closing sets `resolved_at`, reopening clears it. The resolution clock does not
stop while a ticket is pending: the target is about the learner's wait, and a pending
ticket that is not solved in time is worth seeing in the breach queue.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from helpdesk.tickets.business_time import (
    BusinessHours,
    add_business_time,
    parse_business_hours,
)

PRIORITIES = ("low", "normal", "high", "urgent")
RESOLVED_STATUSES = ("solved", "closed")
# Statuses in which a missed due time is a breach someone can still act on.
ACTIVE_STATUSES = ("new", "open", "pending")
_SESSION_KEY = "helpdesk.service_levels"


@dataclass(frozen=True)
class Target:
    """How much business time a first response and a resolution may take."""

    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class ServiceLevelPolicy:
    """Targets per priority and the business hours they are counted in."""

    targets: dict[str, Target]
    hours: BusinessHours = field(default_factory=BusinessHours)

    def first_response_due(self, priority: str, start: datetime) -> datetime:
        """When the first operator reply is due for a ticket opened at `start`."""
        return add_business_time(start, self._target(priority).first_response, self.hours)

    def resolution_due(self, priority: str, start: datetime) -> datetime:
        """When a ticket opened at `start` should be solved."""
        return add_business_time(start, self._target(priority).resolution, self.hours)

    def _target(self, priority: str) -> Target:
        return self.targets.get(priority) or self.targets["normal"]


_DEFAULT_TARGETS = "urgent=1h/8h,high=4h/2d,normal=8h/3d,low=2d/5d"


def parse_policy(
    targets: str | None = None,
    business_hours: str | None = None,
    zone: str | None = None,
) -> ServiceLevelPolicy:
    """The policy from the three settings' text (None = default); ValueError when bad."""
    hours = parse_business_hours(business_hours or "mon-fri 08:00-16:00", zone or "Europe/Oslo")
    parsed = _parse_targets(_DEFAULT_TARGETS, hours)
    if targets:
        parsed |= _parse_targets(targets, hours)
    return ServiceLevelPolicy(parsed, hours)


_TARGET = re.compile(r"^(?P<priority>[a-z]+)=(?P<first>[\d.]+[mhd])/(?P<resolution>[\d.]+[mhd])$")


def _parse_targets(text: str, hours: BusinessHours) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for item in (part.strip().lower() for part in text.split(",") if part.strip()):
        match = _TARGET.match(item.replace(" ", ""))
        if match is None or match["priority"] not in PRIORITIES:
            wanted = ", ".join(PRIORITIES)
            raise ValueError(f"{item!r}: expected e.g. high=4h/2d for one of {wanted}")
        first = _duration(match["first"], hours)
        resolution = _duration(match["resolution"], hours)
        if first <= timedelta(0) or resolution < first:
            raise ValueError(f"{item!r}: resolution must be at least the first response time")
        targets[match["priority"]] = Target(first, resolution)
    return targets


def _duration(text: str, hours: BusinessHours) -> timedelta:
    amount, unit = float(text[:-1]), text[-1]
    if unit == "m":
        return timedelta(minutes=amount)
    if unit == "h":
        return timedelta(hours=amount)
    return hours.day_length * amount


_DEFAULT_POLICY: list[ServiceLevelPolicy] = []


def default_policy() -> ServiceLevelPolicy:
    """The documented defaults (built once)."""
    if not _DEFAULT_POLICY:
        _DEFAULT_POLICY.append(parse_policy())
    return _DEFAULT_POLICY[0]


def session_info(policy: ServiceLevelPolicy) -> dict[str, Any]:
    """The `info` entry that gives a session factory's sessions this policy."""
    return {_SESSION_KEY: policy}


def policy_of(session: Any) -> ServiceLevelPolicy:
    """The policy a session was made with (`session_info`), else the defaults."""
    policy = session.info.get(_SESSION_KEY)
    return policy if isinstance(policy, ServiceLevelPolicy) else default_policy()


def promised_response_hours(session: Any, priority: str) -> int:
    """What the acknowledgement promises: the first-response target in whole business hours."""
    target = policy_of(session).targets.get(priority) or policy_of(session).targets["normal"]
    return max(1, math.ceil(target.first_response / timedelta(hours=1)))


def set_due_times(ticket: Any, policy: ServiceLevelPolicy) -> None:
    """(Re)compute the ticket's due times from its creation and current priority."""
    ticket.first_response_due_at = policy.first_response_due(ticket.priority, ticket.created_at)
    ticket.resolution_due_at = policy.resolution_due(ticket.priority, ticket.created_at)


def record_first_response(ticket: Any, now: datetime) -> None:
    """An operator replied to the learner: the first time counts for the target."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now


def record_status(ticket: Any, now: datetime) -> None:
    """Solving or closing resolves the ticket; reopening it resumes the resolution clock."""
    if ticket.status in RESOLVED_STATUSES:
        if ticket.resolved_at is None:
            ticket.resolved_at = now
    else:
        ticket.resolved_at = None


@dataclass(frozen=True)
class DueState:
    """What the inbox shows about one due time: when, and whether it is met or missed."""

    label: str
    due_at: datetime
    done_at: datetime | None

    def breached(self, now: datetime) -> bool:
        """Missed: done late, or not done and already past due."""
        return (self.done_at or now) > self.due_at


def due_states(ticket: Any) -> list[DueState]:
    """The ticket's first-response and resolution due times (those it has)."""
    states = []
    if ticket.first_response_due_at is not None:
        states.append(
            DueState("First response", ticket.first_response_due_at, ticket.first_response_at)
        )
    if ticket.resolution_due_at is not None:
        states.append(DueState("Resolution", ticket.resolution_due_at, ticket.resolved_at))
    return states
