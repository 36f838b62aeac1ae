"""Reading a Server-Sent Events response while it streams, in the test's event loop.

httpx's ASGI transport returns a response only when the application has finished, which
an event stream never does; `open_stream` calls the ASGI application itself, hands each
event over as it is sent, and disconnects like a closed browser tab at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str | None
    id: str | None
    comment: str | None

    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


@dataclass
class EventStream:
    status: int
    headers: dict[str, str]
    _chunks: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    _buffer: bytes = b""
    ended: bool = False

    async def next(self, within: float = 5.0) -> SseEvent:
        """The next event or comment; fails the test after `within` seconds."""
        while b"\r\n\r\n" not in self._buffer:
            chunk = await asyncio.wait_for(self._chunks.get(), within)
            if chunk == b"":
                self.ended = True
                raise EOFError("the stream ended")
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return _parse(block.decode())

    async def next_named(self, name: str, within: float = 5.0) -> SseEvent:
        """The next event called `name`, skipping others (presence, heartbeats …)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self.next(max(0.01, remaining))
            if event.event == name:
                return event


def _parse(block: str) -> SseEvent:
    values: dict[str, list[str]] = {}
    for line in block.split("\r\n"):
        if line.startswith(":"):
            values.setdefault("comment", []).append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        values.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)

    def one(name: str) -> str | None:
        return "\n".join(values[name]) if name in values else None

    return SseEvent(one("event"), one("data"), one("id"), one("comment"))


def cookie_header(client: httpx.AsyncClient) -> dict[str, str]:
    """The browser's cookies of `client` as a request header."""
    return {"cookie": "; ".join(f"{name}={value}" for name, value in client.cookies.items())}


@contextlib.asynccontextmanager
async def open_stream(
    app: Any, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    """GET `path` from the ASGI `app`, yield the stream; leaving the block disconnects."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        + [(b"host", b"testserver"), (b"accept", b"text/event-stream")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    started: asyncio.Future[EventStream] = asyncio.get_running_loop().create_future()
    disconnected = asyncio.Event()
    requested = False
    stream: EventStream | None = None

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal stream
        if message["type"] == "http.response.start":
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            stream = EventStream(message["status"], headers)
            started.set_result(stream)
        elif message["type"] == "http.response.body":
            assert stream is not None
            if message.get("body"):
                stream._chunks.put_nowait(message["body"])
            if not message.get("more_body", False):
                stream._chunks.put_nowait(b"")

    task = asyncio.create_task(app(scope, receive, send))
    try:
        yield await asyncio.wait_for(started, 10)
    finally:
        disconnected.set()
        await asyncio.wait_for(task, 10)
