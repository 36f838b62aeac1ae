"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

from helpdesk.deps import provide_runtime


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, Any]]:
    """The database answers; 503 otherwise so a load balancer stops sending traffic."""
    try:
        async with provide_runtime(state).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return Response(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    return Response({"status": "ok", "database": "ok"})
