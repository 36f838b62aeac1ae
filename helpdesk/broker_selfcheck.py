"""The broker self-check: a task that proves the whole background chain works.

`maintenance.selfcheck` is sent by tests (and later by health checks) with a fresh token;
the worker that runs it opens its `Runtime`, asks the database `SELECT 1`, and records the
token in `<data dir>/worker-selfcheck.json`. The scheduler also sends it every five
minutes, so the file's `checked_at` shows an operator that scheduler → broker → worker
is alive. It changes no support data.
"""

from __future__ import annotations

import json
import os
import re
import socket

from sqlalchemy import text
from taskiq import TaskiqDepends

from helpdesk.bootstrap import Runtime
from helpdesk.broker import background_task, provide_runtime

SELFCHECK_FILE = "worker-selfcheck.json"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


@background_task("maintenance.selfcheck", schedule=[{"interval": 300, "schedule_id": "selfcheck"}])
async def selfcheck(
    token: str = "scheduled",
    runtime: Runtime = TaskiqDepends(provide_runtime),
) -> dict[str, str]:
    """Check the worker's database connection and record `token`; returns what it wrote."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("token must be 1-64 letters, digits, '-' or '_'")
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    report = {
        "token": token,
        "worker": f"{socket.gethostname()}-{os.getpid()}",
        "checked_at": runtime.clock.now().isoformat(),
    }
    _write_atomically(runtime, json.dumps(report))
    return report


def _write_atomically(runtime: Runtime, content: str) -> None:
    # Several workers may share the data volume: write aside, then rename over the file,
    # so a reader never sees half a report.
    directory = runtime.settings.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{SELFCHECK_FILE}.{os.getpid()}"
    partial.write_text(content)
    partial.replace(directory / SELFCHECK_FILE)
