"""The course platform keeps learners, orders and enrolments in sync through idempotent PUTs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import AuditEvent, Learner, Ticket
from tests.conftest import PLATFORM_KEY
from tests.factories import bearer

KEY = bearer(PLATFORM_KEY)
KARI = {"email": "Kari.Nordmann@Example.no", "name": "Kari Nordmann", "locale": "nb"}
ORDER = {
    "learner_external_id": "kari-1",
    "course": "hms-grunnkurs",
    "amount_minor": 149_000,
    "currency": "NOK",
    "status": "paid",
    "purchased_at": "2026-03-02T10:15:00+01:00",
    "buyer_org_number": "912345678",
}


async def put(client: httpx.AsyncClient, path: str, body: Any, **headers: str) -> httpx.Response:
    return await client.put(path, json=body, headers={**KEY, **headers})


async def sync_kari(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await put(client, "/api/v1/learners/kari-1", {**KARI, **changes})


def bad_fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    fields: dict[str, str] = body["fields"]
    return fields


async def add_ticket(
    runtime: Runtime, number: int, requester: str, learner: str | None = None
) -> None:
    """A ticket row as the mail intake would leave it: from an address, linked or not."""
    async with transaction(runtime.sessions) as session:
        learner_id = await session.scalar(select(Learner.id).where(Learner.external_id == learner))
        session.add(
            Ticket(
                number=number,
                subject="Sertifikat mangler",
                requester=requester,
                learner_id=learner_id,
            )
        )


async def ticket_learner(runtime: Runtime, number: int) -> str | None:
    """The external id of the learner a ticket is linked to, or None."""
    async with runtime.sessions() as session:
        return await session.scalar(
            select(Learner.external_id)
            .join(Ticket, Ticket.learner_id == Learner.id)
            .where(Ticket.number == number)
        )


async def audit_events(runtime: Runtime) -> list[AuditEvent]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, bearer("wrong-key"), {"Authorization": PLATFORM_KEY}])
async def test_sync_without_the_platform_key_is_unauthorized(client, headers) -> None:
    for path, body in [
        ("/api/v1/learners/kari-1", KARI),
        ("/api/v1/orders/A-1", ORDER),
        ("/api/v1/learners/kari-1/enrolments/hms", {"progress_percent": 10}),
    ]:
        response = await client.put(path, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


async def test_unauthorized_caller_gets_401_even_with_a_broken_body(client) -> None:
    response = await client.put("/api/v1/learners/kari-1", content=b"{not json")
    assert response.status_code == 401


async def test_sync_api_is_disabled_when_no_platform_key_is_configured(runtime) -> None:
    settings = msgspec.structs.replace(runtime.settings, platform_api_key=None)
    app = create_app(settings, dataclasses.replace(runtime, settings=settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.put("/api/v1/learners/kari-1", json=KARI, headers=KEY)
    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]


# --- idempotent upserts -----------------------------------------------------------------


async def test_learner_put_creates_then_repeating_it_changes_nothing(client, runtime) -> None:
    first = await sync_kari(client, organisation="Bygg AS")
    second = await sync_kari(client, organisation="Bygg AS")

    assert first.status_code == 201
    assert second.status_code == 200
    assert (
        first.json()
        == second.json()
        == {
            "external_id": "kari-1",
            "email": "Kari.Nordmann@example.no",
            "name": "Kari Nordmann",
            "locale": "nb",
            "organisation": "Bygg AS",
            "restricted": False,
        }
    )
    assert [e.action for e in await audit_events(runtime)] == ["learner.created"]


async def test_learner_update_is_audited_by_field_name_without_values(client, runtime) -> None:
    await sync_kari(client, organisation="Bygg AS")
    response = await sync_kari(client, name="Kari Nordmann Berg")

    assert response.status_code == 200
    assert response.json()["name"] == "Kari Nordmann Berg"
    assert response.json()["organisation"] is None  # PUT replaces: left out means cleared
    created, updated = await audit_events(runtime)
    assert (created.actor, updated.actor) == ("platform", "platform")
    assert updated.action == "learner.updated"
    assert updated.details == {"changed": ["name", "organisation"], "linked_tickets": 0}
    assert "Berg" not in str(updated.details) and "Bygg" not in str(created.details)


async def test_order_put_creates_then_repeating_it_gives_the_same_order(client) -> None:
    await sync_kari(client)
    first = await put(client, "/api/v1/orders/A-1001", ORDER)
    second = await put(client, "/api/v1/orders/A-1001", ORDER)

    assert (first.status_code, second.status_code) == (201, 200)
    assert (
        first.json()
        == second.json()
        == {
            "number": "A-1001",
            "learner_external_id": "kari-1",
            "course": "hms-grunnkurs",
            "amount_minor": 149_000,
            "currency": "NOK",
            "status": "paid",
            "purchased_at": "2026-03-02T09:15:00Z",
            "buyer_org_number": "912345678",
        }
    )


async def test_order_refund_updates_the_stored_order(client, runtime) -> None:
    await sync_kari(client)
    await put(client, "/api/v1/orders/A-1001", ORDER)
    response = await put(client, "/api/v1/orders/A-1001", {**ORDER, "status": "refunded"})

    assert response.status_code == 200
    assert response.json()["status"] == "refunded"
    assert (await audit_events(runtime))[-1].details == {"changed": ["status"]}


async def test_enrolment_put_creates_then_repeating_it_gives_the_same_enrolment(client) -> None:
    await sync_kari(client)
    path = "/api/v1/learners/kari-1/enrolments/hms-grunnkurs"
    body = {
        "progress_percent": 100,
        "completed_at": "2026-04-01T12:00:00+02:00",
        "certificate_number": "HMS-2026-0042",
    }
    first = await put(client, path, body)
    second = await put(client, path, body)

    assert (first.status_code, second.status_code) == (201, 200)
    assert (
        first.json()
        == second.json()
        == {
            "learner_external_id": "kari-1",
            "course": "hms-grunnkurs",
            "progress_percent": 100,
            "completed_at": "2026-04-01T10:00:00Z",
            "certificate_number": "HMS-2026-0042",
        }
    )


# --- validation -------------------------------------------------------------------------


async def test_every_bad_learner_field_is_named_at_once(client) -> None:
    response = await sync_kari(client, email="kari@", name="  ", locale="de")
    assert set(bad_fields(response)) == {"email", "name", "locale"}


@pytest.mark.parametrize("name", ["Kari\nNordmann", "Kari\x00", "Kari \u202eNordmann"])
async def test_names_with_control_characters_are_refused(client, name) -> None:
    response = await sync_kari(client, name=name, organisation=name)
    assert set(bad_fields(response)) == {"name", "organisation"}


async def test_learner_external_id_with_surrounding_space_is_refused(client) -> None:
    response = await put(client, "/api/v1/learners/%20kari-1", KARI)
    assert set(bad_fields(response)) == {"external_id"}


async def test_every_bad_order_field_is_named_at_once(client) -> None:
    await sync_kari(client)
    response = await put(
        client,
        "/api/v1/orders/A-1",
        {
            **ORDER,
            "amount_minor": -100,
            "currency": "ABC",
            "status": "shipped",
            "purchased_at": "2026-03-02T10:15:00",
            "course": "",
        },
    )
    fields = bad_fields(response)
    assert set(fields) == {"amount_minor", "currency", "status", "purchased_at", "course"}
    assert "offset" in fields["purchased_at"]


@pytest.mark.parametrize("currency", ["nok", "XXX", "XAU", "HRK", "NO"])
async def test_order_currency_must_be_an_active_iso_4217_code(client, currency) -> None:
    await sync_kari(client)
    response = await put(client, "/api/v1/orders/A-1", {**ORDER, "currency": currency})
    assert set(bad_fields(response)) == {"currency"}


async def test_order_in_another_active_currency_is_accepted(client) -> None:
    await sync_kari(client)
    response = await put(client, "/api/v1/orders/A-1", {**ORDER, "currency": "SEK"})
    assert response.status_code == 201


@pytest.mark.parametrize("amount", ["abc", 12.5, True, 2**31])
async def test_order_amount_that_is_not_a_non_negative_integer_is_named(client, amount) -> None:
    await sync_kari(client)
    response = await put(client, "/api/v1/orders/A-1", {**ORDER, "amount_minor": amount})
    assert set(bad_fields(response)) == {"amount_minor"}


async def test_order_for_unknown_learner_names_learner_external_id(client) -> None:
    response = await put(client, "/api/v1/orders/A-1", {**ORDER, "learner_external_id": "ghost"})
    assert set(bad_fields(response)) == {"learner_external_id"}


async def test_enrolment_for_unknown_learner_names_learner_external_id(client) -> None:
    response = await put(client, "/api/v1/learners/ghost/enrolments/hms", {"progress_percent": 5})
    assert set(bad_fields(response)) == {"learner_external_id"}


async def test_enrolment_progress_and_naive_completion_time_are_named(client) -> None:
    await sync_kari(client)
    response = await put(
        client,
        "/api/v1/learners/kari-1/enrolments/hms",
        {"progress_percent": 101, "completed_at": "2026-04-01T12:00:00"},
    )
    assert set(bad_fields(response)) == {"progress_percent", "completed_at"}


async def test_missing_required_field_is_a_validation_error(client) -> None:
    response = await put(client, "/api/v1/learners/kari-1", {"email": "kari@example.no"})
    assert response.status_code == 422
    assert "name" in str(response.json()["fields"])


async def test_body_that_is_not_json_is_a_bad_request(client) -> None:
    response = await client.put(
        "/api/v1/learners/kari-1",
        content=b"email=kari@example.no",
        headers={**KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


# --- email uniqueness and ticket linking ------------------------------------------------


@pytest.mark.parametrize("email", ["kari.nordmann@example.no", "KARI.NORDMANN@EXAMPLE.NO"])
async def test_email_already_used_by_another_learner_is_a_conflict(client, email) -> None:
    await sync_kari(client)
    response = await put(
        client, "/api/v1/learners/ola-2", {**KARI, "email": email, "name": "Ola Hansen"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


async def test_learner_may_change_the_case_of_their_own_email(client) -> None:
    await sync_kari(client)
    response = await sync_kari(client, email="kari.nordmann@example.no")
    assert response.status_code == 200
    assert response.json()["email"] == "kari.nordmann@example.no"


async def test_ticket_from_the_learners_address_is_linked_when_the_learner_is_synced(
    client, runtime
) -> None:
    await add_ticket(runtime, 1001, "kari.nordmann@example.no")
    await add_ticket(runtime, 1002, "someone.else@example.no")

    await sync_kari(client)

    assert await ticket_learner(runtime, 1001) == "kari-1"
    assert await ticket_learner(runtime, 1002) is None
    linked = [e for e in await audit_events(runtime) if e.action == "ticket.learner_linked"]
    assert [e.target for e in linked] == ["ticket:1001"]


async def test_learner_email_change_keeps_their_tickets(client, runtime) -> None:
    await add_ticket(runtime, 1001, "kari.nordmann@example.no")
    await sync_kari(client)

    response = await sync_kari(client, email="kari@bygg.example")

    assert response.status_code == 200
    assert await ticket_learner(runtime, 1001) == "kari-1"


async def test_tickets_from_a_learners_new_address_are_linked_on_email_change(
    client, runtime
) -> None:
    await sync_kari(client)
    await put(client, "/api/v1/learners/ola-2", {**KARI, "email": "ola@bygg.example"})
    await add_ticket(runtime, 1001, "kari@bygg.example")
    await add_ticket(runtime, 1002, "kari@bygg.example", learner="ola-2")

    await sync_kari(client, email="Kari@Bygg.example")

    assert await ticket_learner(runtime, 1001) == "kari-1"
    assert await ticket_learner(runtime, 1002) == "ola-2"  # a linked ticket is left alone


async def test_erased_learner_is_not_brought_back_by_a_sync(client, runtime) -> None:
    await sync_kari(client)
    async with transaction(runtime.sessions) as session:
        learner = await session.scalar(select(Learner).where(Learner.external_id == "kari-1"))
        learner.erased_at = datetime.now(UTC)

    response = await sync_kari(client)

    assert response.status_code == 409


async def test_concurrent_identical_puts_store_one_learner_and_never_fail_on_our_side(
    client, runtime
) -> None:
    responses = await asyncio.gather(*(sync_kari(client) for _ in range(5)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}  # a request that lost the race may be retried
    async with runtime.sessions() as session:
        assert len(list(await session.scalars(select(Learner)))) == 1
