"""The retention windows other than threads: rows past their window, deleted in batches.

Each window is a `RowWindow`: a table, the timestamp its age is measured by, the condition
that makes a row due, and what else goes with it (files). The policy's numbers come from
`Settings.retention`; tables of capabilities that are not installed yet are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from helpdesk.adapters.storage import FileStorage
from helpdesk.config import RetentionSettings
from helpdesk.retention.expiry import delete_unused_files, remove_data_file
from helpdesk.retention.policy import months_cutoff, order_bookkeeping_cutoff

BATCH_SIZE = 1000
# Failed sign-ins count for rate limiting during this window (helpdesk.inbox.signin).
SIGN_IN_FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Context:
    """Everything a window needs to decide and to delete."""

    now: datetime
    policy: RetentionSettings
    storage: FileStorage
    data_dir: Path

    @property
    def today(self) -> date:
        return self.now.date()


@dataclass(frozen=True)
class RowWindow:
    """Rows of `table` that are due when `due` holds; `stamp` is their age's timestamp.

    `scrub` (column values) clears fields instead of deleting the row; `storage_files` /
    `data_files` name a column whose file goes with the row.
    """

    category: str
    table: Table
    stamp: str
    due: ColumnElement[bool]
    scrub: dict[str, Any] | None = None
    storage_files: str | None = None
    data_files: str | None = None


@dataclass
class Tally:
    """A category's count and the oldest and newest timestamp of the rows counted."""

    count: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None

    def add(self, count: int, oldest: datetime | None, newest: datetime | None) -> None:
        self.count += count
        if oldest is not None:
            self.oldest = oldest if self.oldest is None else min(self.oldest, oldest)
        if newest is not None:
            self.newest = newest if self.newest is None else max(self.newest, newest)


@dataclass
class Purged:
    tally: Tally = field(default_factory=Tally)
    files: int = 0


def _table(name: str) -> Table | None:
    return SQLModel.metadata.tables.get(name)


def _tables(*names: str) -> list[Table]:
    return [SQLModel.metadata.tables[name] for name in names]


def row_windows(ctx: Context) -> list[RowWindow]:
    """Every window in force at `ctx.now`, in report order (threads excluded)."""
    builders = (
        _delivery_logs,
        _audit_events,
        _one_time_codes,
        _privacy_links,
        _sessions,
        _ignored_mail,
        _order_bookkeeping,
    )
    return [window for build in builders for window in build(ctx)]


def _delivery_logs(ctx: Context) -> list[RowWindow]:
    attempts, outbound = _tables("delivery_attempts", "outbound_emails")
    before = months_cutoff(ctx.now, ctx.policy.delivery_logs_months).before
    old = and_(outbound.c.created_at < before, outbound.c.status.in_(("sent", "failed", "bounced")))
    # Mail outside any thread (notifications) holds nothing a thread keeps: it goes whole.
    loose = and_(outbound.c.ticket_id.is_(None), outbound.c.message_id.is_(None))
    kept_reply = and_(old, ~loose, outbound.c.last_reply.is_not(None))
    return [
        RowWindow("delivery_logs", attempts, "attempted_at", attempts.c.attempted_at < before),
        RowWindow("delivery_logs", outbound, "created_at", and_(old, loose)),
        # Mail of a kept thread keeps its body; only the relay's answer is a delivery log.
        RowWindow("delivery_logs", outbound, "created_at", kept_reply, scrub={"last_reply": None}),
    ]


def _audit_events(ctx: Context) -> list[RowWindow]:
    [audit] = _tables("audit_events")
    before = months_cutoff(ctx.now, ctx.policy.audit_months).before
    return [RowWindow("audit_events", audit, "at", audit.c.at < before)]


def _one_time_codes(ctx: Context) -> list[RowWindow]:
    codes = _table("verification_codes")  # the widget's; absent until it is installed
    if codes is None:
        return []
    issued_before = ctx.now - timedelta(minutes=ctx.policy.codes_minutes)
    return [RowWindow("one_time_codes", codes, "created_at", codes.c.created_at < issued_before)]


def _privacy_links(ctx: Context) -> list[RowWindow]:
    links = _table("privacy_links")  # the privacy capability's; absent until installed
    if links is None:
        return []
    is_export = links.c.purpose == "export"
    link_before = ctx.now - timedelta(days=ctx.policy.privacy_links_days)
    export_before = ctx.now - timedelta(days=ctx.policy.exports_days)
    return [
        RowWindow(
            "privacy_links", links, "created_at", and_(~is_export, links.c.created_at < link_before)
        ),
        RowWindow(
            "exports",
            links,
            "created_at",
            and_(is_export, links.c.created_at < export_before),
            storage_files="file_path",  # export ZIPs are in the file storage
        ),
    ]


def _sessions(ctx: Context) -> list[RowWindow]:
    [sessions] = _tables("operator_sessions")
    idle_before = ctx.now - timedelta(days=ctx.policy.sessions_days)
    ended = or_(
        sessions.c.last_seen_at < idle_before,
        sessions.c.expires_at < ctx.now,
        sessions.c.revoked_at.is_not(None),
    )
    return [RowWindow("sessions", sessions, "last_seen_at", ended)]


def _ignored_mail(ctx: Context) -> list[RowWindow]:
    [mail] = _tables("inbound_mail")
    ignored = and_(
        mail.c.status == "ignored",
        mail.c.ticket_id.is_(None),
        mail.c.received_at < ctx.now - timedelta(days=ctx.policy.ignored_mail_days),
    )
    return [RowWindow("ignored_mail", mail, "received_at", ignored, storage_files="storage_path")]


def _order_bookkeeping(ctx: Context) -> list[RowWindow]:
    [orders] = _tables("orders")
    before = order_bookkeeping_cutoff(ctx.now, ctx.policy.order_years)
    return [RowWindow("order_bookkeeping", orders, "purchased_at", orders.c.purchased_at < before)]


def sign_in_failures_window(ctx: Context) -> RowWindow | None:
    """Failed sign-ins past the rate limit's window (kept out of the report's categories)."""
    failures = _table("sign_in_failures")
    if failures is None:
        return None
    due = failures.c.at < ctx.now - SIGN_IN_FAILURE_WINDOW
    return RowWindow("sign_in_failures", failures, "at", due)


async def survey_window(session: AsyncSession, window: RowWindow) -> Tally:
    """How many rows the window would remove now, and their timestamp range."""
    stamp = window.table.c[window.stamp]
    count, oldest, newest = (
        await session.execute(
            select(func.count(), func.min(stamp), func.max(stamp)).where(window.due)
        )
    ).one()
    tally = Tally()
    tally.add(count, _aware(oldest), _aware(newest))
    return tally


async def purge_batch(
    session: AsyncSession, window: RowWindow, ctx: Context, limit: int = BATCH_SIZE
) -> Purged:
    """Remove (or scrub) up to `limit` due rows and their files; an empty result: done."""
    [key] = window.table.primary_key.columns
    stamp = window.table.c[window.stamp]
    extra = [window.table.c[c] for c in (window.storage_files, window.data_files) if c]
    rows = (
        await session.execute(
            select(key, stamp, *extra).where(window.due).order_by(key).limit(limit)
        )
    ).all()
    purged = Purged()
    if not rows:
        return purged
    keys = [row[0] for row in rows]
    if window.scrub is not None:
        await session.execute(update(window.table).where(key.in_(keys)).values(**window.scrub))
    else:
        await session.execute(delete(window.table).where(key.in_(keys)))
    stamps = [_aware(row[1]) for row in rows]
    known = [s for s in stamps if s is not None]
    purged.tally.add(len(rows), min(known, default=None), max(known, default=None))
    if window.storage_files:
        paths = {row[2] for row in rows if row[2]}
        purged.files += await delete_unused_files(session, ctx.storage, paths)
    if window.data_files:
        purged.files += sum(remove_data_file(ctx.data_dir, row[-1]) for row in rows if row[-1])
    return purged


def _aware(value: Any) -> datetime | None:
    """Core queries bypass UtcDateTime's loader on SQLite: restore the UTC offset."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
