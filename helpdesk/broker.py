"""Background work on taskiq: the broker, the schedule, `helpdesk worker` and `helpdesk scheduler`.

Two modes (DESIGN §3):

- embedded (no `HELPDESK_REDIS_URL`): an `InMemoryBroker`; a task runs inside the process
  that sends it, and `web_broker()` runs the schedule beside the web server.
- production: a taskiq-redis `RedisStreamBroker`. A message stays in the stream's pending
  list until a worker has finished the task and acknowledged it, so a worker killed
  mid-task does not lose it: another worker claims it after `_CLAIM_IDLE_MS`. Tasks are
  fire-and-forget (their effects are rows and files), so there is no result backend.

Nothing here does I/O at import time; brokers are built by `build_broker(settings)`.

Adding a task — in `helpdesk/<capability>/tasks.py` (found automatically, see
`task_modules()`), a thin wrapper around the capability's service:

    from helpdesk.bootstrap import Runtime
    from helpdesk.broker import background_task, provide_runtime
    from taskiq import TaskiqDepends

    @background_task("retention.expire_threads", schedule=[{"cron": "17 3 * * *"}])
    async def expire_threads(runtime: Runtime = TaskiqDepends(provide_runtime)) -> None:
        ...

Adding a schedule is the one `schedule=[...]` argument: each entry is a taskiq schedule
label (`{"cron": "*/5 * * * *"}`, `{"interval": 300}`, cron in UTC unless `cron_offset` is
given; optional `args`/`kwargs`/`schedule_id`). The scheduler reads them with taskiq's
`LabelScheduleSource`, so the schedule lives in code, next to the task. Sending a task
from elsewhere: `await expire_threads.on(broker).kiq()`.

The Redis stream is `HELPDESK_TASK_QUEUE` (default `helpdesk:tasks`); only deployments or
test runs that share one Redis database need to set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import pkgutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, ParamSpec, TypeVar, cast

from redis.exceptions import RedisError
from taskiq import (
    AsyncBroker,
    AsyncTaskiqDecoratedTask,
    InMemoryBroker,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqScheduler,
    TaskiqState,
)
from taskiq.api import run_scheduler_task
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisStreamBroker

import helpdesk
from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.config import EX_CONFIG, ConfigError, Settings, task_queue_name
from helpdesk.process_memory import freeze_startup_objects
from helpdesk.redaction import configure_logging

log = logging.getLogger("helpdesk.broker")

CONSUMER_GROUP = "helpdesk-workers"
_CLAIM_IDLE_MS = 10 * 60 * 1000  # unacknowledged this long: the worker died, reclaim it
_STREAM_MAXLEN = 100_000  # approximate trim of finished entries; far above any backlog
_SHUTDOWN_GRACE_SECONDS = 30.0  # running tasks may finish this long after SIGTERM

P = ParamSpec("P")
R = TypeVar("R")


class TaskDefinition(Generic[P, R]):
    """A task written once and registered on every broker `build_broker` makes."""

    def __init__(self, name: str, func: Callable[P, Awaitable[R]], labels: dict[str, Any]):
        self.name = name
        self.func = func
        self.labels = labels

    def on(self, broker: AsyncBroker) -> AsyncTaskiqDecoratedTask[P, R]:
        """This task as registered on `broker`, to `.kiq(...)` it."""
        task = broker.find_task(self.name)
        if task is None:
            raise LookupError(f"task {self.name!r} is not registered on this broker")
        return cast(AsyncTaskiqDecoratedTask[P, R], task)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task's function directly (tests, one-off CLI use)."""
        return await self.func(*args, **kwargs)


_DEFINITIONS: dict[str, TaskDefinition[Any, Any]] = {}


def background_task(
    name: str, *, schedule: list[dict[str, Any]] | None = None, **labels: Any
) -> Callable[[Callable[P, Awaitable[R]]], TaskDefinition[P, R]]:
    """Declare a task named `capability.verb_noun`, optionally with taskiq schedule labels."""

    def declare(func: Callable[P, Awaitable[R]]) -> TaskDefinition[P, R]:
        if name in _DEFINITIONS and _DEFINITIONS[name].func is not func:
            raise ValueError(f"task name {name!r} is declared twice")
        task_labels = dict(labels, schedule=schedule) if schedule else dict(labels)
        definition = TaskDefinition(name, func, task_labels)
        _DEFINITIONS[name] = definition
        return definition

    return declare


def provide_runtime(state: TaskiqState = TaskiqDepends()) -> Runtime:
    """taskiq dependency: the worker's `Runtime` (settings, sessions, clock)."""
    runtime: Runtime = state.runtime
    return runtime


def task_modules() -> list[str]:
    """The broker self-check plus every `helpdesk.<capability>.tasks` module that exists."""
    found = ["helpdesk.broker_selfcheck"]
    for module in sorted(pkgutil.iter_modules(helpdesk.__path__), key=lambda m: m.name):
        name = f"helpdesk.{module.name}.tasks"
        if module.ispkg and importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


def build_broker(
    settings: Settings, *, runtime: Runtime | None = None, queue_name: str | None = None
) -> AsyncBroker:
    """The broker for these settings with every task registered; no connection is opened.

    A `runtime` given here is used by tasks and left open; otherwise a worker builds its
    own on startup and closes it on shutdown.
    """
    broker: AsyncBroker
    if settings.redis_url is None:
        broker = InMemoryBroker()
    else:
        broker = RedisStreamBroker(
            settings.redis_url,
            queue_name=_queue_name(queue_name),
            consumer_group_name=CONSUMER_GROUP,
            consumer_name=f"{socket.gethostname()}-{os.getpid()}",
            # "0": a group created after tasks were sent still reads them ("$" would not).
            consumer_id="0",
            idle_timeout=_CLAIM_IDLE_MS,
            maxlen=_STREAM_MAXLEN,
            unacknowledged_lock_timeout=30,
        )
    for module in task_modules():
        importlib.import_module(module)
    for definition in _DEFINITIONS.values():
        broker.register_task(definition.func, task_name=definition.name, **definition.labels)
    if runtime is not None:
        broker.state.runtime = runtime
    else:
        _open_runtime_on_worker_startup(broker, settings)
    return broker


def _queue_name(explicit: str | None) -> str:
    return explicit or task_queue_name()


def _open_runtime_on_worker_startup(broker: AsyncBroker, settings: Settings) -> None:
    async def open_runtime(state: TaskiqState) -> None:
        state.runtime = build_runtime(settings)

    async def close_runtime(state: TaskiqState) -> None:
        runtime = state.data.pop("runtime", None)
        if runtime is not None:
            await runtime.close()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, open_runtime)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, close_runtime)


def build_scheduler(broker: AsyncBroker) -> TaskiqScheduler:
    """The scheduler over the `schedule=[...]` labels of the broker's tasks (one per site)."""
    return TaskiqScheduler(broker=broker, sources=[LabelScheduleSource(broker)])


@contextlib.asynccontextmanager
async def web_broker(settings: Settings, runtime: Runtime) -> AsyncIterator[AsyncBroker]:
    """The broker of a web process; in the embedded mode it also runs the schedule here."""
    broker = build_broker(settings, runtime=runtime)
    await broker.startup()
    schedule: asyncio.Task[None] | None = None
    if isinstance(broker, InMemoryBroker):
        schedule = asyncio.create_task(run_scheduler_task(build_scheduler(broker)))
    try:
        yield broker
    finally:
        if schedule is not None:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
        await broker.shutdown()


def run_worker(settings: Settings) -> int:
    """`helpdesk worker`: execute tasks from Redis until SIGTERM/SIGINT; exit code."""
    broker = _production_broker(settings, "worker")
    if broker is None:
        return EX_CONFIG
    configure_logging(settings.log_format)
    return asyncio.run(_work(broker))


def run_scheduler(settings: Settings) -> int:
    """`helpdesk scheduler`: send scheduled tasks to Redis until SIGTERM/SIGINT; exit code."""
    broker = _production_broker(settings, "scheduler")
    if broker is None:
        return EX_CONFIG
    configure_logging(settings.log_format)
    return asyncio.run(_schedule(build_scheduler(broker)))


def _production_broker(settings: Settings, command: str) -> AsyncBroker | None:
    if settings.redis_url is None:
        print(
            f"HELPDESK_REDIS_URL: not set; `helpdesk {command}` needs Redis "
            "(in the embedded mode `helpdesk serve` runs tasks and the schedule itself)",
            file=sys.stderr,
        )
        return None
    try:
        return build_broker(settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None


async def _work(broker: AsyncBroker) -> int:
    # taskiq's own worker loop, minus its process manager: Receiver.listen(stop) stops
    # fetching on the first signal and lets running tasks finish (run_receiver_task can
    # only be cancelled, which would interrupt them); a second signal cancels at once.
    stop = _stop_on_signals(asyncio.current_task())
    broker.is_worker_process = True
    if not await _until_reachable(broker.startup, stop, "worker"):
        return 0
    log.info("worker started; tasks: %s", ", ".join(sorted(broker.get_all_tasks())))
    freeze_startup_objects()
    try:
        with ThreadPoolExecutor(max_workers=4) as executor:
            while not stop.is_set():
                receiver = Receiver(
                    broker,
                    executor=executor,
                    run_startup=False,
                    max_async_tasks=20,
                    wait_tasks_timeout=_SHUTDOWN_GRACE_SECONDS,
                )
                try:
                    await receiver.listen(stop)
                except Exception:
                    log.exception("lost the broker connection; listening again in 2s")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 2)
    except asyncio.CancelledError:
        _uncancel()
        log.warning("second signal: stopped without waiting for running tasks")
    finally:
        await _shutdown(broker.shutdown())
    log.info("worker stopped")
    return 0


async def _until_reachable(
    connect: Callable[[], Awaitable[Any]], stop: asyncio.Event, command: str
) -> bool:
    """Connect, waiting out a Redis that is down or restarting (back-off up to 30 s)
    instead of exiting; False when told to stop first."""
    delay = 1.0
    while not stop.is_set():
        try:
            await connect()
            return True
        except (OSError, RedisError) as exc:
            log.warning("%s: cannot reach Redis (%s); trying again in %.0f s", command, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
    return False


async def _schedule(scheduler: TaskiqScheduler) -> int:
    stop = _stop_on_signals(asyncio.current_task())
    scheduler.broker.is_scheduler_process = True
    failure: BaseException | None = None
    while not stop.is_set():
        # run_scheduler_task ends with an error when Redis goes away; start it again.
        loop = asyncio.create_task(run_scheduler_task(scheduler, run_startup=True))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({loop, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        loop.cancel()
        result = await asyncio.gather(loop, return_exceptions=True)
        failure = result[0] if isinstance(result[0], BaseException) else None
        if isinstance(failure, asyncio.CancelledError) or stop.is_set():
            failure = None
            break
        if not isinstance(failure, OSError | RedisError):
            break
        log.warning("scheduler: lost Redis (%s); starting again in 2 s", failure)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2)
        failure = None
    await _shutdown(scheduler.shutdown())
    for source in scheduler.sources:
        await _shutdown(source.shutdown())
    if failure is not None:
        print(f"helpdesk scheduler: {failure}", file=sys.stderr)
        return 1
    log.info("scheduler stopped")
    return 0


def _stop_on_signals(main: asyncio.Task[Any] | None) -> asyncio.Event:
    """First SIGTERM/SIGINT sets the event (graceful stop); a second cancels `main`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set() and main is not None:
            main.cancel()
            return
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


def _uncancel() -> None:
    """Our own cancel (second signal) is handled; let the cleanup below await normally."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _shutdown(closing: Awaitable[Any]) -> None:
    """Await a shutdown step, but never hang or crash the exit on a dead connection."""
    try:
        await asyncio.wait_for(closing, timeout=10)
    except Exception:  # noqa: BLE001 - shutting down anyway; the log says why
        log.warning("shutdown step failed", exc_info=True)
