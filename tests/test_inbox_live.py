"""Live updates of the inbox over Server-Sent Events, on SQLite and PostgreSQL.

The streams are read as they arrive (tests/sse_stream.py); messages, ticket changes and
delivery outcomes are made through the same services the application uses, so each test
shows what an operator with the page open would see change.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime
from helpdesk.db import create_session_factory, transaction
from helpdesk.inbox import ticket_stream
from helpdesk.live import wait_for_published
from helpdesk.models import Message, Operator, OutboundEmail, Ticket
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.tickets import service as tickets
from helpdesk.tickets.moves import move_message
from tests.factories import T0, add_ticket, learner_mail
from tests.inbox_helpers import add_inbox_operator, csrf_from, post_form, sign_in
from tests.sse_stream import cookie_header, open_stream


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, runtime: Runtime) -> httpx.AsyncClient:
    await add_inbox_operator(runtime)
    await sign_in(client)
    return client


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime.settings, runtime)


async def _learner_writes(runtime: Runtime, number: int, text: str) -> int:
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        message = await tickets.append_message(session, ticket, learner_mail(text), now=T0)
    await wait_for_published()
    assert message.id is not None
    return message.id


async def _newest_message_id(runtime: Runtime, ticket: Ticket) -> int:
    async with runtime.sessions() as session:
        newest = await session.scalar(
            select(col(Message.id))
            .where(col(Message.ticket_id) == ticket.id)
            .order_by(col(Message.id).desc())
        )
    assert newest is not None
    return newest


async def test_streams_need_an_inbox_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ticket = await add_ticket(runtime)

    ticket_events = await client.get(f"/inbox/tickets/{ticket.number}/events")
    queue_events = await client.get("/inbox/events")
    forged = await client.get("/inbox/events", headers={"cookie": "helpdesk_session=not-a-session"})

    for response in (ticket_events, queue_events, forged):
        assert response.status_code == 401
        assert not response.headers["content-type"].startswith("text/event-stream")


async def test_no_stream_for_a_ticket_that_does_not_exist(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.get("/inbox/tickets/424242/events")

    assert response.status_code == 404
    assert not response.headers["content-type"].startswith("text/event-stream")


async def test_a_learner_message_appears_on_the_open_ticket_page(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    ticket = await add_ticket(runtime, subject="Kursbevis mangler")
    seen = await _newest_message_id(runtime, ticket)
    path = f"/inbox/tickets/{ticket.number}/events?after={seen}&tab=tab-one-0001"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "unsafe-inline" not in stream.headers["content-security-policy"]
        facts = await stream.next_named("ticket")
        assert facts.json()["status_label"] == "New"
        message_id = await _learner_writes(runtime, ticket.number, "Har dere sendt beviset nå?")
        event = await stream.next_named("message")

    payload = event.json()
    assert event.id == str(message_id) and payload["id"] == message_id
    assert payload["side"] == "learner"
    assert f'id="message-{message_id}"' in payload["html"]
    assert "Har dere sendt beviset nå?" in payload["html"]
    assert "Kari Nordmann" in payload["html"]


async def test_a_hostile_message_is_escaped_in_the_live_fragment(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    ticket = await add_ticket(runtime)
    seen = await _newest_message_id(runtime, ticket)
    path = f"/inbox/tickets/{ticket.number}/events?after={seen}"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        await _learner_writes(runtime, ticket.number, '<script>alert("x")</script>')
        html = (await stream.next_named("message")).json()["html"]

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


async def test_a_reconnecting_page_gets_exactly_the_messages_it_missed(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    ticket = await add_ticket(runtime)
    first = await _learner_writes(runtime, ticket.number, "Første oppfølging")
    path = f"/inbox/tickets/{ticket.number}/events?after=0"
    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        # A page that shows nothing yet is sent the whole conversation.
        shown = [(await stream.next_named("message")).json()["id"] for _ in range(2)]
    assert shown[-1] == first

    missed = [
        await _learner_writes(runtime, ticket.number, "Andre oppfølging"),
        await _learner_writes(runtime, ticket.number, "Tredje oppfølging"),
    ]
    headers = cookie_header(signed_in) | {"last-event-id": str(first)}
    async with open_stream(app, path, headers) as stream:
        again = [(await stream.next_named("message")).json()["id"] for _ in range(2)]
        with pytest.raises(TimeoutError):
            await stream.next_named("message", within=0.5)

    assert again == missed


async def test_a_message_from_a_process_that_cannot_nudge_appears_at_the_next_heartbeat(
    signed_in: httpx.AsyncClient, runtime: Runtime, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticket_stream, "HEARTBEAT_SECONDS", 0.3)
    ticket = await add_ticket(runtime)
    seen = await _newest_message_id(runtime, ticket)
    # Sessions without a pub/sub: `helpdesk ingest` in another process of the embedded mode.
    elsewhere = create_session_factory(runtime.engine)
    path = f"/inbox/tickets/{ticket.number}/events?after={seen}"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        await stream.next_named("ticket")
        async with transaction(elsewhere) as session:
            found = await tickets.get_ticket(session, ticket.number)
            await tickets.append_message(
                session, found, learner_mail("Fra en annen prosess"), now=T0
            )
        event = await stream.next_named("message", within=3)

    assert "Fra en annen prosess" in event.json()["html"]


async def test_a_forged_resume_position_is_ignored(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    ticket = await add_ticket(runtime)
    headers = cookie_header(signed_in) | {"last-event-id": "99999999999999999999"}
    path = f"/inbox/tickets/{ticket.number}/events?after=5000000000"

    async with open_stream(app, path, headers) as stream:
        assert (await stream.next_named("ticket")).json()["status"] == "new"
        message_id = await _learner_writes(runtime, ticket.number, "Hallo?")
        assert (await stream.next_named("message")).json()["id"] == message_id


async def test_a_moved_message_leaves_one_open_page_and_joins_the_other_in_its_place(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    source = await add_ticket(runtime, subject="Kursbevis mangler")
    destination = await add_ticket(runtime, subject="Faktura til arbeidsgiver")
    moved = await _learner_writes(runtime, source.number, "Hører egentlig til fakturaen")
    first_of_destination = await _newest_message_id(runtime, destination)
    headers = cookie_header(signed_in)

    async with (
        open_stream(app, f"/inbox/tickets/{source.number}/events", headers) as source_page,
        open_stream(app, f"/inbox/tickets/{destination.number}/events", headers) as other_page,
    ):
        await source_page.next_named("ticket")
        await other_page.next_named("ticket")
        async with transaction(runtime.sessions) as session:
            operator = await session.scalar(select(Operator))
            assert operator is not None
            await move_message(
                session,
                await tickets.get_ticket(session, source.number),
                moved,
                await tickets.get_ticket(session, destination.number),
                operator=operator,
                now=T0,
            )
        await wait_for_published()
        removed = (await source_page.next_named("removed")).json()
        arrived = (await other_page.next_named("message")).json()

    assert removed == {"ids": [moved]}
    assert arrived["id"] == moved and arrived["after"] == first_of_destination
    assert "Hører egentlig til fakturaen" in arrived["html"]


async def test_status_and_assignee_changes_reach_the_open_page(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    ticket = await add_ticket(runtime)
    path = f"/inbox/tickets/{ticket.number}/events"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        await stream.next_named("ticket")
        page = f"/inbox/tickets/{ticket.number}"
        await post_form(
            signed_in,
            page,
            f"{page}/update",
            {"status": "pending", "assignee": "kari@kurs.example"},
        )
        await wait_for_published()
        changed = (await stream.next_named("ticket")).json()

    assert changed["status"] == "pending" and changed["status_label"] == "Pending"
    assert changed["assignee"] == "Kari Agent"


async def test_a_replys_delivery_status_changes_live_from_queued_to_sent(
    signed_in: httpx.AsyncClient, runtime: Runtime, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No heartbeat during the test: only the delivery's own announcement can tell the page.
    monkeypatch.setattr(ticket_stream, "HEARTBEAT_SECONDS", 600.0)
    monkeypatch.setattr("helpdesk.inbox.ticket_pages.kick_delivery", _no_kick)
    ticket = await add_ticket(runtime)
    page = f"/inbox/tickets/{ticket.number}"
    reply = await post_form(signed_in, page, f"{page}/reply", {"body": "Beviset er sendt."})
    assert reply.status_code == 303

    async with open_stream(app, f"{page}/events", cookie_header(signed_in)) as stream:
        queued = (await stream.next_named("delivery")).json()
        assert (queued["status"], queued["label"]) == ("queued", "Queued")
        delivery = await kick_delivery(runtime)  # the embedded outbox: an .eml file
        assert delivery is not None
        await delivery
        sent = (await stream.next_named("delivery")).json()

    assert sent == {"message": queued["message"], "status": "sent", "label": "Sent"}
    async with runtime.sessions() as session:
        status = await session.scalar(
            select(col(OutboundEmail.status)).where(
                col(OutboundEmail.message_id) == queued["message"]
            )
        )
    assert status == "sent"


async def _no_kick(*_: object, **__: object) -> None:
    return None


async def test_heartbeats_keep_the_stream_open_until_the_operator_signs_out(
    signed_in: httpx.AsyncClient, runtime: Runtime, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticket_stream, "HEARTBEAT_SECONDS", 0.2)
    ticket = await add_ticket(runtime)
    path = f"/inbox/tickets/{ticket.number}/events"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        comments = []
        while len(comments) < 2:
            event = await stream.next(within=3)
            if event.comment == "keep-alive":
                comments.append(event)
        page = await signed_in.get("/inbox")
        await signed_in.post("/inbox/logout", data={"_csrf": csrf_from(page.text)})
        await stream.next_named("signed-out", within=3)
        with pytest.raises(EOFError):
            await stream.next(within=3)


async def test_the_queue_page_follows_counts_and_new_tickets(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    await add_ticket(runtime, subject="Faktura til arbeidsgiver")

    async with open_stream(app, "/inbox/events?queue=open", cookie_header(signed_in)) as stream:
        counts = (await stream.next_named("counts")).json()
        rows = (await stream.next_named("rows")).json()["html"]
        assert counts["open"] == 1 and "Faktura til arbeidsgiver" in rows
        await add_ticket(runtime, subject="Kursbevis mangler")
        await wait_for_published()
        counts = (await stream.next_named("counts")).json()
        rows = (await stream.next_named("rows")).json()["html"]

    assert counts["open"] == 2 and counts["unassigned"] == 2
    assert rows.index("Kursbevis mangler") < rows.index("Faktura til arbeidsgiver")
    assert len(re.findall(r'class="ticket-row', rows)) == 2


async def test_a_deeper_queue_page_follows_counts_only(
    signed_in: httpx.AsyncClient, runtime: Runtime, app
) -> None:
    await add_ticket(runtime)
    path = "/inbox/events?queue=open&cursor=anything"

    async with open_stream(app, path, cookie_header(signed_in)) as stream:
        assert (await stream.next_named("counts")).json()["open"] == 1
        with pytest.raises(TimeoutError):
            await stream.next_named("rows", within=0.5)


@pytest.mark.parametrize("confirm", [False, True], ids=["held", "sent-anyway"])
async def test_a_reply_after_a_newer_learner_message_asks_for_confirmation(
    signed_in: httpx.AsyncClient, runtime: Runtime, confirm: bool
) -> None:
    ticket = await add_ticket(runtime)
    page_url = f"/inbox/tickets/{ticket.number}"
    page = await signed_in.get(page_url)
    seen = re.search(r'name="seen_message" value="(\d+)"', page.text)
    assert seen is not None
    await _learner_writes(runtime, ticket.number, "Glem det, jeg fant det selv!")
    fields = {"_csrf": csrf_from(page.text), "body": "Her er beviset.", "seen_message": seen[1]}

    held = await signed_in.post(f"{page_url}/reply", data=fields)

    assert held.status_code == 409
    assert "A newer message from the learner arrived" in held.text
    assert "Glem det, jeg fant det selv!" in held.text
    assert "Her er beviset." in held.text  # the draft is kept
    assert await _replies(runtime, ticket) == 0
    if confirm:
        again = re.search(r'name="seen_message" value="(\d+)"', held.text)
        assert again is not None and int(again[1]) > int(seen[1])
        sent = await signed_in.post(f"{page_url}/reply", data=fields | {"seen_message": again[1]})
        assert sent.status_code == 303
        assert await _replies(runtime, ticket) == 1


async def test_a_reply_without_newer_learner_messages_is_sent_at_once(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime)
    page_url = f"/inbox/tickets/{ticket.number}"
    page = await signed_in.get(page_url)
    seen = re.search(r'name="seen_message" value="(\d+)"', page.text)
    assert seen is not None
    # A note by a colleague is newer, but it is not the learner writing.
    await post_form(signed_in, page_url, f"{page_url}/note", {"body": "Sjekker kurs."})
    fields = {"_csrf": csrf_from(page.text), "body": "Her er beviset.", "seen_message": seen[1]}

    sent = await signed_in.post(f"{page_url}/reply", data=fields)

    assert sent.status_code == 303
    assert await _replies(runtime, ticket) == 1


async def _replies(runtime: Runtime, ticket: Ticket) -> int:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(Message).where(
                col(Message.ticket_id) == ticket.id, col(Message.direction) == "outbound"
            )
        )
        return len(list(rows))
