"""Background work: tasks reach a worker in the embedded mode and through real Redis.

Redis tests use the `redis_url` fixture of tests/peers/redis.py (skipped without
`HELPDESK_TEST_REDIS_URL`, failing under `CI=true`). Every test uses its own stream
name, so parallel runs never take each other's tasks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from taskiq.schedule_sources import LabelScheduleSource

from helpdesk.bootstrap import Runtime
from helpdesk.broker import CONSUMER_GROUP, build_broker, build_scheduler, run_worker, web_broker
from helpdesk.broker_selfcheck import SELFCHECK_FILE, selfcheck
from helpdesk.config import EX_CONFIG, Settings

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.private_services import PrivateRedis

pytest_plugins = ["tests.peers.private_services", "tests.peers.redis"]

SECRET_KEY = "test-secret-key-0123456789abcdef"


@pytest.fixture
def task_queue(redis_url: str) -> Iterator[str]:
    """A stream name of this test alone; deleted afterwards."""
    name = f"helpdesk-test:{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        client.delete(name)


def read_selfcheck(data_dir: Path) -> dict[str, str] | None:
    path = data_dir / SELFCHECK_FILE
    return json.loads(path.read_text()) if path.exists() else None


def start_command(
    command: str, redis_url: str, queue: str, tmp_path: Path
) -> subprocess.Popen[str]:
    """`python -m helpdesk <command>` against Redis, with an embedded database in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env |= {
        "HELPDESK_REDIS_URL": redis_url,
        "HELPDESK_TASK_QUEUE": queue,
        "HELPDESK_DATA_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "helpdesk", command],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_selfcheck(
    data_dir: Path, token: str, processes: list[subprocess.Popen[str]], timeout: float = 30
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = read_selfcheck(data_dir)
        if report is not None and report["token"] == token:
            return report
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args} exited early:\n{process.communicate()[1]}")
        time.sleep(0.2)
    pytest.fail(f"no self-check with token {token!r} within {timeout}s")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit code and stderr (killed after 20 s)."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"{process.args} ignored SIGTERM:\n{stderr}")
    return process.returncode, stderr


async def test_selfcheck_sent_through_in_memory_broker_runs_and_returns(runtime: Runtime) -> None:
    broker = build_broker(runtime.settings, runtime=runtime)
    await broker.startup()
    try:
        sent = await selfcheck.on(broker).kiq("in-memory")
        result = await sent.wait_result(timeout=10)
    finally:
        await broker.shutdown()

    assert not result.is_err, result.error
    assert result.return_value["token"] == "in-memory"
    assert read_selfcheck(runtime.settings.data_dir) == result.return_value


async def test_embedded_web_process_runs_the_schedule_itself(runtime: Runtime) -> None:
    async with web_broker(runtime.settings, runtime):
        for _ in range(50):
            report = read_selfcheck(runtime.settings.data_dir)
            if report is not None:
                break
            await asyncio.sleep(0.1)

    assert report is not None and report["token"] == "scheduled"


async def test_scheduler_takes_its_schedule_from_task_labels(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET_KEY)
    scheduler = build_scheduler(build_broker(settings))
    [source] = scheduler.sources
    assert isinstance(source, LabelScheduleSource)

    await source.startup()
    schedules = await source.get_schedules()

    assert [(s.task_name, s.interval) for s in schedules if s.schedule_id == "selfcheck"] == [
        ("maintenance.selfcheck", 300)
    ]


def test_worker_without_redis_says_which_variable_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET_KEY)

    assert run_worker(settings) == EX_CONFIG
    assert capsys.readouterr().err.startswith("HELPDESK_REDIS_URL: not set")


async def test_task_sent_through_redis_is_run_by_a_worker_process(
    redis_url: str, task_queue: str, tmp_path: Path
) -> None:
    token = f"redis-{uuid.uuid4().hex[:12]}"
    settings = Settings(redis_url=redis_url, data_dir=tmp_path / "sender", secret_key=SECRET_KEY)
    sender = build_broker(settings, queue_name=task_queue)
    await sender.startup()
    try:
        # Sent before any worker runs: the acknowledged stream keeps it until one does.
        await selfcheck.on(sender).kiq(token)
    finally:
        await sender.shutdown()

    worker = start_command("worker", redis_url, task_queue, tmp_path)
    try:
        report = await asyncio.to_thread(wait_for_selfcheck, tmp_path / "var", token, [worker])
    finally:
        code, stderr = stop(worker)

    assert report["worker"].endswith(f"-{worker.pid}")
    assert code == 0, stderr
    with redis.Redis.from_url(redis_url) as client:
        [group] = client.xinfo_groups(task_queue)
    assert group["name"].decode() == CONSUMER_GROUP
    assert group["pending"] == 0  # acknowledged after it ran


def test_scheduler_process_sends_scheduled_task_to_worker_process(
    redis_url: str, task_queue: str, tmp_path: Path
) -> None:
    scheduler = start_command("scheduler", redis_url, task_queue, tmp_path)
    worker = start_command("worker", redis_url, task_queue, tmp_path)
    try:
        report = wait_for_selfcheck(tmp_path / "var", "scheduled", [scheduler, worker])
    finally:
        worker_exit = stop(worker)
        scheduler_exit = stop(scheduler)

    assert report["token"] == "scheduled"
    assert worker_exit[0] == 0, worker_exit[1]
    assert scheduler_exit[0] == 0, scheduler_exit[1]


SLOW_WORKER = """
    import asyncio, sys
    from pathlib import Path
    from helpdesk.broker import background_task, build_broker, run_worker
    from helpdesk.config import Settings

    @background_task("test.slow_task")
    async def slow_task() -> None:
        Path("started").touch()
        await asyncio.sleep(2)
        Path("finished").touch()

    settings = Settings(redis_url=sys.argv[1], data_dir=Path("var"), secret_key="x" * 32)
    if sys.argv[3] == "send":
        async def send() -> None:
            broker = build_broker(settings, queue_name=sys.argv[2])
            await broker.startup()
            await slow_task.on(broker).kiq()
            await broker.shutdown()
        asyncio.run(send())
    else:
        import os
        os.environ["HELPDESK_TASK_QUEUE"] = sys.argv[2]
        sys.exit(run_worker(settings))
"""


def test_worker_lets_a_running_task_finish_after_sigterm(
    redis_url: str, task_queue: str, tmp_path: Path
) -> None:
    script = tmp_path / "slow_worker.py"
    script.write_text(textwrap.dedent(SLOW_WORKER))
    command = [sys.executable, str(script), redis_url, task_queue]
    subprocess.run([*command, "send"], cwd=tmp_path, check=True, timeout=30)
    worker = subprocess.Popen([*command, "work"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    code, stderr = stop(worker)

    assert (tmp_path / "finished").exists(), stderr
    assert code == 0, stderr
    with redis.Redis.from_url(redis_url) as client:
        assert client.xpending(task_queue, CONSUMER_GROUP)["pending"] == 0


def test_worker_and_scheduler_started_while_redis_is_down_wait_for_it(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    private_redis.stop()
    queue = f"helpdesk-test:{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")} | {
        "HELPDESK_REDIS_URL": private_redis.url,
        "HELPDESK_TASK_QUEUE": queue,
        "HELPDESK_DATA_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("scheduler", "worker")}
    processes = [
        subprocess.Popen([sys.executable, "-m", "helpdesk", name], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=log.open("wb"), text=True)
        for name, log in logs.items()
    ]
    try:
        # Both say why they wait, and keep waiting (however slowly this machine starts them).
        deadline = time.monotonic() + 60
        waiting = {"scheduler": "lost Redis", "worker": "cannot reach Redis"}
        while not all(waiting[name] in log.read_text() for name, log in logs.items()):
            assert time.monotonic() < deadline, [log.read_text() for log in logs.values()]
            assert all(process.poll() is None for process in processes)
            time.sleep(0.2)
        private_redis.start()
        report = wait_for_selfcheck(tmp_path / "var", "scheduled", processes, 120)
    finally:
        exits = [stop(process) for process in processes]

    assert report["token"] == "scheduled"
    assert [code for code, _ in exits] == [0, 0], [log.read_text() for log in logs.values()]
