"""Who else is on a ticket: presence and typing across two web processes through Redis.

Each "web process" is its own application with its own Redis pub/sub connection on one
database, as with `helpdesk serve --workers 2`; nothing about presence is kept anywhere
but in the events on the ticket's channel.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy import func, select

from helpdesk.adapters.clock import SystemClock
from helpdesk.adapters.pubsub import RedisPubSub
from helpdesk.adapters.storage import LocalFileStorage
from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime
from helpdesk.db import create_engine, create_session_factory, transaction
from helpdesk.inbox import presence
from helpdesk.inbox.presence import PRESENCE_TTL, TYPING_TTL, Roster
from helpdesk.live import session_info
from helpdesk.models import Message, WidgetConversation
from helpdesk.widget.events import conversation_events
from tests.factories import add_ticket
from tests.inbox_helpers import add_inbox_operator, csrf_from, sign_in
from tests.sse_stream import EventStream, cookie_header, open_stream

pytest_plugins = ["tests.peers.redis"]


def test_a_tab_not_heard_from_disappears_after_the_ttl() -> None:
    roster = Roster(own_tab="mine-000001")
    roster.apply(_seen("tab-ola-0001", 2, "Ola Agent", "hello"), now=0.0)
    roster.apply(_seen("tab-per-0001", 3, "Per Agent", "typing"), now=1.0)

    assert [p["name"] for p in roster.others(1, now=1.0)] == ["Per Agent", "Ola Agent"]
    assert roster.others(1, now=1.0)[0]["typing"] == "reply"
    assert roster.others(1, now=1.0 + TYPING_TTL)[0]["typing"] is None
    roster.expire(now=PRESENCE_TTL + 0.5)
    assert [p["name"] for p in roster.others(1, now=PRESENCE_TTL + 0.5)] == ["Per Agent"]
    roster.expire(now=PRESENCE_TTL + 1.5)
    assert roster.others(1, now=PRESENCE_TTL + 1.5) == []


def test_own_tabs_and_garbage_are_not_shown() -> None:
    roster = Roster(own_tab="mine-000001")
    roster.apply(_seen("mine-000001", 1, "Kari Agent", "viewing"), now=0.0)
    roster.apply(_seen("kari-other-tab", 1, "Kari Agent", "viewing"), now=0.0)
    roster.apply({"type": "presence", "tab": 7, "state": "viewing"}, now=0.0)
    roster.apply({"type": "presence", "tab": "tab-x-00001", "state": "dancing"}, now=0.0)

    assert roster.others(1, now=0.0) == []


def _seen(tab: str, operator: int, name: str, state: str) -> dict[str, object]:
    return {"type": "presence", "tab": tab, "operator": operator, "name": name, "state": state}


@pytest.fixture
async def web_processes(runtime: Runtime, redis_url: str) -> AsyncIterator[list[Runtime]]:
    """Two web processes' runtimes on the test database, each with its own Redis link."""
    prefix = f"helpdesk-test-presence:{uuid.uuid4().hex}:"
    processes = []
    for _ in range(2):
        engine = create_engine(runtime.settings.database_url)
        pubsub = RedisPubSub(redis_url, prefix=prefix)
        processes.append(
            Runtime(
                settings=runtime.settings,
                engine=engine,
                sessions=create_session_factory(engine, info=session_info(pubsub)),
                clock=SystemClock(),
                storage=LocalFileStorage(runtime.settings.data_dir / "files"),
                pubsub=pubsub,
            )
        )
    yield processes
    for process in processes:
        await process.close()


async def _people(stream: EventStream, wanted: list[tuple[str, str | None]]) -> None:
    """Wait for the page to be shown exactly these (name, typing) people."""
    while True:
        people = (await stream.next_named("presence", within=10)).json()["people"]
        if [(person["name"], person["typing"]) for person in people] == wanted:
            return


async def test_two_operators_on_two_web_processes_see_each_other_and_who_types(
    runtime: Runtime, web_processes: list[Runtime]
) -> None:
    ticket = await add_ticket(runtime)
    await add_inbox_operator(runtime, "kari@kurs.example", "Kari Agent")
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Agent")
    apps = [create_app(process.settings, process) for process in web_processes]
    page = f"/inbox/tickets/{ticket.number}"
    async with AsyncExitStack() as stack:
        kari, ola = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )  # type: ignore[arg-type]
            )
            for app in apps
        ]
        await sign_in(kari, "kari@kurs.example")
        await sign_in(ola, "ola@kurs.example")
        kari_stream = await stack.enter_async_context(
            open_stream(apps[0], f"{page}/events?tab=kari-tab-0001", cookie_header(kari))
        )
        await _people(kari_stream, [])
        async with open_stream(
            apps[1], f"{page}/events?tab=ola-tab-00001", cookie_header(ola)
        ) as ola_stream:
            await _people(kari_stream, [("Ola Agent", None)])
            await _people(ola_stream, [("Kari Agent", None)])

            token = csrf_from((await ola.get(page)).text)
            typing = await ola.post(
                f"{page}/presence",
                data={"tab": "ola-tab-00001", "state": "typing", "what": "reply"},
                headers={"x-csrf-token": token},
            )
            assert typing.status_code == 204
            await _people(kari_stream, [("Ola Agent", "reply")])

            await ola.post(
                f"{page}/presence",
                data={"tab": "ola-tab-00001", "state": "idle", "what": "reply"},
                headers={"x-csrf-token": token},
            )
            await _people(kari_stream, [("Ola Agent", None)])
        # Ola closed the tab: gone at once, not after the TTL.
        await _people(kari_stream, [])


async def test_a_viewer_whose_process_died_disappears_after_the_ttl(
    runtime: Runtime, web_processes: list[Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "PRESENCE_TTL", 1.0)
    ticket = await add_ticket(runtime)
    await add_inbox_operator(runtime, "kari@kurs.example", "Kari Agent")
    app = create_app(runtime.settings, web_processes[0])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://testserver",
    ) as kari:
        await sign_in(kari, "kari@kurs.example")
        path = f"/inbox/tickets/{ticket.number}/events"
        async with open_stream(app, path, cookie_header(kari)) as stream:
            await _people(stream, [])  # subscribed
            # Another process announced a viewer once, then died without saying goodbye.
            await web_processes[1].pubsub.publish(
                f"ticket:{ticket.id}", _seen("lost-tab-0001", 99, "Per Agent", "viewing")
            )
            await _people(stream, [("Per Agent", None)])
            await _people(stream, [])


async def test_presence_events_carry_no_learner_data_and_say_what_they_are(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    ticket = await add_ticket(runtime, requester="kari@example.no")
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Agent")
    await sign_in(client, "ola@kurs.example")
    page = f"/inbox/tickets/{ticket.number}"
    token = csrf_from((await client.get(page)).text)

    async with runtime.pubsub.subscribe(f"ticket:{ticket.id}") as channel:
        await client.post(
            f"{page}/presence",
            data={"tab": "ola-tab-00001", "state": "typing", "what": "note"},
            headers={"x-csrf-token": token},
        )
        event = await channel.next_within(2)

    assert event is not None and event.data["type"] == "presence"
    assert set(event.data) == {"type", "tab", "operator", "name", "state", "what"}
    assert "@" not in str(event.data)


async def test_the_typing_signal_needs_the_form_token_and_a_real_tab(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    ticket = await add_ticket(runtime)
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Agent")
    await sign_in(client, "ola@kurs.example")
    page = f"/inbox/tickets/{ticket.number}"
    token = csrf_from((await client.get(page)).text)

    forged = await client.post(f"{page}/presence", data={"tab": "ola-tab-00001", "state": "typing"})
    bad_tab = await client.post(
        f"{page}/presence",
        data={"tab": "<script>", "state": "typing"},
        headers={"x-csrf-token": token},
    )
    unknown = await client.post(
        "/inbox/tickets/999999/presence",
        data={"tab": "ola-tab-00001", "state": "typing"},
        headers={"x-csrf-token": token},
    )

    assert forged.status_code == 403
    assert bad_tab.status_code == 422
    assert unknown.status_code == 404


async def test_the_learners_widget_stream_hears_nothing_of_operators_typing(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    ticket = await add_ticket(runtime, channel="widget")
    async with transaction(runtime.sessions) as session:
        conversation = WidgetConversation(
            public_id=uuid.uuid4().hex,
            ticket_id=ticket.id,
            token_hash=uuid.uuid4().hex,
            name="Kari Nordmann",
            email="kari@example.no",
        )
        session.add(conversation)
        await session.flush()
        conversation_id = conversation.id
        newest = await session.scalar(select(func.max(Message.id)))
    assert conversation_id is not None
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Agent")
    await sign_in(client, "ola@kurs.example")
    page = f"/inbox/tickets/{ticket.number}"
    token = csrf_from((await client.get(page)).text)

    learner_stream = conversation_events(
        runtime, conversation_id, ticket.id, newest, heartbeat=0.2, lifetime=1.5
    )
    # The retry line, then a heartbeat: by then the stream listens on the ticket's channel.
    sent = [await anext(learner_stream), await anext(learner_stream)]
    for state in ("typing", "idle"):
        await client.post(
            f"{page}/presence",
            data={"tab": "ola-tab-00001", "state": state, "what": "reply"},
            headers={"x-csrf-token": token},
        )
    sent += [chunk async for chunk in learner_stream]

    assert all(chunk.startswith((b"retry:", b": heartbeat")) for chunk in sent), sent
    assert b"Ola" not in b"".join(sent)
