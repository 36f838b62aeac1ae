"""The production set of processes, started natively with compose.yaml's command lines:
`helpdesk serve`, `worker`, `scheduler`, `fetch-mail`, against a real PostgreSQL and Redis.

Used by the multi-process and failure tests. Every process gets the same environment
(one database, one Redis, one data directory, one task stream); each is a real
`python -m helpdesk …` child that the test may stop, kill or restart.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose.yaml"
SECRET_KEY = "production-set-secret-0123456789abcdef"
PLATFORM_KEY = "production-set-platform-key-0123456789"


def compose_command(service: str, **replacements: str) -> list[str]:
    """The `command` of a compose.yaml service, with option values replaced
    (`port="8123"` turns `--port 8000` into `--port 8123`)."""
    command = [str(part) for part in yaml.safe_load(COMPOSE_FILE.read_text())["services"][
        service]["command"]]
    for option, value in replacements.items():
        command[command.index(f"--{option}") + 1] = value
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ProcessSet:
    database_url: str
    redis_url: str
    directory: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    queue: str = field(default_factory=lambda: f"helpdesk-set:{uuid.uuid4().hex[:12]}")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env | {
            "HELPDESK_DATABASE_URL": self.database_url,
            "HELPDESK_REDIS_URL": self.redis_url,
            "HELPDESK_SECRET_KEY": SECRET_KEY,
            "HELPDESK_PLATFORM_API_KEY": PLATFORM_KEY,
            "HELPDESK_DATA_DIR": str(self.directory / "data"),
            "HELPDESK_SUPPORT_ADDRESS": "support@kurs.example",
            "HELPDESK_TASK_QUEUE": self.queue,
            "HELPDESK_LOG_FORMAT": "json",
        } | self.extra_env

    def run(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """A one-shot command (`migrate`, `ingest`, `operator add` …) to completion."""
        result = subprocess.run(
            [sys.executable, "-m", "helpdesk", *args],
            env=self.env(), input=stdin, capture_output=True, timeout=120, cwd=self.directory,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helpdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')[-2000:]}")
        return result

    def start_service(self, service: str, name: str | None = None) -> subprocess.Popen[bytes]:
        """A compose.yaml service (`worker`, `scheduler`, `mail-fetcher`) by its command."""
        return self.start(name or service, *compose_command(service))

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """A long-running process, its output kept in `<directory>/<name>.log`."""
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - lives with the child
        process = subprocess.Popen(
            [sys.executable, "-m", "helpdesk", *args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
        )
        self.processes[name] = process
        return process

    def start_web(self, name: str, workers: int | None = None) -> str:
        """compose.yaml's `web` command on a free loopback port (its number of workers
        unless given); returns the base URL once /healthz answers."""
        port = free_port()
        self.ports[name] = port
        replacements = {"host": "127.0.0.1", "port": str(port)}
        if workers is not None:
            replacements["workers"] = str(workers)
        self.start(name, *compose_command("web", **replacements))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            if self.processes[name].poll() is not None:
                raise AssertionError(f"{name} exited: {self.log(name)[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"{name} did not start: {self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def operator_token(self, email: str = "agent@kurs.example", role: str = "agent") -> str:
        """An operator created with the CLI, and an API token for them."""
        self.run("operator", "add", email, "--name", "Ola Agent", "--role", role,
                 "--password-stdin", stdin=b"correct horse battery staple\n")
        return self.run("token", "create", email).stdout.decode().strip()
