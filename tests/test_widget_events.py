"""Server-Sent Events of a widget conversation, over a real HTTP server in the test's loop.

Operator replies arrive the moment they commit; a reconnecting client resumes after its
Last-Event-ID; internal notes never travel; idle streams carry heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime, build_runtime
from tests.conftest import reset_database
from tests.factories import add_operator, bearer
from tests.test_serve import free_port
from tests.widget_factory import (
    CONVERSATIONS,
    auth,
    no_delivery_kicks,
    start,
    ticket_of,
    widget_settings,
)


@pytest.fixture
def settings(settings):
    return widget_settings(settings)


@pytest.fixture(autouse=True)
def quiet_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    no_delivery_kicks(monkeypatch)


pytest_plugins = ["tests.peers.redis"]


@pytest.fixture
async def http(runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the application served by uvicorn on a free port."""
    async with serve(runtime) as client:
        yield client


@contextlib.asynccontextmanager
async def serve(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime.settings, runtime),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    await serving


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    return bearer(await add_operator(runtime, "ola@kurs.example", "Ola Agent"))


class EventReader:
    """Reads `text/event-stream` lines into events: {"id", "event", "data"} or comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.raw: list[str] = []

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        async for line in self.lines:
            self.raw.append(line)
            if line == "":
                if event:
                    return event
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                event["comment"] = value
            elif field == "data":
                event["data"] = json.loads(value)
            elif field in ("id", "event", "retry"):
                event[field] = value
        raise EOFError


async def open_stream(
    client: httpx.AsyncClient, conversation: str, token: str, last_id: int | None = None
):
    headers = {**auth(token), "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    return client.stream("GET", f"{CONVERSATIONS}/{conversation}/events", headers=headers)


async def next_message(reader: EventReader) -> dict[str, Any]:
    while True:
        event = await reader.next()
        if event.get("event") == "message":
            return event


async def test_an_operator_reply_arrives_live_and_a_reconnect_resumes(runtime, http, agent) -> None:
    conversation, token = await start(http)
    number = (await ticket_of(runtime, conversation)).number

    async with await open_stream(http, conversation, token) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        assert (await reader.next())["retry"] == "2000"
        first = await next_message(reader)
        assert first["data"]["text"] == "Hei, hvor er kursbeviset?"
        assert first["id"] == str(first["data"]["id"])

        reply = await http.post(
            f"/api/v1/tickets/{number}/replies",
            json={"body": "Kursbeviset er sendt."},
            headers=agent,
        )
        assert reply.status_code == 201
        live = await next_message(reader)

    assert live["data"]["text"] == "Kursbeviset er sendt."
    assert live["data"]["author"]["kind"] == "operator"
    assert live["id"] == str(reply.json()["id"])

    # The browser reconnects with the last id it saw: only what came after is sent.
    async with await open_stream(http, conversation, token, last_id=int(first["id"])) as response:
        resumed = await next_message(EventReader(response))
    assert resumed["id"] == live["id"]

    async with await open_stream(http, conversation, token, last_id=int(live["id"])) as response:
        reader = EventReader(response)
        posted = await http.post(
            f"{CONVERSATIONS}/{conversation}/messages", json={"body": "Takk!"}, headers=auth(token)
        )
        after = await next_message(reader)
    assert after["data"]["id"] == posted.json()["id"]


async def test_internal_notes_never_reach_the_stream(runtime, http, agent) -> None:
    conversation, token = await start(http)
    number = (await ticket_of(runtime, conversation)).number

    async with await open_stream(http, conversation, token) as response:
        reader = EventReader(response)
        await next_message(reader)
        note = await http.post(
            f"/api/v1/tickets/{number}/notes", json={"body": "Intern: mistenkelig"}, headers=agent
        )
        assert note.status_code == 201
        await http.post(f"/api/v1/tickets/{number}/replies", json={"body": "Svar"}, headers=agent)
        event = await next_message(reader)

    assert event["data"]["text"] == "Svar"
    assert all("Intern" not in line for line in reader.raw)


async def test_an_idle_stream_sends_heartbeats(runtime, http, monkeypatch) -> None:
    monkeypatch.setattr("helpdesk.widget.events.HEARTBEAT_SECONDS", 0.2)
    conversation, token = await start(http)

    async with await open_stream(http, conversation, token) as response:
        reader = EventReader(response)
        await next_message(reader)
        beat = await reader.next(within=3)

    assert beat == {"comment": "heartbeat"}


async def test_a_stream_needs_the_conversations_token(runtime, http) -> None:
    conversation, _ = await start(http)
    _, other_token = await start(http, email="per@example.no")

    response = await http.get(f"{CONVERSATIONS}/{conversation}/events", headers=auth(other_token))

    assert response.status_code == 404


async def test_replies_travel_through_redis_between_processes(settings, redis_url, agent) -> None:
    """Two runtimes (as two web processes) share only the database and Redis."""
    shared = msgspec.structs.replace(settings, redis_url=redis_url)
    learner_side, operator_side = build_runtime(shared), build_runtime(shared)
    await reset_database(learner_side)
    try:
        operator = bearer(await add_operator(operator_side, "kim@kurs.example", "Kim Agent"))
        async with serve(learner_side) as widget_http, serve(operator_side) as inbox_http:
            conversation, token = await start(widget_http)
            number = (await ticket_of(learner_side, conversation)).number
            async with await open_stream(widget_http, conversation, token) as response:
                reader = EventReader(response)
                await next_message(reader)
                await inbox_http.post(
                    f"/api/v1/tickets/{number}/replies",
                    json={"body": "Via Redis"},
                    headers=operator,
                )
                event = await next_message(reader)
        assert event["data"]["text"] == "Via Redis"
    finally:
        await learner_side.close()
        await operator_side.close()


async def test_a_stream_ends_when_the_conversation_moves_to_a_follow_up(
    runtime, http, agent
) -> None:
    conversation, token = await start(http)
    number = (await ticket_of(runtime, conversation)).number

    async with await open_stream(http, conversation, token) as response:
        reader = EventReader(response)
        await next_message(reader)
        closed = await http.patch(
            f"/api/v1/tickets/{number}", json={"status": "closed"}, headers=agent
        )
        assert closed.status_code == 200
        posted = await http.post(
            f"{CONVERSATIONS}/{conversation}/messages",
            json={"body": "Hei igjen"},
            headers=auth(token),
        )
        assert posted.status_code == 201
        with pytest.raises(EOFError):
            await next_message(reader)

    async with await open_stream(http, conversation, token) as response:
        first = await next_message(EventReader(response))
    assert first["data"]["text"] == "Hei igjen"
