"""Privacy requests end to end: a learner mails in, confirms by link, an operator acts
through the API, and the learner gets the outcome by mail (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.adapters.smtp import build_transport
from helpdesk.db import transaction
from helpdesk.models import AuditEvent, Learner, OutboundEmail, PlatformEvent
from helpdesk.outbound.delivery import deliver_all_due
from tests.factories import add_learner_with_history, add_operator, bearer
from tests.privacy_flow import (
    NOW,
    audit_actions,
    confirm_by_link,
    link_in,
    mail_in,
    mail_to,
    request_of,
    sent_mail,
    text_of,
)


async def deliver(runtime) -> None:
    """Deliver until nothing is queued (the API's own delivery kick may hold rows briefly)."""
    transport = build_transport(runtime.settings)
    try:
        for _ in range(50):
            await deliver_all_due(runtime, transport)
            async with transaction(runtime.sessions) as session:
                queued = await session.scalar(
                    select(func.count())
                    .select_from(OutboundEmail)
                    .where(OutboundEmail.status == "queued")
                )
            if not queued:
                return
            await asyncio.sleep(0.1)
    finally:
        await transport.close()


async def acknowledgements_to(runtime, address: str) -> int:
    return sum(
        1
        for recipients, mail in await sent_mail(runtime)
        if address in recipients and str(mail["Subject"]).startswith("Auto:")
    )


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


@pytest.fixture
async def kari(runtime) -> int:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    return learner_id


async def test_access_request_from_mail_to_downloaded_export(runtime, client, agent, kari) -> None:
    number = await mail_in(
        runtime,
        "Hei! Jeg ber om innsyn i alle opplysninger dere har om meg.",
        attachments=[("kvittering.pdf", "application/pdf", b"%PDF-1.4 kvittering", None)],
    )
    suggested = await request_of(runtime, number)
    assert suggested is not None and (suggested.status, suggested.kind) == ("suggested", "access")

    converted = await client.post(
        f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
    )
    assert converted.status_code == 201, converted.text
    case = converted.json()
    assert case["status"] == "awaiting_verification"
    # One calendar month after the mail arrived (its ingest time, the frozen clock).
    assert case["due_at"].startswith("2026-12-22")

    # Nothing is disclosed before the learner confirms.
    early = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert early.status_code == 409

    (verify_mail,) = (
        await mail_to(runtime, "kari@example.no")[-1:]
        if False
        else [
            m for m in await mail_to(runtime, "kari@example.no") if "/privacy/verify/" in text_of(m)
        ]
    )
    path = link_in(verify_mail, "verify")
    page = await client.get(path)
    assert (await request_of(runtime, number)).status == "awaiting_verification"  # type: ignore[union-attr]
    assert "innsyn" in page.text
    await confirm_by_link(client, path)
    assert (await request_of(runtime, number)).status == "verified"  # type: ignore[union-attr]
    # Single use: the link is spent.
    assert (await client.get(path)).status_code == 404

    done = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    (export_mail,) = [
        m for m in await mail_to(runtime, "kari@example.no") if "/privacy/exports/" in text_of(m)
    ]
    download = link_in(export_mail, "exports")
    assert (await client.get(download)).status_code == 200
    response = await client.post(download)
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"data.json", "README.txt", "summary.html"} <= set(archive.namelist())
    data = json.loads(archive.read("data.json"))
    (attachment,) = data["tickets"][0]["messages"][0]["attachments"]
    assert attachment["filename"] == "kvittering.pdf"
    assert archive.read(attachment["file"]) == b"%PDF-1.4 kvittering"
    assert data["profile"]["email"] == "kari@example.no"
    assert [e["course"] for e in data["enrolments"]] == ["hms-grunnkurs"]
    assert len(data["orders"]) == 2
    (ticket,) = data["tickets"]
    assert "innsyn" in ticket["messages"][0]["text"]
    assert data["privacy_requests"][0]["kind"] == "access"
    assert "Dine data" in archive.read("summary.html").decode()

    detail = await client.get(f"/api/v1/tickets/{number}", headers=agent)
    assert detail.json()["privacy_request"]["status"] == "completed"
    actions = await audit_actions(runtime)
    for action in (
        "privacy.request_suggested",
        "privacy.request_confirmed",
        "privacy.verification_requested",
        "privacy.request_verified",
        "privacy.export_sent",
        "privacy.request_completed",
    ):
        assert action in actions


async def test_verification_link_goes_to_the_registered_address_not_the_sender(
    runtime, client, agent, kari
) -> None:
    # Kari writes from her work address; her registered one is kari@example.no. The ticket
    # is linked by an operator conversion only if the sender is the learner, so here the
    # requester is unknown and proceeds on the ticket alone.
    number = await mail_in(
        runtime, "Please delete my data. Kari Nordmann", sender="Kari N <kari@work.example>"
    )
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    assert case["status"] == "verified"  # unknown requester: only the ticket itself
    note = await client.post(
        f"/api/v1/tickets/{number}/notes", json={"body": "Intern: ligner på Kari N."}, headers=agent
    )
    assert note.status_code == 201
    await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    (export_mail,) = [
        m for m in await mail_to(runtime, "kari@work.example") if "/privacy/exports/" in text_of(m)
    ]
    assert "only data we hold about you is this ticket" in text_of(export_mail)
    response = await client.post(link_in(export_mail, "exports"))
    data = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("data.json"))
    assert data["scope"] == "ticket" and data["profile"] is None and data["orders"] == []
    assert "note" not in [m["direction"] for m in data["tickets"][0]["messages"]]
    assert not await mail_to(runtime, "kari@example.no")


async def test_rectification_changes_fields_audits_names_only_and_signals_the_platform(
    runtime, client, agent, kari
) -> None:
    number = await mail_in(
        runtime, "Hei, jeg ønsker retting av navnet mitt: det er Kari Nordmann-Berg."
    )
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request",
            json={"kind": "rectification"},
            headers=agent,
        )
    ).json()
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    done = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/fulfil",
        json={"name": "Kari Nordmann-Berg", "organisation": "Berg AS"},
        headers=agent,
    )
    assert done.status_code == 200, done.text
    async with transaction(runtime.sessions) as session:
        learner = await session.get(Learner, kari)
        assert learner is not None and (learner.name, learner.organisation) == (
            "Kari Nordmann-Berg",
            "Berg AS",
        )
        events = (
            (await session.execute(__import__("sqlalchemy").select(PlatformEvent))).scalars().all()
        )
        assert [e.type for e in events] == ["learner.rectified"]
        (rectified,) = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "learner.rectified")
        )
        assert rectified.details["fields"] == ["name", "organisation"]
        assert "Berg" not in json.dumps(rectified.details)
    outcome = (await mail_to(runtime, "kari@example.no"))[-1]
    assert "rettet navnet, organisasjonen" in text_of(outcome)


async def test_restriction_marks_the_learner_and_can_be_lifted(
    runtime, client, agent, kari
) -> None:
    number = await mail_in(runtime, "Jeg ber om begrensning av behandlingen av mine opplysninger.")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "restriction"}, headers=agent
        )
    ).json()
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    assert (
        await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    ).status_code == 200
    detail = (await client.get(f"/api/v1/tickets/{number}", headers=agent)).json()
    assert detail["learner"]["restricted"] is True
    # No automatic mail while restricted: a new ticket from her gets no acknowledgement.
    await deliver(runtime)
    acknowledged = await acknowledgements_to(runtime, "kari@example.no")
    runtime.clock = FrozenClock(NOW + timedelta(hours=5))  # past the 4-hour automatic-mail pause
    await mail_in(runtime, "Et nytt spørsmål om kurset.", subject="Nytt spørsmål")
    await deliver(runtime)
    assert await acknowledgements_to(runtime, "kari@example.no") == acknowledged
    assert "begrenset behandlingen" in text_of((await mail_to(runtime, "kari@example.no"))[-1])
    lifted = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/lift-restriction", headers=agent
    )
    assert lifted.status_code == 200
    detail = (await client.get(f"/api/v1/tickets/{number}", headers=agent)).json()
    assert detail["learner"]["restricted"] is False
    assert "opphevet" in text_of((await mail_to(runtime, "kari@example.no"))[-1])


async def test_objection_is_recorded_and_the_operator_decides(runtime, client, agent, kari) -> None:
    number = await mail_in(runtime, "I object to processing of my data for marketing.")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "objection"}, headers=agent
        )
    ).json()
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    refused = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/refuse",
        json={"reason": "Vi bruker ikke opplysningene til markedsføring."},
        headers=agent,
    )
    assert refused.status_code == 200 and refused.json()["status"] == "refused"
    outcome = (await mail_to(runtime, "kari@example.no"))[-1]
    assert "Vi bruker ikke opplysningene til markedsføring." in text_of(outcome)
    again = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert again.status_code == 409


async def test_extension_once_with_reason_tells_the_learner(runtime, client, agent, kari) -> None:
    number = await mail_in(runtime, "Jeg ønsker dataportabilitet: send meg dataene mine.")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "portability"}, headers=agent
        )
    ).json()
    extended = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/extend",
        json={"months": 2, "reason": "Mange systemer må gjennomgås."},
        headers=agent,
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["extended_until"][:7] == "2027-02"
    assert "Mange systemer må gjennomgås." in text_of(
        (await mail_to(runtime, "kari@example.no"))[-1]
    )
    twice = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/extend",
        json={"months": 1, "reason": "Igjen"},
        headers=agent,
    )
    assert twice.status_code == 409
    bad = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/extend",
        json={"months": 3, "reason": "x"},
        headers=agent,
    )
    assert bad.status_code in (400, 422)


async def test_list_puts_overdue_requests_first_and_filters_by_status(
    runtime, client, agent, kari
) -> None:
    first = await mail_in(runtime, "GDPR innsyn, takk.", subject="A")
    second = await mail_in(
        runtime, "Slett mine opplysninger.", subject="B", sender="Ola <ola@example.no>"
    )
    listed = (await client.get("/api/v1/privacy-requests?status=suggested", headers=agent)).json()
    assert [item["ticket"] for item in listed["items"]] == [first, second]
    assert (
        await client.get("/api/v1/privacy-requests?status=nonsense", headers=agent)
    ).status_code == 422
    one = (
        await client.get(f"/api/v1/privacy-requests/{listed['items'][0]['id']}", headers=agent)
    ).json()
    assert set(one) == {
        "id",
        "ticket",
        "kind",
        "status",
        "received_at",
        "due_at",
        "extended_until",
        "verified_at",
        "completed_at",
        "outcome",
    }
    assert (await client.get("/api/v1/privacy-requests/999999", headers=agent)).status_code == 404


async def test_an_english_speaking_learner_is_answered_in_english(runtime, client, agent) -> None:
    await add_learner_with_history(runtime, email="john@example.com", name="John Smith")
    async with transaction(runtime.sessions) as session:
        learner = await session.scalar(
            select(Learner).where(Learner.email_key == "john@example.com")
        )
        assert learner is not None
        learner.locale = "en"
    number = await mail_in(
        runtime, "Please delete my data.", sender="John Smith <john@example.com>"
    )
    await client.post(
        f"/api/v1/tickets/{number}/privacy-request", json={"kind": "erasure"}, headers=agent
    )
    (verify_mail,) = await mail_to(runtime, "john@example.com")
    assert verify_mail["Subject"] == f"Please confirm your privacy request [#{number}]"
    assert "we have received a privacy request (erasure)" in text_of(verify_mail)
    page = await client.get(link_in(verify_mail, "verify"))
    assert "Confirm your privacy request" in page.text


async def test_list_pages_with_a_cursor_without_repeats_or_gaps(
    runtime, client, agent, monkeypatch
) -> None:
    monkeypatch.setattr("helpdesk.privacy.listing.PAGE_SIZE", 2)
    numbers = [
        await mail_in(runtime, "GDPR innsyn.", subject=f"S{i}", sender=f"P{i} <p{i}@example.no>")
        for i in range(5)
    ]
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        query = "/api/v1/privacy-requests?status=suggested" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await client.get(query, headers=agent)).json()
        seen += [item["ticket"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == numbers
    bad = await client.get("/api/v1/privacy-requests?cursor=bm9wZQ", headers=agent)
    assert bad.status_code == 422 and "cursor" in bad.json()["fields"]
