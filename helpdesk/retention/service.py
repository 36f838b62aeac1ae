"""Running the retention policy: a dry run that counts, or a real run that deletes.

`run_retention` is what `helpdesk retention`, the daily task and tests call. A real run
holds the `retention` job lease (so two schedulers or workers never run it at once), is
recorded as a `RetentionRun`, and works in short transactions: threads in batches of
`expiry.BATCH_SIZE` tickets, the other windows in batches of `windows.BATCH_SIZE` rows.
Stopped anywhere, the next run simply carries on; a finished run leaves nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.retention import expiry
from helpdesk.retention.lease import Lease
from helpdesk.retention.policy import months_cutoff
from helpdesk.retention.runs import RetentionReport, save_run, start_run
from helpdesk.retention.windows import (
    Context,
    RowWindow,
    purge_batch,
    row_windows,
    sign_in_failures_window,
    survey_window,
)

log = logging.getLogger("helpdesk.retention")

LEASE_NAME = "retention"
# After each batch the run rests this many times as long as the batch took, leaving the
# database (and, on a small machine, the CPU) to the inbox in between; see bench/RESULTS.md.
REST_RATIO = 2.0
# PostgreSQL: deleted tickets stay dead entries in the inbox's queue indexes until VACUUM,
# and autovacuum waits until a fifth of the table changed; the run vacuums `tickets` after
# this many expired tickets, and both big tables at its end (measured: bench/RESULTS.md).
VACUUM_EVERY = 10_000
# Progress: (category, how many removed so far in it).
Progress = Callable[[str, int], None]


def _context(runtime: Runtime, now: datetime) -> Context:
    return Context(
        now=now,
        policy=runtime.settings.retention,
        storage=runtime.storage,
        data_dir=runtime.settings.data_dir,
    )


async def run_retention(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
) -> RetentionReport:
    """Apply the policy at `now` (default: the clock); raises JobBusy if a run is under way."""
    ctx = _context(runtime, now or runtime.clock.now())
    report = RetentionReport(dry_run=dry_run, now=ctx.now)
    if dry_run:
        await survey(runtime.sessions, ctx, report)
        return report
    lease = Lease(runtime.sessions, runtime.clock, LEASE_NAME)
    await lease.acquire()
    run_id: int | None = None
    status = "interrupted"
    try:
        async with runtime.sessions() as session:
            cutoff = months_cutoff(ctx.now, ctx.policy.threads_months)
            report.held = await expiry.held_tickets(session, cutoff, ctx.today)
        run_id = await start_run(runtime.sessions, report, runtime.clock.now(), trigger)
        await _expire_threads(runtime, ctx, report, lease, progress, run_id)
        await _purge_windows(runtime.sessions, ctx, report, lease, progress)
        if report.categories["threads"].count:
            await _vacuum(runtime, "tickets", "messages")
        status = "finished"
    finally:
        if run_id is not None:
            finished = runtime.clock.now() if status == "finished" else None
            await save_run(runtime.sessions, run_id, report, status=status, finished_at=finished)
        await lease.release()
    log.info(
        "retention run %s finished: %s",
        run_id,
        {name: tally.count for name, tally in report.categories.items()},
    )
    return report


async def survey(
    sessions: async_sessionmaker[AsyncSession], ctx: Context, report: RetentionReport
) -> None:
    """Fill `report` with what a run at `ctx.now` would delete; changes nothing."""
    async with sessions() as session:
        cutoff = months_cutoff(ctx.now, ctx.policy.threads_months)
        threads = await expiry.survey_threads(session, cutoff, ctx.today)
        report.categories["threads"].add(threads.count, threads.oldest, threads.newest)
        report.held = threads.held
        for window in row_windows(ctx):
            tally = await survey_window(session, window)
            report.categories[window.category].add(tally.count, tally.oldest, tally.newest)


# Windows short enough to be worth enforcing every hour, not only in the nightly run.
SHORT_WINDOWS = ("one_time_codes", "privacy_links", "exports", "sessions")


async def purge_short_windows(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Delete expired one-time codes, privacy links, export files and ended sessions now."""
    ctx = _context(runtime, now or runtime.clock.now())
    counts = dict.fromkeys(SHORT_WINDOWS, 0)
    for window in row_windows(ctx):
        if window.category not in counts:
            continue
        while True:
            async with transaction(runtime.sessions) as session:
                purged = await purge_batch(session, window, ctx)
            if not purged.tally.count:
                break
            counts[window.category] += purged.tally.count
    return counts


async def _expire_threads(
    runtime: Runtime,
    ctx: Context,
    report: RetentionReport,
    lease: Lease,
    progress: Progress | None,
    run_id: int,
) -> None:
    cutoff = months_cutoff(ctx.now, ctx.policy.threads_months)
    position: tuple[datetime, int] | None = None
    batches = 0
    since_vacuum = 0
    while True:
        async with runtime.sessions() as session:
            ids, position = await expiry.next_expirable(
                session, cutoff, ctx.today, position, limit=expiry.BATCH_SIZE
            )
        if position is None:
            return
        if ids:
            started = time.perf_counter()
            async with transaction(runtime.sessions) as session:
                batch = await expiry.expire_tickets(
                    session,
                    runtime.storage,
                    ids,
                    data_dir=ctx.data_dir,
                    cutoff=cutoff,
                    today=ctx.today,
                    now=ctx.now,
                )
            report.categories["threads"].add(batch.tickets, batch.oldest, batch.newest)
            report.messages += batch.messages
            report.files += batch.files
            since_vacuum += batch.tickets
            if since_vacuum >= VACUUM_EVERY:
                await _vacuum(runtime, "tickets")
                since_vacuum = 0
            if progress is not None:
                progress("threads", report.categories["threads"].count)
            await _rest(started)
        await lease.renew()
        batches += 1
        if batches % 50 == 0:  # the admin page shows how far a long run has come
            await save_run(runtime.sessions, run_id, report, status="running")


async def _purge_windows(
    sessions: async_sessionmaker[AsyncSession],
    ctx: Context,
    report: RetentionReport,
    lease: Lease,
    progress: Progress | None,
) -> None:
    windows: list[RowWindow] = row_windows(ctx)
    failures = sign_in_failures_window(ctx)
    for window in [*windows, *([failures] if failures else [])]:
        while True:
            started = time.perf_counter()
            async with transaction(sessions) as session:
                purged = await purge_batch(session, window, ctx)
            if not purged.tally.count:
                break
            report.files += purged.files
            if window.category == "sign_in_failures":
                report.sign_in_failures += purged.tally.count
            else:
                tally = report.categories[window.category]
                tally.add(purged.tally.count, purged.tally.oldest, purged.tally.newest)
                if progress is not None:
                    progress(window.category, tally.count)
            await lease.renew()
            await _rest(started)


async def _vacuum(runtime: Runtime, *tables: str) -> None:
    """PostgreSQL: reclaim deleted rows now, so index scans stop visiting them (no-op on SQLite)."""
    if runtime.settings.is_sqlite:
        return
    async with runtime.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))


async def _rest(started: float) -> None:
    """Pause in proportion to the batch just done (REST_RATIO)."""
    if REST_RATIO > 0:
        await asyncio.sleep((time.perf_counter() - started) * REST_RATIO)
