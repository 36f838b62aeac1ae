"""A web process keeps its start-up objects out of the garbage collector's full passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import gc
from helpdesk.asgi import app_from_environment
before = gc.get_freeze_count()
app_from_environment()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_web_entry_point_freezes_what_start_up_built(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'helpdesk.db'}"

    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )

    assert out.returncode == 0, out.stderr
    before, frozen, still_tracked = map(int, out.stdout.split())
    # Modules, mappers, routes: far more than is left for each full collection to walk.
    assert before == 0 and frozen > 100_000 and frozen > 5 * still_tracked
