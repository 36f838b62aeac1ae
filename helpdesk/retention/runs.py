"""Retention runs: the report of DESIGN §5 and the stored record of every real run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.db import transaction
from helpdesk.metrics import RETENTION_DELETED
from helpdesk.models import RetentionRun
from helpdesk.retention.policy import CATEGORIES
from helpdesk.retention.windows import Tally


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


@dataclass
class RetentionReport:
    """Per category what was (or, in a dry run, would be) deleted, and who was held."""

    dry_run: bool
    now: datetime
    categories: dict[str, Tally] = field(
        default_factory=lambda: {name: Tally() for name in CATEGORIES}
    )
    held: list[int] = field(default_factory=list)
    # Not part of the report: messages removed with the threads, and failed sign-ins.
    messages: int = 0
    sign_in_failures: int = 0
    files: int = 0

    def as_json(self) -> dict[str, Any]:
        """The report exactly as DESIGN §5 prints it."""
        return {
            "dry_run": self.dry_run,
            "now": _iso(self.now),
            "categories": {
                name: {
                    "count": tally.count,
                    "oldest": _iso(tally.oldest),
                    "newest": _iso(tally.newest),
                }
                for name, tally in self.categories.items()
            },
            "held": sorted(self.held),
        }


async def start_run(
    sessions: async_sessionmaker[AsyncSession],
    report: RetentionReport,
    started_at: datetime,
    trigger: str,
) -> int:
    """Record a new run; runs left `running` by a process that died become `interrupted`."""
    async with transaction(sessions) as session:
        await session.execute(
            update(RetentionRun)
            .where(col(RetentionRun.status) == "running")
            .values(status="interrupted")
        )
        run = RetentionRun(
            started_at=started_at, policy_now=report.now, trigger=trigger, status="running"
        )
        session.add(run)
        await session.flush()
        assert run.id is not None
        return run.id


async def save_run(
    sessions: async_sessionmaker[AsyncSession],
    run_id: int,
    report: RetentionReport,
    *,
    status: str,
    finished_at: datetime | None = None,
) -> None:
    """Store the counts so far; when the run ends, also its audit event (counts only)."""
    summary = report.as_json()
    async with transaction(sessions) as session:
        run = await session.get(RetentionRun, run_id)
        if run is None:
            return
        run.categories, run.held, run.status = summary["categories"], summary["held"], status
        run.finished_at = finished_at
        if finished_at is not None:
            await record_event(
                session,
                "system",
                "retention.run",
                f"retention_run:{run_id}",
                status=status,
                counts={name: c["count"] for name, c in summary["categories"].items()},
                held=len(summary["held"]),
            )
    if finished_at is not None:
        for name, tally in summary["categories"].items():
            RETENTION_DELETED.labels(name).inc(tally["count"])


async def recent_runs(session: AsyncSession, limit: int = 10) -> list[RetentionRun]:
    """The latest runs, newest first."""
    rows = await session.scalars(
        select(RetentionRun).order_by(col(RetentionRun.started_at).desc()).limit(limit)
    )
    return list(rows)
