"""Identity and links: a verified widget identity needs no link; confirmation links are
single-use and expire after 7 days; export links stop after their downloads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import WidgetConversation
from helpdesk.tickets import service as tickets
from tests.factories import add_learner_with_history, add_operator, bearer, learner_mail
from tests.privacy_flow import NOW, link_in, mail_in, mail_to, request_of, text_of


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


async def _widget_ticket(runtime, learner_id: int, *, verified: bool) -> int:
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session,
            subject="Chat",
            channel="widget",
            requester="kari@example.no",
            requester_name="Kari Nordmann",
            first_message=learner_mail("Jeg vil ha innsyn i dataene mine."),
            now=NOW,
            learner_id=learner_id,
        )
        session.add(
            WidgetConversation(
                public_id=f"pub-{ticket.number}",
                ticket_id=ticket.id,
                token_hash=f"{ticket.number:064d}",
                name="Kari Nordmann",
                email="kari@example.no",
                learner_id=learner_id,
                verified_at=NOW if verified else None,
                verification_method="code" if verified else None,
            )
        )
        return ticket.number


async def test_verified_widget_identity_counts_as_verified(runtime, client, agent) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    number = await _widget_ticket(runtime, learner_id, verified=True)
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    assert case["status"] == "verified"
    request = await request_of(runtime, number)
    assert request is not None and request.verification_method == "widget-identity"
    assert not [
        m for m in await mail_to(runtime, "kari@example.no") if "/privacy/verify/" in text_of(m)
    ]


async def test_unverified_widget_conversation_still_needs_the_link(runtime, client, agent) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    number = await _widget_ticket(runtime, learner_id, verified=False)
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    assert case["status"] == "awaiting_verification"


async def test_confirmation_link_expires_after_seven_days(runtime, client, agent) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    number = await mail_in(runtime, "Slett mine opplysninger.")
    await client.post(
        f"/api/v1/tickets/{number}/privacy-request", json={"kind": "erasure"}, headers=agent
    )
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    path = link_in(verify_mail, "verify")
    runtime.clock = FrozenClock(NOW + timedelta(days=7, minutes=1))
    page = await client.get(path)
    assert page.status_code == 404 and "utløpt" in page.text
    assert (await client.post(path)).status_code == 404
    assert (await request_of(runtime, number)).status == "awaiting_verification"  # type: ignore[union-attr]
    assert (await client.get("/privacy/verify/not-a-token")).status_code == 404


async def test_export_link_stops_after_its_downloads(runtime, client, agent) -> None:
    number = await mail_in(runtime, "GDPR innsyn, takk.", sender="Ola <ola@example.no>")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    (export_mail,) = await mail_to(runtime, "ola@example.no")
    path = link_in(export_mail, "exports")
    for _ in range(3):
        assert (await client.post(path)).headers["content-type"] == "application/zip"
    assert (await client.post(path)).status_code == 404


async def test_link_goes_to_the_registered_address_not_to_whoever_asked(
    runtime, client, agent
) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    number = await mail_in(runtime, "Hei, et spørsmål om kurset.", subject="Kurs")
    # Someone else on the thread asks, in Kari's ticket, for her data to be deleted.
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        await tickets.append_message(
            session,
            ticket,
            learner_mail(
                "Slett mine opplysninger, jeg er Kari.",
                author_kind="unknown",
                author_email="someone@other.example",
                author_name="Kari N",
            ),
            now=NOW,
        )
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "erasure"}, headers=agent
        )
    ).json()
    assert case["status"] == "awaiting_verification"
    assert await mail_to(runtime, "someone@other.example") == []
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    assert "/privacy/verify/" in text_of(verify_mail)
