"""Liveness and readiness probes.

`/healthz` says the process is up. `/readyz` says it can do its work: the database
answers, Redis answers (when configured: tasks and live updates go through it), and the
data directory takes a write (attachments, raw mail, outgoing mail). Any failure is a
503 naming the part, so a load balancer stops sending traffic and an operator sees why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

from helpdesk.bootstrap import Runtime
from helpdesk.deps import provide_runtime

CHECK_SECONDS = 3.0


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, Any]]:
    """Database, Redis and storage each answer; 503 with the failing parts otherwise."""
    runtime = provide_runtime(state)
    checks = {"database": check_database, "storage": check_storage}
    if runtime.settings.redis_url:
        checks["redis"] = check_redis
    results = await asyncio.gather(*(_timed(check(runtime)) for check in checks.values()))
    report: dict[str, Any] = dict(zip(checks, results, strict=True))
    ready = all(result == "ok" for result in results)
    report["status"] = "ok" if ready else "unavailable"
    return Response(report, status_code=200 if ready else 503)


async def _timed(check: Any) -> str:
    try:
        await asyncio.wait_for(check, CHECK_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return type(exc).__name__
    return "ok"


async def check_database(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis(runtime: Runtime) -> None:
    from redis import asyncio as redis_asyncio

    assert runtime.settings.redis_url is not None
    client = redis_asyncio.Redis.from_url(runtime.settings.redis_url, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def check_storage(runtime: Runtime) -> None:
    await asyncio.to_thread(_write_probe, runtime)


def _write_probe(runtime: Runtime) -> None:
    directory = runtime.settings.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".ready-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"ok")
            os.fsync(handle.fileno())
    finally:
        probe.unlink(missing_ok=True)
