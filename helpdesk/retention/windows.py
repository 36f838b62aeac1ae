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


def row_windows(ctx: Context) -> list[RowWindow]:
    """Every window in force at `ctx.now`, in report order (threads excluded)."""
    p, now = ctx.policy, ctx.now
    windows: list[RowWindow] = []
    t = _table
    delivery_before = months_cutoff(now, p.delivery_logs_months).before
    attempts, outbound = t("delivery_attempts"), t("outbound_emails")
    if attempts is not None:
        windows.append(
            RowWindow(
                "delivery_logs", attempts, "attempted_at", attempts.c.attempted_at < delivery_before
            )
        )
    if outbound is not None:
        finished = outbound.c.status.in_(("sent", "failed", "bounced"))
        old = and_(outbound.c.created_at < delivery_before, finished)
        # Mail outside any thread (notifications) holds nothing the thread keeps: it goes.
        loose = and_(outbound.c.ticket_id.is_(None), outbound.c.message_id.is_(None))
        windows.append(RowWindow("delivery_logs", outbound, "created_at", and_(old, loose)))
        # Mail of a kept thread keeps its body; only the relay's answer is a delivery log.
        windows.append(
            RowWindow(
                "delivery_logs",
                outbound,
                "created_at",
                and_(old, ~loose, outbound.c.last_reply.is_not(None)),
                scrub={"last_reply": None},
            )
        )
    audit = t("audit_events")
    if audit is not None:
        audit_before = months_cutoff(now, p.audit_months).before
        windows.append(RowWindow("audit_events", audit, "at", audit.c.at < audit_before))
    codes = t("verification_codes")
    if codes is not None:
        issued_before = now - timedelta(minutes=p.codes_minutes)
        windows.append(
            RowWindow("one_time_codes", codes, "created_at", codes.c.created_at < issued_before)
        )
    links = t("privacy_links")
    if links is not None:
        is_export = links.c.purpose == "export"
        link_before = now - timedelta(days=p.privacy_links_days)
        export_before = now - timedelta(days=p.exports_days)
        windows.append(
            RowWindow(
                "privacy_links",
                links,
                "created_at",
                and_(~is_export, links.c.created_at < link_before),
            )
        )
        windows.append(
            RowWindow(
                "exports",
                links,
                "created_at",
                and_(is_export, links.c.created_at < export_before),
                data_files="file_path",
            )
        )
    sessions = t("operator_sessions")
    if sessions is not None:
        idle_before = now - timedelta(days=p.sessions_days)
        ended = or_(
            sessions.c.last_seen_at < idle_before,
            sessions.c.expires_at < now,
            sessions.c.revoked_at.is_not(None),
        )
        windows.append(RowWindow("sessions", sessions, "last_seen_at", ended))
    mail = t("inbound_mail")
    if mail is not None:
        received_before = now - timedelta(days=p.ignored_mail_days)
        ignored = and_(
            mail.c.status == "ignored",
            mail.c.ticket_id.is_(None),
            mail.c.received_at < received_before,
        )
        windows.append(
            RowWindow("ignored_mail", mail, "received_at", ignored, storage_files="storage_path")
        )
    orders = t("orders")
    if orders is not None:
        purchased_before = order_bookkeeping_cutoff(now, p.order_years)
        windows.append(
            RowWindow(
                "order_bookkeeping",
                orders,
                "purchased_at",
                orders.c.purchased_at < purchased_before,
            )
        )
    return windows


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
