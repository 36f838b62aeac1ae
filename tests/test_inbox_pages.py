"""Inbox pages: queues, the ticket page and its forms, on SQLite and PostgreSQL.

The forms call the same services as the JSON API, so each test checks what the API
shows afterwards, not just the page.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import Attachment, Message, Ticket
from helpdesk.outbound.suppression import suppress_address
from helpdesk.tickets import service as tickets
from tests.factories import T0, add_learner_with_history, add_operator, add_ticket, bearer
from tests.inbox_helpers import add_inbox_operator, csrf_from, post_form, sign_in

HOSTILE_HTML = (
    '<p>Hei</p><script>alert("html")</script>'
    '<img src="x" onerror="alert(\'img\')"><a href="javascript:alert(1)">klikk</a>'
)


@pytest.fixture
async def api_token(runtime: Runtime) -> str:
    """An API token of a second operator, to read what the inbox changed."""
    return await add_operator(runtime, "api@kurs.example", "API Reader")


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, runtime: Runtime) -> httpx.AsyncClient:
    await add_inbox_operator(runtime)
    await sign_in(client)
    return client


async def _api_ticket(client: httpx.AsyncClient, token: str, number: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tickets/{number}", headers=bearer(token))
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def _ticket_of_learner(runtime: Runtime) -> Ticket:
    learner_id, order_ids = await add_learner_with_history(runtime, email="kari@example.no")
    ticket = await add_ticket(runtime, order_ids=(order_ids[0],))
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Ticket).where(col(Ticket.id) == ticket.id).values(learner_id=learner_id)
        )
    return ticket


async def test_queues_page_lists_open_tickets_with_counts(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_ticket(runtime, subject="Kursbevis mangler")
    await add_ticket(runtime, subject="Faktura til arbeidsgiver", status="pending")
    await add_ticket(runtime, subject="Takk for hjelpen", status="solved")

    page = await signed_in.get("/inbox")
    pending = await signed_in.get("/inbox?queue=pending")

    assert page.status_code == 200
    assert "Kursbevis mangler" in page.text
    assert "Faktura til arbeidsgiver" not in page.text
    assert "Faktura til arbeidsgiver" in pending.text
    assert 'href="/inbox?queue=solved"' in page.text
    assert '<span>Solved</span><span class="count">1</span>' in page.text


async def test_search_finds_a_ticket_by_message_text_in_any_queue(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_ticket(runtime, subject="Spørsmål", text="Hvor finner jeg førerkortprøven?")
    await add_ticket(runtime, subject="Annet", text="Noe helt annet", status="solved")

    found = await signed_in.get("/inbox", params={"q": "FØRERKORTPRØVEN"})

    assert "Spørsmål" in found.text
    assert "Annet" not in found.text


async def test_filters_by_channel_and_tag(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    widget = await add_ticket(runtime, subject="Fra widget", channel="widget")
    await add_ticket(runtime, subject="Fra e-post")
    await signed_in.patch(
        f"/api/v1/tickets/{widget.number}", json={"tags": ["faktura"]}, headers=bearer(api_token)
    )

    by_channel = await signed_in.get("/inbox", params={"channel": "widget"})
    by_tag = await signed_in.get("/inbox", params={"queue": "all", "tag": "faktura"})
    bad = await signed_in.get("/inbox", params={"channel": "fax"})

    assert "Fra widget" in by_channel.text and "Fra e-post" not in by_channel.text
    assert "Fra widget" in by_tag.text and "Fra e-post" not in by_tag.text
    assert bad.status_code == 422 and "channel" in bad.text


async def test_machine_mail_queue_holds_tickets_with_machine_messages(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime, subject="Autosvar-tråd")
    await add_ticket(runtime, subject="Vanlig tråd")
    async with transaction(runtime.sessions) as session:
        stored = await tickets.get_ticket(session, ticket.number)
        draft = tickets.MessageDraft(
            direction="inbound",
            text="I am out of office.",
            author_kind="unknown",
            machine="auto-reply",
            thread_reason="message-id",
        )
        await tickets.append_message(session, stored, draft, now=T0, actor="system")

    queue = await signed_in.get("/inbox?queue=machine")
    page = await signed_in.get(f"/inbox/tickets/{ticket.number}")

    assert "Autosvar-tråd" in queue.text and "Vanlig tråd" not in queue.text
    assert "Machine mail: Auto-reply" in page.text
    assert "Threaded by its In-Reply-To/References" in page.text


async def test_pages_of_a_queue_follow_the_cursor(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    from datetime import timedelta

    for n in range(27):
        await add_ticket(runtime, subject=f"Sak nummer {n:02d}", now=T0 + timedelta(minutes=n))

    first = await signed_in.get("/inbox")
    next_url = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = await signed_in.get(next_url.replace("&amp;", "&"))

    assert "Sak nummer 26" in first.text and "Sak nummer 01" not in first.text
    assert "Sak nummer 01" in second.text and "Sak nummer 00" in second.text
    assert "Sak nummer 26" not in second.text


async def test_ticket_page_shows_conversation_and_learner_card(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await _ticket_of_learner(runtime)

    page = await signed_in.get(f"/inbox/tickets/{ticket.number}")

    assert page.status_code == 200
    assert "Hei, jeg finner ikke kursbeviset mitt." in page.text
    assert "msg msg-learner" in page.text
    assert "Nordmann Bygg AS" in page.text
    assert "HMS-2026-0042" in page.text  # certificate of the enrolment
    assert "2\u202f490,00\u00a0kr" in page.text  # order amount, Norwegian format
    assert "this ticket" in page.text  # the linked order is marked


async def test_hostile_mail_html_is_never_inlined_into_the_page(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime, text="<script>alert('text')</script> Hei")
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Message).where(col(Message.ticket_id) == ticket.id).values(html=HOSTILE_HTML)
        )

    page = (await signed_in.get(f"/inbox/tickets/{ticket.number}")).text

    assert "<script>alert" not in page
    assert 'onerror="' not in page
    assert '<img src="x"' not in page
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in page  # shown as text
    assert '<iframe sandbox srcdoc="&lt;p&gt;Hei&lt;/p&gt;' in page
    assert "allow-scripts" not in page
    # Only our own script files, never an inline script.
    assert re.findall(r"<script[^>]*>", page) == re.findall(
        r'<script src="/static/[a-z-]+\.js" defer>', page
    )
    assert '<script src="/static/inbox.js" defer></script>' in page


async def test_reply_form_queues_mail_and_the_api_shows_it(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"

    response = await post_form(signed_in, url, f"{url}/reply", {"body": "Hei Kari, her er det."})
    after = await signed_in.get(url)

    assert response.status_code == 303 and response.headers["location"] == url
    assert "Reply queued for sending." in after.text
    # Delivery starts right after the commit, so the page may already show it sent.
    assert re.search(r"delivery delivery-(queued|sent)", after.text)
    messages = (await _api_ticket(signed_in, api_token, ticket.number))["messages"]
    assert messages[-1]["direction"] == "outbound"
    assert messages[-1]["text"] == "Hei Kari, her er det."
    assert messages[-1]["status"] in ("queued", "sent", "retrying")
    assert "Reply queued" not in (await signed_in.get(url)).text  # the flash shows once


async def test_empty_reply_is_refused_on_the_page(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"

    response = await post_form(signed_in, url, f"{url}/reply", {"body": "   "})

    assert response.status_code == 422
    assert "Body: must not be empty." in response.text
    assert len((await _api_ticket(signed_in, api_token, ticket.number))["messages"]) == 1


async def test_reply_to_a_suppressed_address_asks_before_sending(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        await suppress_address(session, "kari@example.no", "550 no such user", now=T0)
    url = f"/inbox/tickets/{ticket.number}"

    held = await post_form(signed_in, url, f"{url}/reply", {"body": "Prøver igjen"})

    assert held.status_code == 409
    assert "Earlier mail to this address bounced." in held.text
    assert "Send anyway" in held.text and "Prøver igjen" in held.text
    assert len((await _api_ticket(signed_in, api_token, ticket.number))["messages"]) == 1

    sent = await signed_in.post(
        f"{url}/reply", data={"_csrf": csrf_from(held.text), "body": "Prøver igjen", "force": "1"}
    )

    assert sent.status_code == 303
    messages = (await _api_ticket(signed_in, api_token, ticket.number))["messages"]
    assert messages[-1]["text"] == "Prøver igjen"


async def test_note_form_adds_an_internal_note(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"

    response = await post_form(signed_in, url, f"{url}/note", {"body": "Ringte henne i dag."})
    page = await signed_in.get(url)

    assert response.status_code == 303
    assert "msg msg-note" in page.text and "Internal note" in page.text
    note = (await _api_ticket(signed_in, api_token, ticket.number))["messages"][-1]
    assert (note["direction"], note["text"]) == ("note", "Ringte henne i dag.")


async def test_update_form_changes_status_assignee_priority_and_tags(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"
    fields = {
        "status": "pending",
        "assignee": "kari@kurs.example",
        "priority": "high",
        "tags": "faktura  Kursbevis",
    }

    response = await post_form(signed_in, url, f"{url}/update", fields)

    assert response.status_code == 303
    shown = await _api_ticket(signed_in, api_token, ticket.number)
    assert shown["status"] == "pending"
    assert shown["assignee"] == "kari@kurs.example"
    assert shown["priority"] == "high"
    assert shown["tags"] == ["faktura", "kursbevis"]
    assert "Ticket updated." in (await signed_in.get(url)).text
    mine = await signed_in.get("/inbox?queue=mine")
    assert "Kursbevis mangler" in mine.text


async def test_solve_button_and_refused_transition(
    signed_in: httpx.AsyncClient, runtime: Runtime, api_token: str
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"

    solved = await post_form(signed_in, url, f"{url}/update", {"status": "solved"})
    refused = await post_form(signed_in, url, f"{url}/update", {"status": "pending"})

    assert solved.status_code == 303
    assert refused.status_code == 409
    assert "A solved ticket cannot become pending." in refused.text
    assert (await _api_ticket(signed_in, api_token, ticket.number))["status"] == "solved"


async def test_bad_tag_is_explained_on_the_page(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"

    response = await post_form(signed_in, url, f"{url}/update", {"tags": "ok <b>"})

    assert response.status_code == 422
    assert "Tags:" in response.text and "&lt;b&gt;" in response.text


async def test_unknown_ticket_is_a_404_page(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.get("/inbox/tickets/999999")

    assert response.status_code == 404
    assert "No ticket #999999." in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_attachments_open_with_the_inbox_session(
    signed_in: httpx.AsyncClient, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime)
    stored = runtime.storage.put("attachments", b"%PDF-1.4 kursbevis")
    async with transaction(runtime.sessions) as session:
        first_message = await session.scalar(
            select(col(Message.id)).where(col(Message.ticket_id) == ticket.id)
        )
        assert first_message is not None
        attachment = Attachment(
            message_id=first_message,
            filename="kursbevis.pdf",
            content_type="application/pdf",
            size=stored.size,
            sha256=stored.sha256,
            storage_path=stored.path,
        )
        session.add(attachment)
    page = await signed_in.get(f"/inbox/tickets/{ticket.number}")

    download = await signed_in.get(f"/api/v1/attachments/{attachment.id}")
    signed_in.cookies.clear()
    anonymous = await signed_in.get(f"/api/v1/attachments/{attachment.id}")

    assert f'href="/api/v1/attachments/{attachment.id}"' in page.text
    assert download.status_code == 200 and download.content == b"%PDF-1.4 kursbevis"
    assert anonymous.status_code == 401


async def test_quoted_history_is_collapsed_under_the_new_text(
    signed_in: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        stored = await tickets.get_ticket(session, ticket.number)
        draft = tickets.MessageDraft(
            direction="inbound",
            text="Takk, det virket!\n\n> Hei Kari, prøv igjen nå.",
            reply_text="Takk, det virket!",
            author_kind="learner",
            author_email="kari@example.no",
            thread_reason="message-id",
        )
        await tickets.append_message(session, stored, draft, now=T0, actor="system")

    page = (await signed_in.get(f"/inbox/tickets/{ticket.number}")).text

    new_text, _, quoted = page.partition("<summary>Show quoted text</summary>")
    assert "Takk, det virket!" in new_text
    assert "&gt; Hei Kari, prøv igjen nå." in quoted
    assert "&gt; Hei Kari" not in new_text
