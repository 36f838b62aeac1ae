"""The operator ticket API (DESIGN §6, shapes of §8), called with a real operator token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import Attachment, AuditEvent, Message, OutboundEmail
from helpdesk.tickets import service as tickets
from tests.factories import (
    T0,
    add_learner_with_history,
    add_operator,
    add_ticket,
    bearer,
)

NOW = T0 + timedelta(days=1)

TICKET_KEYS = {
    "number", "subject", "status", "channel", "priority", "assignee", "tags", "needs_review",
    "requester", "learner", "created_at", "last_message_at", "legal_hold_until",
}
DETAIL_KEYS = TICKET_KEYS | {"messages", "enrolments", "orders", "privacy_request"}
MESSAGE_KEYS = {
    "id", "direction", "author", "created_at", "text", "reply_text", "html", "thread_reason",
    "machine", "status", "attachments",
}
LEARNER_KEYS = {"external_id", "email", "name", "locale", "organisation", "restricted"}


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


@pytest.fixture
async def admin(runtime) -> dict[str, str]:
    return bearer(await add_operator(runtime, "admin@kurs.example", "Ada Admin", "admin"))


async def audit_events(runtime, action: str) -> list[AuditEvent]:
    async with transaction(runtime.sessions) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(await session.scalars(query))


async def test_requests_without_a_valid_token_are_unauthorized(client, agent) -> None:
    for headers in ({}, bearer("hd_not-a-real-token"), {"Authorization": "Basic eDp5"}):
        response = await client.get("/api/v1/tickets", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


async def test_list_pages_through_all_tickets_without_duplicates_or_gaps(
    runtime, client, agent
) -> None:
    # Three tickets share each last_message_at, so the id tie-break is exercised too.
    created = [await add_ticket(runtime, now=T0 + timedelta(minutes=i // 3)) for i in range(60)]
    seen: list[dict] = []
    cursor, pages = None, 0
    while True:
        params = {"cursor": cursor} if cursor else {}
        response = await client.get("/api/v1/tickets", params=params, headers=agent)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 25
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    numbers = [item["number"] for item in seen]
    assert sorted(numbers) == sorted(t.number for t in created)
    order = [(item["last_message_at"], item["number"]) for item in seen]
    assert order == sorted(order, reverse=True)
    assert set(seen[0]) == TICKET_KEYS


async def test_a_cursor_that_is_not_ours_is_rejected(client, agent) -> None:
    response = await client.get("/api/v1/tickets", params={"cursor": "bm9wZQ"}, headers=agent)
    assert response.status_code == 422
    assert "cursor" in response.json()["fields"]


async def test_list_filters_by_status_assignee_and_text(runtime, client, agent) -> None:
    refund = await add_ticket(runtime, subject="Refusjon av HMS-kurs", status="open")
    certificate = await add_ticket(
        runtime, subject="Kursbevis", text="Sertifikatet mangler Ø-tegn", status="pending"
    )
    other = await add_ticket(runtime, subject="Innlogging", requester="per@firma.no")
    await client.patch(
        f"/api/v1/tickets/{refund.number}", json={"assignee": "agent@kurs.example"}, headers=agent
    )

    async def numbers(**params: str) -> set[int]:
        response = await client.get("/api/v1/tickets", params=params, headers=agent)
        assert response.status_code == 200, response.text
        return {item["number"] for item in response.json()["items"]}

    assert await numbers(status="open") == {refund.number}
    assert await numbers(status="open,pending") == {refund.number, certificate.number}
    assert await numbers(assignee="me") == {refund.number}
    assert await numbers(assignee="agent@kurs.example") == {refund.number}
    assert await numbers(assignee="none") == {certificate.number, other.number}
    assert await numbers(q="refusjon") == {refund.number}
    assert await numbers(q="SERTIFIKATET") == {certificate.number}
    assert await numbers(q="per@FIRMA") == {other.number}
    assert await numbers(q="100%") == set()

    bad = await client.get("/api/v1/tickets", params={"status": "archived"}, headers=agent)
    assert bad.status_code == 422
    assert set(bad.json()["fields"]) == {"status"}


async def test_ticket_detail_has_exactly_the_contract_shape(runtime, client, agent) -> None:
    _, order_ids = await add_learner_with_history(runtime, email="kari@example.no")
    ticket = await add_ticket(runtime, order_ids=(order_ids[0],))
    async with transaction(runtime.sessions) as session:
        ticket_row = await tickets.get_ticket(session, ticket.number)
        first = (await message_ids(session, ticket_row.id))[0]
        session.add(Attachment(message_id=first, filename="kvittering.pdf",
                               content_type="application/pdf", size=18234, sha256="0" * 64,
                               storage_path="attachments/00/kvittering.pdf"))
        reply = await tickets.append_message(
            session, ticket_row,
            tickets.MessageDraft(direction="outbound", text="Her er beviset.",
                                 author_kind="operator", author_name="Ola Agent",
                                 author_email="agent@kurs.example"),
            now=T0 + timedelta(hours=1),
        )
        session.add(OutboundEmail(message_id=reply.id, ticket_id=ticket_row.id, status="sent",
                                  recipients=["kari@example.no"], rfc_message_id="a1@kurs.example"))

    response = await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)
    assert response.status_code == 200
    detail = response.json()
    assert set(detail) == DETAIL_KEYS
    assert detail["status"] == "open"
    assert detail["created_at"] == "2026-11-21T10:00:00Z"
    assert detail["last_message_at"] == "2026-11-21T11:00:00Z"
    assert detail["privacy_request"] is None
    assert set(detail["learner"]) == LEARNER_KEYS
    assert detail["learner"]["restricted"] is False
    assert detail["enrolments"][0]["certificate_number"] == "HMS-2026-0042"
    assert {o["number"]: o["linked"] for o in detail["orders"]} == {
        "L-1001-0": True, "L-1001-1": False,
    }

    inbound, outbound = detail["messages"]
    for message in (inbound, outbound):
        assert set(message) == MESSAGE_KEYS
        assert set(message["author"]) == {"kind", "name", "email"}
    assert inbound["direction"] == "inbound"
    assert inbound["author"] == {
        "kind": "learner", "name": "Kari Nordmann", "email": "kari@example.no",
    }
    assert inbound["reply_text"] == inbound["text"]
    assert inbound["status"] is None
    assert inbound["thread_reason"] == "new"
    assert inbound["attachments"] == [{
        "id": inbound["attachments"][0]["id"], "filename": "kvittering.pdf",
        "content_type": "application/pdf", "size": 18234,
    }]
    assert outbound["status"] == "sent"
    assert outbound["author"]["kind"] == "operator"


async def message_ids(session, ticket_id: int) -> list[int]:
    query = select(Message.id).where(Message.ticket_id == ticket_id).order_by(Message.id)
    return list(await session.scalars(query))


async def test_unknown_ticket_is_a_json_not_found(client, agent) -> None:
    response = await client.get("/api/v1/tickets/999999", headers=agent)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_patch_changes_status_assignee_priority_and_tags(runtime, client, agent) -> None:
    ticket = await add_ticket(runtime)
    url = f"/api/v1/tickets/{ticket.number}"
    response = await client.patch(url, headers=agent, json={
        "status": "pending", "assignee": "Agent@Kurs.example", "priority": "high",
        "tags": ["Vipps", " refusjon ", "vipps", "HMS/grunnkurs"],
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TICKET_KEYS
    assert (body["status"], body["assignee"], body["priority"]) == (
        "pending", "agent@kurs.example", "high",
    )
    assert body["tags"] == ["vipps", "refusjon", "hms/grunnkurs"]

    response = await client.patch(url, headers=agent, json={"assignee": None})
    assert response.json()["assignee"] is None
    assert response.json()["priority"] == "high"  # a missing field is left alone

    events = await audit_events(runtime, "ticket.updated")
    assert [sorted(e.details["fields"]) for e in events] == [
        ["assignee", "priority", "tags"], ["assignee"],
    ]
    assert all(e.actor.startswith("operator:") for e in events)
    assert "vipps" not in repr([e.details for e in events])
    [status_event] = await audit_events(runtime, "ticket.status_changed")
    assert status_event.details == {"from": "new", "to": "pending"}


async def test_patch_to_a_status_the_table_forbids_is_a_conflict(runtime, client, agent) -> None:
    ticket = await add_ticket(runtime, status="closed")
    response = await client.patch(
        f"/api/v1/tickets/{ticket.number}", json={"status": "open"}, headers=agent
    )
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"priority": "critical"}, "priority"),
        ({"status": "archived"}, "status"),
        ({"tags": ["two words"]}, "tags"),
        ({"assignee": "nobody@kurs.example"}, "assignee"),
    ],
)
async def test_patch_with_a_bad_value_is_422_naming_the_field(
    runtime, client, agent, patch: dict, field: str
) -> None:
    ticket = await add_ticket(runtime)
    response = await client.patch(f"/api/v1/tickets/{ticket.number}", json=patch, headers=agent)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in body["fields"]


async def test_note_is_added_without_moving_last_message_at(runtime, client, agent) -> None:
    ticket = await add_ticket(runtime)
    response = await client.post(
        f"/api/v1/tickets/{ticket.number}/notes",
        json={"body": "Kunden har betalt med Vipps, sjekk oppgjøret."},
        headers=agent,
    )
    assert response.status_code == 201
    note = response.json()
    assert set(note) == MESSAGE_KEYS
    assert note["direction"] == "note"
    assert note["author"] == {"kind": "operator", "name": "Ola Agent",
                              "email": "agent@kurs.example"}
    assert note["status"] is None

    detail = (await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)).json()
    assert detail["last_message_at"] == "2026-11-21T10:00:00Z"
    assert detail["status"] == "new"
    assert [m["direction"] for m in detail["messages"]] == ["inbound", "note"]

    event = (await audit_events(runtime, "message.added"))[-1]
    assert event.details["direction"] == "note"
    assert "Vipps" not in repr(event.details)

    empty = await client.post(
        f"/api/v1/tickets/{ticket.number}/notes", json={"body": "   "}, headers=agent
    )
    assert empty.status_code == 422


async def test_legal_hold_is_admin_only(runtime, client, agent, admin) -> None:
    ticket = await add_ticket(runtime)
    url = f"/api/v1/tickets/{ticket.number}/legal-hold"
    hold = {"reason": "Tvist om refusjon, advokat varslet", "until": "2028-06-30"}

    assert (await client.put(url, json=hold, headers=agent)).status_code == 403
    assert (await client.delete(url, headers=agent)).status_code == 403

    response = await client.put(url, json=hold, headers=admin)
    assert response.status_code == 200
    assert response.json()["legal_hold_until"] == "2028-06-30"

    response = await client.delete(url, headers=admin)
    assert response.status_code == 200
    assert response.json()["legal_hold_until"] is None

    past = await client.put(url, json={**hold, "until": "2020-01-01"}, headers=admin)
    assert past.status_code == 422
    assert "until" in past.json()["fields"]

    [held] = await audit_events(runtime, "ticket.legal_hold_set")
    [lifted] = await audit_events(runtime, "ticket.legal_hold_lifted")
    assert held.details == {"until": "2028-06-30"}
    assert held.actor == lifted.actor
    assert "advokat" not in repr(held.details)
