"""Widget live delivery and message intake under 1,000 open Server-Sent Event streams.

The helpdesk runs as one uvicorn process (the app exactly as `helpdesk serve` builds it,
rate limits raised because all clients come from one address); this process plays 1,000
learners and the operators:

1. starts N conversations (POST /api/v1/widget/conversations),
2. opens one SSE stream per conversation (raw asyncio sockets, so the client stays light)
   and keeps them all open,
3. operators reply (POST /api/v1/tickets/{n}/replies) to random conversations, paced;
   latency = from sending the reply request to the event arriving on that learner's
   stream (the reply's commit, the pub/sub nudge, the stream's re-read and the write),
4. learners post messages as fast as C concurrent clients can (POST …/messages, plain
   kept-alive sockets) while the streams stay open; each post also nudges its own stream.
   Throughput, latency percentiles, and the CPU per post of the server and of this client.

    .venv/bin/python bench/widget.py                         # SQLite, 1,000 streams
    .venv/bin/python bench/widget.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
    .venv/bin/python bench/widget.py --redis redis://127.0.0.1:6379/14   # pub/sub via Redis

Client and server share the machine's cores, so the figures are a lower bound for a
server with the machine to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_db import drop_postgres, fresh_postgres  # noqa: E402  (bench/ is on sys.path)

from tests.test_serve import free_port  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"


def serve(database_url: str, data_dir: str, redis_url: str | None, port: int) -> None:
    """One server process with generous rate limits; several share the port (SO_REUSEPORT)."""
    import logging
    import socket

    import uvicorn

    from helpdesk.app import create_app
    from helpdesk.config import Settings

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        database_url=database_url,
        data_dir=Path(data_dir),
        redis_url=redis_url,
        secret_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
        widget_posts_per_minute=1_000_000,
        widget_ip_posts_per_minute=1_000_000,
        widget_new_conversations_per_hour=1_000_000,
        acknowledge_new_tickets=False,
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=60,
    )
    uvicorn.Server(config).run(sockets=[listener])


def migrate(database_url: str) -> None:
    from helpdesk.migrate import create_sqlite_directory, upgrade_database

    create_sqlite_directory(database_url)
    asyncio.run(upgrade_database(database_url))


async def make_operator_token(database_url: str, data_dir: str) -> str:
    from helpdesk.bootstrap import build_runtime
    from helpdesk.config import Settings
    from tests.factories import add_operator

    runtime = build_runtime(
        Settings(database_url=database_url, data_dir=Path(data_dir), secret_key=SECRET)
    )
    try:
        return await add_operator(runtime, "bench@kurs.example", "Bench Agent")
    finally:
        await runtime.close()


class Stream:
    """One learner's open event stream, read with plain asyncio sockets."""

    def __init__(self, conversation: str, token: str, ticket: int) -> None:
        self.conversation, self.token, self.ticket = conversation, token, ticket
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, arrivals: dict[str, float]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer = writer
        writer.write(
            (
                f"GET /api/v1/widget/conversations/{self.conversation}/events HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {self.token}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # response headers
        while True:
            line = await reader.readline()
            if not line:
                return
            # Chunked framing lines (sizes) are skipped; data lines carry the JSON. Only
            # operator replies are timed, so only they are decoded.
            start = line.find(b"data: {")
            if start < 0:
                continue
            self.ready.set()
            if b'"reply-' in line:
                message = json.loads(line[start + 6 :])
                marker = message["text"]
                if marker.startswith("reply-"):
                    arrivals.setdefault(marker, time.perf_counter())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


class Poster:
    """One learner client posting over a kept-alive HTTP/1.1 connection (plain asyncio).

    httpx would cost the client more CPU per request than the server's own work, and the
    client shares the cores with the server.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: dict[str, str]) -> int:
        """POST a JSON body; the response's status (the body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode()
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def start_conversations(http: httpx.AsyncClient, count: int) -> list[Stream]:
    gate = asyncio.Semaphore(20)

    async def one(n: int) -> Stream:
        async with gate:
            response = await http.post(
                "/api/v1/widget/conversations",
                json={
                    "name": f"Learner {n}",
                    "email": f"learner{n}@example.no",
                    "message": f"hello {n}",
                },
            )
            response.raise_for_status()
            body = response.json()
            return Stream(body["conversation"]["id"], body["token"], body["conversation"]["ticket"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def measure_replies(
    http: httpx.AsyncClient,
    operator: str,
    streams: list[Stream],
    arrivals: dict[str, float],
    replies: int,
    rate: float,
) -> dict[str, Any]:
    sent: dict[str, tuple[float, float]] = {}
    headers = {"Authorization": f"Bearer {operator}"}

    async def one(k: int, stream: Stream) -> None:
        marker = f"reply-{k}"
        started = time.perf_counter()
        response = await http.post(
            f"/api/v1/tickets/{stream.ticket}/replies", json={"body": marker}, headers=headers
        )
        response.raise_for_status()
        sent[marker] = (started, time.perf_counter())

    tasks = []
    for k in range(replies):
        tasks.append(asyncio.create_task(one(k, random.choice(streams))))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 10
    while len(arrivals) < replies and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    from_request = [(arrivals[m] - s) * 1000 for m, (s, _) in sent.items() if m in arrivals]
    from_commit = [
        max(0.0, (arrivals[m] - c) * 1000) for m, (_, c) in sent.items() if m in arrivals
    ]
    return {
        "replies": replies,
        "arrived": len(from_request),
        "p50": percentile(from_request, 50),
        "p95": percentile(from_request, 95),
        "p99": percentile(from_request, 99),
        "max": max(from_request),
        "after_response_p99": percentile(from_commit, 99),
    }


async def measure_posts(
    port: int, streams: list[Stream], posts: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    queue = list(range(posts))

    async def worker() -> None:
        poster = Poster(port)
        try:
            while queue:
                n = queue.pop()
                stream = random.choice(streams)
                started = time.perf_counter()
                status = await poster.post(
                    f"/api/v1/widget/conversations/{stream.conversation}/messages",
                    stream.token,
                    {"body": f"post {n}"},
                )
                if status != 201:
                    raise RuntimeError(f"post answered {status}")
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            poster.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "posts": posts,
        "concurrency": concurrency,
        "rate": posts / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


async def run(args: argparse.Namespace, database_url: str, data_dir: str) -> dict[str, Any]:
    port = free_port()
    await asyncio.to_thread(migrate, database_url)
    context = multiprocessing.get_context("spawn")
    servers = [
        context.Process(target=serve, args=(database_url, data_dir, args.redis, port), daemon=True)
        for _ in range(args.workers)
    ]
    for server in servers:
        server.start()
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.concurrency + 20)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        for _ in range(300):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        progress("server ready")
        operator = await make_operator_token(database_url, data_dir)
        began = time.perf_counter()
        streams = await start_conversations(http, args.streams)
        created = time.perf_counter() - began
        progress(f"{len(streams)} conversations in {created:.1f} s")
        arrivals: dict[str, float] = {}
        for stream in streams:
            stream.task = asyncio.create_task(stream.run(port, arrivals))
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams)), 120)
        load = os.getloadavg()[0]
        progress(f"{len(streams)} streams open; load {load:.1f}")
        pids = [server.pid for server in servers if server.pid is not None]
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        delivery = await measure_replies(http, operator, streams, arrivals, args.replies, args.rate)
        cpu_replies = sum(cpu_seconds(pid) for pid in pids)
        progress(f"replies: {delivery}")
        client_before = time.process_time()
        intake = await measure_posts(port, streams, args.posts, args.concurrency)
        cpu_posts = sum(cpu_seconds(pid) for pid in pids)
        intake["client_cpu_ms"] = (time.process_time() - client_before) * 1000 / args.posts
        progress(f"posts: {intake}")
        delivery["server_cpu_ms"] = (cpu_replies - cpu_before) * 1000 / args.replies
        intake["server_cpu_ms"] = (cpu_posts - cpu_replies) * 1000 / args.posts
        still_open = sum(1 for s in streams if s.task is not None and not s.task.done())
        for stream in streams:
            stream.close()
    for server in servers:
        server.terminate()
    for server in servers:
        server.join(10)
        if server.is_alive():  # still draining the streams' connections
            server.kill()
            server.join(5)
    return {
        "created_per_s": args.streams / created,
        "open_streams": still_open,
        "load": load,
        "delivery": delivery,
        "intake": intake,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="PostgreSQL server URL (a scratch database is made)")
    parser.add_argument("--redis", help="Redis URL for the live pub/sub")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--replies", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="operator replies per second")
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes (needs --redis)")
    args = parser.parse_args()
    if args.workers > 1 and not (args.redis and args.postgres):
        parser.error("--workers > 1 needs --postgres and --redis (events cross processes)")
    with tempfile.TemporaryDirectory() as data_dir:
        if args.postgres:
            name, url = asyncio.run(fresh_postgres(args.postgres, "bench_widget"))
        else:
            name, url = "", f"sqlite+aiosqlite:///{data_dir}/helpdesk.db"
        try:
            result = asyncio.run(run(args, url, data_dir))
        finally:
            if args.postgres:
                asyncio.run(drop_postgres(args.postgres, name))
    database = "PostgreSQL" if args.postgres else "SQLite"
    pubsub = ("Redis" if args.redis else "in-process") + (
        f", {args.workers} workers" if args.workers > 1 else ""
    )
    d, i = result["delivery"], result["intake"]
    print(
        f"{database}, pub/sub {pubsub}, CPython {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {result['load']:.1f}; "
        f"{args.streams} streams opened ({result['created_per_s']:.0f} conversations/s), "
        f"{result['open_streams']} still open at the end"
    )
    print(
        f"| {database} | {pubsub} | {args.streams} | {d['arrived']}/{d['replies']} | "
        f"{d['p50']:.0f} | {d['p95']:.0f} | {d['p99']:.0f} | {d['max']:.0f} | "
        f"{i['rate']:.0f} | {i['p50']:.0f} | {i['p99']:.0f} | "
        f"{d['server_cpu_ms']:.1f} | {i['server_cpu_ms']:.1f} | {i['client_cpu_ms']:.2f} | "
        f"{result['load']:.1f} |"
    )


if __name__ == "__main__":
    main()
