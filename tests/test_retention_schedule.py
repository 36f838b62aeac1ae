"""The retention schedules: registered on the broker, run in the embedded mode and by a
real worker process through Redis (tests/peers/redis.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from taskiq.cli.scheduler.run import is_cron_task_now

from helpdesk.bootstrap import Runtime
from helpdesk.broker import build_broker, build_scheduler
from helpdesk.config import Settings
from helpdesk.models import RetentionRun, Ticket
from helpdesk.retention.tasks import close_solved_tickets, run_policy
from tests.retention_factory import old_ticket
from tests.test_broker import SECRET_KEY, start_command, stop, task_queue  # noqa: F401
from tests.test_cli import run_cli

pytest_plugins = ["tests.peers.redis"]


async def schedules_by_task(settings: Settings) -> dict[str, dict[str, object]]:
    [source] = build_scheduler(build_broker(settings)).sources
    await source.startup()
    return {
        s.task_name: {"cron": s.cron, "offset": s.cron_offset, "id": s.schedule_id}
        for s in await source.get_schedules()
    }


async def test_retention_runs_daily_at_03_15_oslo_time_and_the_outbox_every_minute(
    tmp_path: Path,
) -> None:
    schedules = await schedules_by_task(Settings(data_dir=tmp_path, secret_key=SECRET_KEY))

    retention = schedules["retention.run_policy"]
    assert retention == {"cron": "15 3 * * *", "offset": "Europe/Oslo", "id": "retention-daily"}
    assert schedules["outbound.deliver_outbox"]["cron"] == "* * * * *"
    assert schedules["retention.close_solved_tickets"]["cron"] == "40 * * * *"
    assert schedules["retention.purge_short_windows"]["cron"] == "5 * * * *"
    summer, winter = (
        datetime(2026, 7, 1, 1, 15, tzinfo=UTC),
        datetime(2026, 1, 15, 2, 15, tzinfo=UTC),
    )
    assert is_cron_task_now("15 3 * * *", summer, offset="Europe/Oslo")  # 03:15 CEST
    assert is_cron_task_now("15 3 * * *", winter, offset="Europe/Oslo")  # 03:15 CET
    assert not is_cron_task_now("15 3 * * *", winter.replace(hour=3), offset="Europe/Oslo")


async def test_embedded_broker_runs_the_retention_task(runtime: Runtime) -> None:
    expired = await old_ticket(runtime, datetime(2020, 1, 1, tzinfo=UTC))
    broker = build_broker(runtime.settings, runtime=runtime)
    await broker.startup()
    try:
        sent = await run_policy.on(broker).kiq()
        result = await sent.wait_result(timeout=30)
        closing = await (await close_solved_tickets.on(broker).kiq()).wait_result(timeout=30)
    finally:
        await broker.shutdown()

    assert not result.is_err, result.error
    assert result.return_value["categories"]["threads"]["count"] == 1
    assert closing.return_value == 0
    async with runtime.sessions() as session:
        assert await session.scalar(select(Ticket).where(Ticket.number == expired.number)) is None
        [run] = await session.scalars(select(RetentionRun))
    assert (run.trigger, run.status) == ("schedule", "finished")


def wait_for_finished_run(database: Path, worker: object, timeout: float = 60) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            row = connection.execute(
                "SELECT trigger, status FROM retention_runs WHERE status = 'finished'"
            ).fetchone()
        if row is not None:
            return row
        if worker.poll() is not None:  # type: ignore[attr-defined]
            pytest.fail(f"worker exited early:\n{worker.communicate()[1]}")  # type: ignore[attr-defined]
        time.sleep(0.3)
    pytest.fail("the worker did not finish a retention run")


async def test_retention_task_sent_through_redis_is_run_by_a_worker_process(
    redis_url: str,
    task_queue: str,  # noqa: F811 - the fixture of tests/test_broker.py
    tmp_path: Path,
) -> None:
    database = tmp_path / "worker.db"
    env = {
        "HELPDESK_DATA_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    migrated = run_cli(
        {**{k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}, **env}, "migrate"
    )
    assert migrated.returncode == 0, migrated.stderr
    sender = build_broker(
        Settings(redis_url=redis_url, data_dir=tmp_path / "sender", secret_key=SECRET_KEY),
        queue_name=task_queue,
    )
    await sender.startup()
    try:
        await run_policy.on(sender).kiq()
    finally:
        await sender.shutdown()

    worker = start_command("worker", redis_url, task_queue, tmp_path)
    try:
        row = await asyncio.to_thread(wait_for_finished_run, database, worker)
    finally:
        code, stderr = stop(worker)

    assert row == ("schedule", "finished")
    assert code == 0, stderr
