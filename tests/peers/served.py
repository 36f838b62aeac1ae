"""`helpdesk serve` in a subprocess for the browser tests: started on a free port, waited
for until /readyz answers, stopped with SIGTERM — and its output must hold no traceback."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    """The base URL of a running `helpdesk serve` with this environment."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/readyz", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
        assert "Traceback" not in output, output
