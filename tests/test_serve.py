"""`helpdesk serve` on a fresh embedded installation: migrates, serves pages and the API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_migrates_and_answers_on_a_fresh_data_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert ready.status_code == 200
        assert "Helpdesk is running" in httpx.get(f"{base}/").text
        assert httpx.get(f"{base}/api/v1/tickets").status_code == 401
        assert httpx.get(f"{base}/schema/openapi.json").status_code == 200
        httpx.get(f"{base}/api/v1/suppressions/kari.nordmann@example.no?q=ola@example.no")
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=20)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught (exit -15).
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    # The request was logged, with the address in its path redacted and no query string.
    assert "/api/v1/suppressions/k***@example.no 401" in output
    assert "kari.nordmann@example.no" not in output and "ola@example.no" not in output


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "needs PostgreSQL" in result.stderr
