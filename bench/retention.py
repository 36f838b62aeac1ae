"""Retention at scale: expiry rate, longest transaction, and the inbox while it runs.

On PostgreSQL, a template database is seeded once with set-based SQL (INSERT … SELECT
generate_series): `--tickets` tickets (default 1,000,000) with `--messages` messages each
(default 5), a quarter of the tickets with their last message 25 months back (expired),
the rest within the last 700 days. Each measurement copies it with
`CREATE DATABASE … TEMPLATE` (seconds instead of the minutes seeding takes), then:

1. the inbox's unassigned queue page (`list_queue(queue="unassigned")` plus
   `queue_counts`, the two queries the page runs) is timed `--samples` times: p50/p95;
2. the retention run starts in a separate process (as the scheduler's worker would run
   it); every transaction it commits is timed in that process; meanwhile this process
   keeps timing the queue page, for `--slice` seconds;
3. then `--phases` pairs of `--phase` seconds each with the run paused (SIGSTOP) and
   running (SIGCONT): on a shared machine whose background load drifts, these paired
   samples compare "during" with "not during" under the same load;
4. the run is stopped (SIGTERM) and the queue page is timed again, and once more after
   `VACUUM (ANALYZE) tickets, messages` (deleted rows are dead index entries until then).

Reported: messages deleted per hour over the slice (goal ≥ 1,000,000), the longest
transaction, and the queue page p95 during the run against before (goal ≤ 20 % worse).

    .venv/bin/python bench/retention.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
    .venv/bin/python bench/retention.py --tickets 20000 --slice 20     # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpdesk.models  # noqa: E402,F401
from helpdesk.bootstrap import build_runtime  # noqa: E402
from helpdesk.config import Settings  # noqa: E402
from helpdesk.inbox.queues import QueueFilters, list_queue, queue_counts  # noqa: E402
from helpdesk.migrate import upgrade_database  # noqa: E402
from helpdesk.models import Operator  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"
SEED_SQL = [
    # The reference instant: "now" of every run on this template.
    "CREATE TABLE bench_meta (seeded_at timestamptz NOT NULL)",
    "INSERT INTO bench_meta VALUES (now())",
    """INSERT INTO operators (email, email_key, name, role, active, created_at)
       VALUES ('bench@kurs.example', 'bench@kurs.example', 'Bench', 'admin', true, now())""",
    # A quarter expired (25 months and up to 42 days back), the rest within 700 days.
    """INSERT INTO tickets (id, number, subject, status, channel, priority, requester,
                           participants, tags, needs_review, created_at, updated_at,
                           last_message_at)
       SELECT g, 1000 + g, 'Spørsmål om kursbevis ' || g,
              (ARRAY['new', 'open', 'pending', 'solved', 'closed'])[1 + g % 5],
              'email', 'normal', 'learner' || g || '@example.no', '[]'::jsonb, '[]'::jsonb,
              false, at - interval '3 days', at, at
       FROM (SELECT g, CASE WHEN g % 4 = 0
                       THEN m.seeded_at - interval '25 months' - (g % 1000) * interval '1 hour'
                       ELSE m.seeded_at - (g % 700) * interval '1 day'
                                        - (g % 86400) * interval '1 second'
                       END AS at
             FROM generate_series(1, :tickets) AS g, bench_meta m) s""",
    "SELECT setval('tickets_id_seq', :tickets)",
    """INSERT INTO messages (ticket_id, direction, author_kind, author_name, author_email, text,
                            reply_text, thread_reason, created_at, sender_verified)
       SELECT t.id, CASE WHEN k % 2 = 1 THEN 'inbound' ELSE 'outbound' END,
              CASE WHEN k % 2 = 1 THEN 'learner' ELSE 'operator' END,
              'Kari Nordmann', t.requester,
              'Hei! Jeg har fullført HMS-kurset, men finner ikke kursbeviset på min side. '
              || 'Kan dere sende det på nytt? Melding ' || k || ' i sak ' || t.number,
              'Kan dere sende det på nytt?', 'new',
              t.last_message_at - (:messages - k) * interval '1 hour', true
       FROM tickets t, generate_series(1, :messages) AS k""",
]


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _template_ready(server_url: str, name: str) -> bool:
    """The template exists and its seeding finished (bench_meta is written last-but-one)."""
    engine = create_async_engine(server_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
    finally:
        await engine.dispose()
    if found is None:
        return False
    engine = create_async_engine(_url(server_url, name))
    try:
        async with engine.connect() as connection:
            return bool(
                await connection.scalar(text("SELECT to_regclass('bench_meta') IS NOT NULL"))
            )
    finally:
        await engine.dispose()


async def seed_template(server_url: str, name: str, tickets: int, messages: int) -> None:
    """Migrate a new database and fill it with set-based SQL; indexes are built after."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}"')
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = _url(server_url, name)
    await upgrade_database(url)
    engine = create_async_engine(url)
    started = time.perf_counter()
    try:
        async with engine.begin() as connection:
            rows = await connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                    "('tickets', 'messages') "
                    "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
                )
            )
            indexes = rows.all()
            for index_name, _ in indexes:  # bulk load first, index once afterwards
                await connection.execute(text(f'DROP INDEX "{index_name}"'))
            values = {"tickets": tickets, "messages": messages}
            for statement in SEED_SQL:
                used = {k: v for k, v in values.items() if f":{k}" in statement}
                await connection.execute(text(statement).bindparams(**used))
            for _, definition in indexes:
                await connection.execute(text(definition))
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    print(f"seeded {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


async def copy_template(server_url: str, template: str) -> tuple[str, str]:
    name = f"bench_retention_run_{os.getpid()}"
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    started = time.perf_counter()
    await _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    print(f"copied the template in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return name, _url(server_url, name)


class PageTimer:
    """Times the unassigned queue page's two queries, as the inbox runs them."""

    def __init__(self, url: str) -> None:
        self.runtime = build_runtime(
            Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), secret_key=SECRET)
        )
        self.operator: Operator | None = None

    async def load(self) -> float:
        async with self.runtime.sessions() as session:
            if self.operator is None:
                self.operator = await session.get(Operator, 1)
            assert self.operator is not None
            started = time.perf_counter()
            await list_queue(
                session, operator=self.operator, queue="unassigned", filters=QueueFilters()
            )
            await queue_counts(session, self.operator)
            return time.perf_counter() - started

    async def sample(self, count: int) -> list[float]:
        return [await self.load() for _ in range(count)]

    async def sample_until(self, done: asyncio.Event, pause: float = 0.05) -> list[float]:
        timings = []
        while not done.is_set():
            timings.append(await self.load())
            await asyncio.sleep(pause)  # a busy inbox, not a tight loop
        return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def worker(url: str, now: str, data_dir: str) -> dict[str, Any]:
    """The retention run's process: run until SIGTERM, timing every committed transaction."""
    from helpdesk.retention import expiry, service

    # (wall-clock end, duration, messages deleted) of every committed transaction.
    events: list[tuple[float, float, int]] = []
    pending = {"messages": 0}
    real_transaction, real_expire = service.transaction, expiry.expire_tickets

    @contextlib.asynccontextmanager
    async def timed_transaction(factory: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        pending["messages"] = 0
        async with real_transaction(factory) as session:
            yield session
        events.append((time.time(), time.perf_counter() - started, pending["messages"]))

    async def counting_expire(*args: Any, **kwargs: Any) -> Any:
        batch = await real_expire(*args, **kwargs)
        pending["messages"] = batch.messages
        return batch

    service.transaction = timed_transaction  # type: ignore[assignment]
    expiry.expire_tickets = counting_expire  # type: ignore[assignment]
    settings = Settings(database_url=url, data_dir=Path(data_dir), secret_key=SECRET)
    runtime = build_runtime(settings)
    instant = datetime.fromisoformat(now)
    started, started_wall = time.perf_counter(), time.time()
    run = asyncio.create_task(service.run_retention(runtime, now=instant))
    # The measuring process stops the run with SIGTERM after its slice (and may pause it
    # with SIGSTOP/SIGCONT in between); a finished run ends earlier.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, run.cancel)
    finished = False
    try:
        await run
        finished = True
    except asyncio.CancelledError:
        pass
    elapsed = time.perf_counter() - started
    await runtime.close()
    return {"started": started_wall, "elapsed": elapsed, "finished": finished, "events": events}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    server = args.postgres
    template = f"bench_retention_{args.tickets}x{args.messages}"
    if args.reseed or not await _template_ready(server, template):
        await seed_template(server, template, args.tickets, args.messages)
    name, url = await copy_template(server, template)
    timer = PageTimer(url)
    try:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            now = await connection.scalar(text("SELECT seeded_at FROM bench_meta"))
            total_messages = await connection.scalar(text("SELECT count(*) FROM messages"))
        await engine.dispose()
        await timer.sample(10)  # warm the pool and the cache
        before = await timer.sample(args.samples)
        command = [
            sys.executable,
            __file__,
            "--worker",
            url,
            now.astimezone(UTC).isoformat(),
            tempfile.mkdtemp(),
        ]
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        await wait_for_run_start(timer)  # not the worker's imports: the run itself
        during = await sample_for(timer, args.slice)
        slice_end = time.time()
        # Then alternate: the run paused (SIGSTOP) and running, `--phase` seconds each, so
        # both kinds of sample see the same background load of this shared machine.
        phases: dict[str, list[float]] = {"paused": [], "running": []}
        for _ in range(args.phases):
            process.send_signal(signal.SIGSTOP)
            phases["paused"] += await sample_for(timer, args.phase)
            process.send_signal(signal.SIGCONT)
            phases["running"] += await sample_for(timer, args.phase)
        process.send_signal(signal.SIGTERM)
        output, _ = await process.communicate()
        after = await timer.sample(args.samples)
        # Deleted rows stay as dead index entries until VACUUM; autovacuum waits for 20 %
        # of a table to change. Timed again after one, to tell that apart from the load.
        vacuum_started = time.perf_counter()
        await vacuum(url, "tickets", "messages")
        vacuum_seconds = time.perf_counter() - vacuum_started
        after_vacuum = await timer.sample(args.samples)
    finally:
        await timer.runtime.close()
        if not args.keep:
            await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run = json.loads(output)
    # The slice alone: later transactions may include a SIGSTOP pause.
    in_slice = [(d, m) for end, d, m in run["events"] if end <= slice_end]
    durations = [d for d, _ in in_slice]
    messages = sum(m for _, m in in_slice)
    samples = {
        "before": before,
        "during": during,
        "after": after,
        **phases,
        "after_vacuum": after_vacuum,
    }
    return {
        "tickets": args.tickets,
        "messages_total": total_messages,
        "slice": {
            "seconds": slice_end - run["started"],
            "finished": run["finished"],
            "transactions": len(durations),
            "longest": max(durations, default=0.0),
            "p99": percentile(durations, 0.99) if durations else 0.0,
            "messages": messages,
        },
        "per_hour": messages / (slice_end - run["started"]) * 3600,
        "vacuum_seconds": vacuum_seconds,
        "page": {
            label: {"n": len(t), "p50": statistics.median(t), "p95": percentile(t, 0.95)}
            for label, t in samples.items()
            if t
        },
    }


async def vacuum(url: str, *tables: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))
    finally:
        await engine.dispose()


async def wait_for_run_start(timer: PageTimer) -> None:
    while True:
        async with timer.runtime.sessions() as session:
            if await session.scalar(text("SELECT count(*) FROM retention_runs")):
                return
        await asyncio.sleep(0.2)


async def sample_for(timer: PageTimer, seconds: float) -> list[float]:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, done.set)
    return await timer.sample_until(done)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, now, data_dir = sys.argv[2:5]
        print(json.dumps(asyncio.run(worker(url, now, data_dir))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HELPDESK_BENCH_DATABASE_URL")
        or os.environ.get("HELPDESK_TEST_DATABASE_URL")
        or "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=5, help="messages per ticket")
    parser.add_argument("--slice", type=float, default=180, help="seconds of retention run")
    parser.add_argument("--phases", type=int, default=6, help="paused/running pairs after it")
    parser.add_argument("--phase", type=float, default=15, help="seconds of each phase")
    parser.add_argument("--samples", type=int, default=300, help="page loads before/after")
    parser.add_argument("--reseed", action="store_true", help="seed the template again")
    parser.add_argument("--keep", action="store_true", help="keep the run's database")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
