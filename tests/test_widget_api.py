"""The widget API: conversations, tokens, messages, abuse limits and CORS (DESIGN §6)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import pytest
from sqlalchemy import func, select

from helpdesk.models import Message, Ticket
from tests.factories import add_learner_with_history, add_operator, bearer
from tests.widget_factory import (
    CONVERSATIONS,
    COURSE_SITE,
    auth,
    conversation_row,
    freeze,
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


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    freeze(runtime)
    return bearer(await add_operator(runtime, "ola@kurs.example", "Ola Agent"))


async def tickets(runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def test_a_learner_starts_an_unverified_conversation_on_channel_widget(
    runtime, client
) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")

    response = await client.post(
        CONVERSATIONS,
        json={"name": "Kari Nordmann", "email": "kari@example.no", "message": "Hei!\nHjelp"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["conversation"]["verified"] is False
    token = body["token"]
    assert len(token) >= 43  # 32 random bytes, base64url
    stored = await conversation_row(runtime, body["conversation"]["id"])
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash
    ticket = await ticket_of(runtime, body["conversation"]["id"])
    assert (ticket.channel, ticket.number) == ("widget", body["conversation"]["ticket"])
    # Anyone can type Kari's address: nothing of her account is shown next to it.
    assert ticket.learner_id is None
    assert ticket.subject == "Hei!"


async def test_messages_need_the_conversations_own_token(runtime, client) -> None:
    first, first_token = await start(client)
    second, second_token = await start(client, email="per@example.no", message="Hallo")

    assert (
        await client.get(f"{CONVERSATIONS}/{first}/messages", headers=auth(first_token))
    ).status_code == 200
    for path in ("", "/messages", "/events"):
        for headers in (auth(second_token), auth("x" * 43), {}):
            response = await client.get(f"{CONVERSATIONS}/{first}{path}", headers=headers)
            assert response.status_code == 404, (path, headers)
            assert response.json()["error"] == "not_found"
    posted = await client.post(
        f"{CONVERSATIONS}/{first}/messages", json={"body": "Inn?"}, headers=auth(second_token)
    )
    assert posted.status_code == 404
    shown = await client.post(
        f"{CONVERSATIONS}/{first}/displayed", json={"message": 1}, headers=auth(second_token)
    )
    assert shown.status_code == 404


async def test_the_learner_sees_replies_but_never_internal_notes(runtime, client, agent) -> None:
    conversation, token = await start(client)
    number = (await ticket_of(runtime, conversation)).number
    note = await client.post(
        f"/api/v1/tickets/{number}/notes", json={"body": "Intern: sjekk betaling"}, headers=agent
    )
    assert note.status_code == 201
    reply = await client.post(
        f"/api/v1/tickets/{number}/replies",
        json={"body": "Hei Kari, vi ser på det."},
        headers=agent,
    )
    assert reply.status_code == 201
    # Unverified: the reply goes to the widget only, no mail at all.
    assert reply.json()["status"] is None

    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()

    texts = [item["text"] for item in listed["items"]]
    assert texts == ["Hei, hvor er kursbeviset?", "Hei Kari, vi ser på det."]
    assert listed["items"][1]["author"] == {"kind": "operator", "name": "Ola Agent"}
    assert "ola@kurs.example" not in str(listed)
    assert "Intern" not in str(listed)


async def test_the_learners_messages_land_in_the_ticket(runtime, client, agent) -> None:
    conversation, token = await start(client)

    posted = await client.post(
        f"{CONVERSATIONS}/{conversation}/messages",
        json={"body": "Glemte å si: kurset heter HMS grunnkurs."},
        headers=auth(token),
    )

    assert posted.status_code == 201
    assert posted.json()["direction"] == "inbound"
    number = (await ticket_of(runtime, conversation)).number
    detail = (await client.get(f"/api/v1/tickets/{number}", headers=agent)).json()
    assert [m["text"] for m in detail["messages"]][-1] == "Glemte å si: kurset heter HMS grunnkurs."
    assert detail["channel"] == "widget"
    after = (
        await client.get(
            f"{CONVERSATIONS}/{conversation}/messages",
            params={"after": posted.json()["id"] - 1},
            headers=auth(token),
        )
    ).json()
    assert [m["id"] for m in after["items"]] == [posted.json()["id"]]


async def test_writing_on_a_closed_ticket_continues_in_a_follow_up(runtime, client, agent) -> None:
    conversation, token = await start(client)
    old = await ticket_of(runtime, conversation)
    closed = await client.patch(
        f"/api/v1/tickets/{old.number}", json={"status": "closed"}, headers=agent
    )
    assert closed.status_code == 200

    posted = await client.post(
        f"{CONVERSATIONS}/{conversation}/messages", json={"body": "Hei igjen"}, headers=auth(token)
    )

    assert posted.status_code == 201
    new = await ticket_of(runtime, conversation)
    assert new.number != old.number and new.refers_to == old.number and new.channel == "widget"


async def test_the_honeypot_field_is_refused_with_a_reason(runtime, client) -> None:
    response = await client.post(
        CONVERSATIONS,
        json={"name": "Bot", "email": "bot@example.no", "message": "Buy", "website": "http://spam"},
    )

    assert response.status_code == 422
    assert response.json()["fields"] == {"website": "Leave this field empty."}
    assert await tickets(runtime) == 0


async def test_missing_and_oversized_fields_are_named(runtime, client) -> None:
    bad = await client.post(
        CONVERSATIONS, json={"name": " ", "email": "not-an-address", "message": ""}
    )
    assert bad.status_code == 422
    assert set(bad.json()["fields"]) == {"name", "email", "message"}

    long = await client.post(
        CONVERSATIONS, json={"name": "Kari", "email": "kari@example.no", "message": "x" * 5001}
    )
    assert long.status_code == 422
    assert "5000" in long.json()["fields"]["message"]

    huge = await client.post(
        CONVERSATIONS,
        content=msgspec.json.encode(
            {"name": "Kari", "email": "k@example.no", "message": "x" * 70_000}
        ),
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["error"] == "payload_too_large"
    assert await tickets(runtime) == 0


async def test_cors_answers_only_the_configured_course_site(runtime, client) -> None:
    preflight = await client.options(
        CONVERSATIONS,
        headers={
            "Origin": COURSE_SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == COURSE_SITE
    assert "Authorization" in preflight.headers["access-control-allow-headers"]

    allowed = await client.post(
        CONVERSATIONS,
        json={"name": "Kari", "email": "kari@example.no", "message": "Hei"},
        headers={"Origin": COURSE_SITE},
    )
    assert allowed.status_code == 201
    assert allowed.headers["access-control-allow-origin"] == COURSE_SITE
    assert "Retry-After" in allowed.headers["access-control-expose-headers"]

    for method in ("OPTIONS", "POST"):
        refused = await client.request(
            method,
            CONVERSATIONS,
            json={"name": "Eve", "email": "eve@example.no", "message": "Hei"},
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
    assert await tickets(runtime) == 1


async def test_fast_posting_in_one_conversation_is_told_to_slow_down(runtime, client) -> None:
    runtime.settings = msgspec.structs.replace(runtime.settings, widget_posts_per_minute=3)
    conversation, token = await start(client)
    url = f"{CONVERSATIONS}/{conversation}/messages"
    for n in range(3):
        assert (
            await client.post(url, json={"body": f"{n}"}, headers=auth(token))
        ).status_code == 201

    refused = await client.post(url, json={"body": "en til"}, headers=auth(token))

    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert "Please wait" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another conversation is not slowed down by this one.
    other, other_token = await start(client, email="per@example.no")
    ok = await client.post(
        f"{CONVERSATIONS}/{other}/messages", json={"body": "hei"}, headers=auth(other_token)
    )
    assert ok.status_code == 201


async def test_messages_posted_at_once_in_one_conversation_all_arrive(runtime, client) -> None:
    conversation, token = await start(client)
    url = f"{CONVERSATIONS}/{conversation}/messages"

    sent = await asyncio.gather(
        *(client.post(url, json={"body": f"linje {n}"}, headers=auth(token)) for n in range(12))
    )

    assert [response.status_code for response in sent] == [201] * 12
    listed = (await client.get(url, headers=auth(token))).json()["items"]
    assert sorted(m["text"] for m in listed[1:]) == sorted(f"linje {n}" for n in range(12))
    ticket = await ticket_of(runtime, conversation)
    assert ticket.status == "new" and ticket.channel == "widget"
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.ticket_id == ticket.id)
        )
    assert stored == 13


async def test_many_new_conversations_from_one_address_are_refused(runtime, client) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings, widget_new_conversations_per_hour=2
    )
    await start(client)
    await start(client)

    refused = await client.post(
        CONVERSATIONS, json={"name": "Kari", "email": "kari@example.no", "message": "Hei"}
    )

    assert refused.status_code == 429
    assert "Too many new conversations" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) > 60
    assert await tickets(runtime) == 2


async def test_the_widget_script_is_served(client) -> None:
    response = await client.get("/widget.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "attachShadow" in response.text and "Last-Event-ID" in response.text


async def test_the_message_count_in_the_database_matches_what_the_widget_shows(
    runtime, client
) -> None:
    conversation, token = await start(client)
    await client.post(
        f"{CONVERSATIONS}/{conversation}/messages", json={"body": "to"}, headers=auth(token)
    )
    async with runtime.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Message))
    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()
    assert stored == len(listed["items"]) == 2


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def test_a_learner_sends_a_screenshot_that_operators_and_only_they_can_open(
    runtime, client, agent
) -> None:
    conversation, token = await start(client)
    _, stranger = await start(client, email="per@example.no")

    sent = await client.post(
        f"{CONVERSATIONS}/{conversation}/attachments",
        files={"file": ("skjermbilde", PNG, "application/octet-stream")},
        data={"body": "Her er feilmeldingen"},
        headers=auth(token),
    )

    assert sent.status_code == 201, sent.text
    (attachment,) = sent.json()["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == ("skjermbilde.png", "image/png")
    assert sent.json()["text"] == "Her er feilmeldingen"
    url = f"{CONVERSATIONS}/{conversation}/attachments/{attachment['id']}"
    own = await client.get(url, headers=auth(token))
    assert own.status_code == 200 and own.content == PNG
    assert own.headers["content-type"] == "application/octet-stream"
    assert own.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(url, headers=auth(stranger))).status_code == 404
    operator_copy = await client.get(f"/api/v1/attachments/{attachment['id']}", headers=agent)
    assert operator_copy.content == PNG
    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()
    assert listed["items"][-1]["attachments"] == [attachment]


async def test_a_pdf_is_accepted_and_anything_else_refused_by_its_content(runtime, client) -> None:
    conversation, token = await start(client)
    url = f"{CONVERSATIONS}/{conversation}/attachments"

    pdf = await client.post(
        url, files={"file": ("kvittering.pdf", PDF, "application/pdf")}, headers=auth(token)
    )
    disguised = await client.post(
        url,
        files={"file": ("bilde.png", b"MZ\x90\x00 this is a program", "image/png")},
        headers=auth(token),
    )
    html = await client.post(
        url,
        files={"file": ("x.pdf", b"<html><script>alert(1)</script>", "application/pdf")},
        headers=auth(token),
    )

    assert (
        pdf.status_code == 201 and pdf.json()["attachments"][0]["content_type"] == "application/pdf"
    )
    for refused in (disguised, html):
        assert refused.status_code == 422
        assert "PDF" in refused.json()["fields"]["file"]


async def test_files_over_ten_megabytes_are_refused(runtime, client) -> None:
    conversation, token = await start(client)

    big = await client.post(
        f"{CONVERSATIONS}/{conversation}/attachments",
        files={"file": ("stor.png", PNG + b"\x00" * (10 * 1024 * 1024), "image/png")},
        headers=auth(token),
    )

    assert big.status_code == 413
    assert big.json()["error"] == "payload_too_large"
