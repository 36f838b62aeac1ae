"""PostgreSQL and Redis instances of a test's own, on their own ports, that it may stop
and restart (../shared/RECIPES.md) — the machine's shared services are never touched.

Register with `pytest_plugins = ["tests.peers.private_services"]`. PostgreSQL is a fresh
`initdb` cluster run as the `postgres` user (trust auth, socket in the cluster
directory); Redis keeps an append-only file fsynced on every write, as compose.yaml's
Redis does, so a restart loses nothing the broker promised. Without the binaries the
tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _missing(what: str, hint: str) -> None:
    message = f"{what} is not available ({hint})"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test: `stop()`, `start()`, `restart()` at will."""

    directory: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin_dir / "pg_ctl"),
             "-D", str(self.directory / "data"), "-l", str(self.directory / "server.log"),
             "-w", "-t", "60", *args],
            check=True, capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._pg_ctl("-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh cluster (about two seconds to create), removed afterwards."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb or shutil.which("runuser") is None:
        _missing("PostgreSQL's initdb", "apt-get install -y postgresql")
    bin_dir = Path(initdb[-1]).parent
    directory = Path(tempfile.mkdtemp(prefix="helpdesk-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(directory / "data"),
         "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True, capture_output=True,
    )
    server = PrivatePostgres(directory=directory, port=free_port(), bin_dir=bin_dir)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A Redis server of this test with a durable append-only file; restartable."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _missing("redis-server", "apt-get install -y redis-server")
    directory = Path(tempfile.mkdtemp(prefix="helpdesk-redis-"))
    server = PrivateRedis(directory=directory, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
