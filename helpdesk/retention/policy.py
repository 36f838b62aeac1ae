"""The retention policy in one place: every window of DESIGN §7, its default and its rule.

The windows come from `Settings.retention` (HELPDESK_RETENTION_* variables); this module
turns them into cut-off instants for a given `now` and into the readable table shown on
the admin page, so the privacy policy's promises can be compared with what runs.

"N months after" means strictly more than N calendar months (UTC), and a day that does not
exist in the target month becomes its last day: 29 February 2024 + 24 months is
28 February 2026.

Not a window: suppressed addresses (hard bounces) stay until an operator lifts them, since
forgetting one would mean mailing a dead mailbox again; they hold an address and the
relay's reason, no message content.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from helpdesk.config import RetentionSettings

# The categories of the report (DESIGN §5), in the order they are run and shown.
CATEGORIES = (
    "threads",
    "delivery_logs",
    "audit_events",
    "one_time_codes",
    "privacy_links",
    "exports",
    "sessions",
    "ignored_mail",
    "order_bookkeeping",
)

# Norwegian accounting years are calendar years in Norwegian time.
ACCOUNTING_ZONE = ZoneInfo("Europe/Oslo")


def add_months(instant: datetime, months: int) -> datetime:
    """`instant` moved by whole calendar months (negative: back); day clamped to month end."""
    index = instant.year * 12 + (instant.month - 1) + months
    year, month = divmod(index, 12)
    day = min(instant.day, calendar.monthrange(year, month + 1)[1])
    return instant.replace(year=year, month=month + 1, day=day)


def is_past_months(instant: datetime, months: int, now: datetime) -> bool:
    """True when `instant` is strictly more than `months` calendar months before `now`."""
    return add_months(instant, months) < now


@dataclass(frozen=True)
class MonthsCutoff:
    """Which instants are more than N months before `now`, as SQL-friendly bounds.

    Everything before `before` is past the window. Because of month-end clamping a few
    days after it can be past the window too (e.g. 29-31 January, one month before
    28 February at noon): those lie in `[before, maybe_until)` and are decided one by one
    with `is_past_months`.
    """

    months: int
    now: datetime
    before: datetime
    maybe_until: datetime

    def includes(self, instant: datetime) -> bool:
        return instant < self.before or is_past_months(instant, self.months, self.now)


def months_cutoff(now: datetime, months: int) -> MonthsCutoff:
    """The bounds of "more than `months` months before `now`" (see `MonthsCutoff`)."""
    before = add_months(now, -months)
    last_day_now = calendar.monthrange(now.year, now.month)[1]
    last_day_before = calendar.monthrange(before.year, before.month)[1]
    maybe_until = before
    if now.day == last_day_now and last_day_before > last_day_now:
        # Days last_day_now+1 … month end of `before` clamp onto now's last day.
        month_end = datetime.combine(
            date(before.year, before.month, last_day_before), time(), tzinfo=UTC
        )
        maybe_until = month_end + timedelta(days=1)
    return MonthsCutoff(months=months, now=now, before=before, maybe_until=maybe_until)


def order_bookkeeping_cutoff(now: datetime, years: int) -> datetime:
    """Orders purchased before this instant are past `years` after their accounting year.

    An order of 2020 belongs to the accounting year ending 31 December 2020 (Oslo time);
    with 5 years it is kept until the end of 2025 and deleted from 1 January 2026.
    """
    local_year = now.astimezone(ACCOUNTING_ZONE).year
    start = datetime(local_year - years, 1, 1, tzinfo=ACCOUNTING_ZONE)
    return start.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """One line of the policy table."""

    category: str
    what: str
    kept: str
    variable: str


def policy_table(policy: RetentionSettings) -> list[Window]:
    """The windows in force, worded for people, with the variable that changes each."""
    p = policy
    return [
        Window(
            "threads",
            "Support threads: tickets with their messages, attachments, raw mail, "
            "outgoing mail and widget conversation (a content-free tombstone stays)",
            f"{p.threads_months} months after the last message, unless under legal hold "
            "or with an open privacy request",
            "HELPDESK_RETENTION_THREADS_MONTHS",
        ),
        Window(
            "delivery_logs",
            "Delivery logs of outgoing mail (each attempt and the relay's answer)",
            f"{p.delivery_logs_months} months",
            "HELPDESK_RETENTION_DELIVERY_LOGS_MONTHS",
        ),
        Window(
            "audit_events",
            "Audit log",
            f"{p.audit_months} months",
            "HELPDESK_RETENTION_AUDIT_MONTHS",
        ),
        Window(
            "one_time_codes",
            "One-time verification codes of the chat widget",
            f"{p.codes_minutes} minutes after issue",
            "HELPDESK_RETENTION_CODES_MINUTES",
        ),
        Window(
            "privacy_links",
            "Privacy confirmation links",
            f"{p.privacy_links_days} days after issue",
            "HELPDESK_RETENTION_PRIVACY_LINKS_DAYS",
        ),
        Window(
            "exports",
            "Privacy export links and their files",
            f"{p.exports_days} days after issue",
            "HELPDESK_RETENTION_EXPORTS_DAYS",
        ),
        Window(
            "sessions",
            "Inbox sessions of operators (and failed sign-ins, kept only for rate limits)",
            f"{p.sessions_days} days after last use; at once when expired or signed out",
            "HELPDESK_RETENTION_SESSIONS_DAYS",
        ),
        Window(
            "ignored_mail",
            "Ignored machine mail (auto-replies, bounces, lists not filed into a ticket)",
            f"{p.ignored_mail_days} days after receipt",
            "HELPDESK_RETENTION_IGNORED_MAIL_DAYS",
        ),
        Window(
            "order_bookkeeping",
            "Orders (the bookkeeping fields that outlive a learner's erasure)",
            f"{p.order_years} years after the end of the purchase's accounting year "
            "(calendar year, Norwegian time), then the order is deleted",
            "HELPDESK_RETENTION_ORDERS_YEARS",
        ),
    ]
