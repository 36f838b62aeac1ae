"""The operator API's ticket actions (merge, split, move, spam, links, participants) and
the audit trail of everything an operator changes through the inbox forms.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import AuditEvent, Message
from helpdesk.tickets import service as tickets
from tests.factories import add_learner_with_history, add_operator, add_ticket, bearer, learner_mail
from tests.inbox_helpers import add_inbox_operator, post_form, sign_in


@pytest.fixture
async def token(runtime: Runtime) -> str:
    return await add_operator(runtime, "api@kurs.example", "API Agent")


async def _audit(runtime: Runtime) -> list[AuditEvent]:
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(AuditEvent).order_by(col(AuditEvent.id))))


async def test_api_merges_and_links_like_the_inbox(
    client: httpx.AsyncClient, runtime: Runtime, token: str
) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    source = await add_ticket(runtime, requester="ola@example.no")
    target = await add_ticket(runtime, requester="someone@example.no")
    headers = bearer(token)
    base = f"/api/v1/tickets/{target.number}"

    merged = await client.post(
        f"/api/v1/tickets/{source.number}/merge", json={"into": target.number}, headers=headers
    )
    learner = await client.put(f"{base}/learner", json={"external_id": "L-1001"}, headers=headers)
    order = await client.put(f"{base}/orders/L-1001-0", headers=headers)
    cc = await client.put(
        f"{base}/participants", json={"participants": ["leder@bygg.no"]}, headers=headers
    )
    bad_cc = await client.put(
        f"{base}/participants", json={"participants": ["x@y.no\r\nBcc: z@w.no"]}, headers=headers
    )
    missing = await client.put(f"{base}/orders/nope", headers=headers)

    assert merged.status_code == 201 and merged.json()["number"] == target.number
    assert learner.status_code == 200 and learner.json()["learner"]["external_id"] == "L-1001"
    assert order.status_code == 200
    assert cc.status_code == 200
    assert bad_cc.status_code == 422 and "one line" in bad_cc.text
    assert missing.status_code == 404
    detail = (await client.get(base, headers=headers)).json()
    assert [o["number"] for o in detail["orders"] if o["linked"]] == ["L-1001-0"]
    assert (await client.get(f"/api/v1/tickets/{source.number}", headers=headers)).json()[
        "status"
    ] == "closed"


async def test_api_split_move_and_spam(
    client: httpx.AsyncClient, runtime: Runtime, token: str
) -> None:
    ticket = await add_ticket(runtime)
    other = await add_ticket(runtime, subject="Annet")
    async with transaction(runtime.sessions) as session:
        found = await tickets.get_ticket(session, ticket.number)
        second = await tickets.append_message(
            session, found, learner_mail("Ny sak"), now=datetime(2026, 11, 21, 11, tzinfo=UTC)
        )
        third = await tickets.append_message(
            session, found, learner_mail("Feil sak"), now=datetime(2026, 11, 21, 12, tzinfo=UTC)
        )
    headers = bearer(token)
    base = f"/api/v1/tickets/{ticket.number}"

    split = await client.post(
        f"{base}/messages/{second.id}/split", json={"subject": "Bytte kurs"}, headers=headers
    )
    moved = await client.post(
        f"{base}/messages/{third.id}/move", json={"to": other.number}, headers=headers
    )
    spam = await client.post(f"/api/v1/tickets/{other.number}/spam", headers=headers)
    again = await client.post(f"/api/v1/tickets/{other.number}/spam", headers=headers)

    assert split.status_code == 201 and split.json()["subject"] == "Bytte kurs"
    assert moved.status_code == 201 and moved.json()["number"] == other.number
    assert spam.status_code == 201 and spam.json()["status"] == "closed"
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    restored = await client.post(f"/api/v1/tickets/{other.number}/not-spam", headers=headers)
    twice = await client.post(f"/api/v1/tickets/{other.number}/not-spam", headers=headers)
    assert restored.status_code == 201
    assert (restored.json()["status"], restored.json()["tags"]) == ("open", [])
    assert twice.status_code == 409 and "not marked as spam" in twice.json()["detail"]


async def test_every_inbox_change_is_audited_without_content(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    operator_id = await add_inbox_operator(runtime)
    await sign_in(client)
    ticket = await add_ticket(runtime)
    url = f"/inbox/tickets/{ticket.number}"
    secret = "Hemmelig innhold 4711"

    await post_form(client, url, f"{url}/reply", {"body": f"Svar: {secret}"})
    await post_form(client, url, f"{url}/note", {"body": f"Notat: {secret}"})
    await post_form(client, url, f"{url}/update", {"priority": "high", "tags": "faktura"})
    await post_form(client, url, f"{url}/participants", {"participants": "leder@bygg.no"})

    events = [e for e in await _audit(runtime) if e.actor == f"operator:{operator_id}"]
    actions = [e.action for e in events]
    assert actions.count("message.added") == 2  # the reply and the note
    for action in ("ticket.updated", "ticket.status_changed", "ticket.participants_changed"):
        assert action in actions
    flat = repr([(e.action, e.target, e.details) for e in events])
    for content in (secret, "leder@bygg.no", "faktura"):
        assert content not in flat
    async with transaction(runtime.sessions) as session:
        texts = await session.scalars(
            select(Message.text).where(col(Message.ticket_id) == ticket.id)
        )
        assert sum(secret in t for t in texts) == 2
