"""Every outcome is told to the learner by email in their language (an English-speaking
learner here; Norwegian elsewhere), and an objection ends in the decision the operator
took: restrict, stop the processing, or erase (administrators only)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import Learner
from tests.factories import add_learner_with_history, add_operator, bearer
from tests.privacy_flow import NOW, confirm_by_link, link_in, mail_in, mail_to, text_of

JOHN = "John Smith <john@example.com>"


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


@pytest.fixture
async def john(runtime) -> None:
    await add_learner_with_history(runtime, email="john@example.com", name="John Smith")
    async with transaction(runtime.sessions) as session:
        learner = await session.scalar(
            select(Learner).where(Learner.email_key == "john@example.com")
        )
        assert learner is not None
        learner.locale = "en"


async def verified_request(runtime, client, agent, kind: str, text: str) -> int:
    number = await mail_in(runtime, text, sender=JOHN, subject="My data")
    created = await client.post(
        f"/api/v1/tickets/{number}/privacy-request", json={"kind": kind}, headers=agent
    )
    assert created.status_code == 201, created.text
    (verify,) = [m for m in await mail_to(runtime, "john@example.com") if "/verify/" in text_of(m)]
    await confirm_by_link(client, link_in(verify, "verify"))
    return int(created.json()["id"])


async def last_mail(runtime):
    return (await mail_to(runtime, "john@example.com"))[-1]


async def test_objection_restricted_then_lifted_told_in_english(
    runtime, client, agent, john
) -> None:
    case = await verified_request(
        runtime, client, agent, "objection", "I object to the processing of my data."
    )
    done = await client.post(
        f"/api/v1/privacy-requests/{case}/fulfil", json={"decision": "restrict"}, headers=agent
    )
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "Processing restricted."
    outcome = await last_mail(runtime)
    assert str(outcome["Subject"]).startswith("Your privacy request has been handled")
    assert "We have restricted the processing of your data" in text_of(outcome)
    lifted = await client.post(f"/api/v1/privacy-requests/{case}/lift-restriction", headers=agent)
    assert lifted.status_code == 200
    assert "restriction of the processing of your data" in text_of(await last_mail(runtime))
    assert "has been lifted" in text_of(await last_mail(runtime))


async def test_objection_upheld_stops_the_processing(runtime, client, agent, john) -> None:
    case = await verified_request(
        runtime, client, agent, "objection", "I object to you using my data for marketing."
    )
    bad = await client.post(
        f"/api/v1/privacy-requests/{case}/fulfil", json={"decision": "maybe"}, headers=agent
    )
    assert bad.status_code in (400, 422)
    # Erasing is an administrator's decision.
    erase = await client.post(
        f"/api/v1/privacy-requests/{case}/fulfil", json={"decision": "erase"}, headers=agent
    )
    assert erase.status_code == 403
    stop = await client.post(
        f"/api/v1/privacy-requests/{case}/fulfil", json={"decision": "stop"}, headers=agent
    )
    assert stop.status_code == 200 and stop.json()["status"] == "completed"
    assert "We have upheld your objection" in text_of(await last_mail(runtime))


async def test_extension_and_refusal_are_told_in_english(runtime, client, agent, john) -> None:
    case = await verified_request(
        runtime, client, agent, "portability", "Please send me my data (data portability)."
    )
    extended = await client.post(
        f"/api/v1/privacy-requests/{case}/extend",
        json={"months": 1, "reason": "Many tickets to collect."},
        headers=agent,
    )
    assert extended.status_code == 200, extended.text
    mail = await last_mail(runtime)
    assert str(mail["Subject"]).startswith("The deadline of your privacy request has been extended")
    assert "extended by 1 month" in text_of(mail) and "Many tickets to collect." in text_of(mail)
    refused = await client.post(
        f"/api/v1/privacy-requests/{case}/refuse",
        json={"reason": "The request is manifestly unfounded."},
        headers=agent,
    )
    assert refused.status_code == 200
    mail = await last_mail(runtime)
    assert str(mail["Subject"]).startswith("Answer to your privacy request")
    assert "cannot grant it" in text_of(mail)
    assert "The request is manifestly unfounded." in text_of(mail)


async def test_export_is_announced_in_english(runtime, client, agent, john) -> None:
    case = await verified_request(
        runtime, client, agent, "access", "I request access to my personal data."
    )
    done = await client.post(f"/api/v1/privacy-requests/{case}/fulfil", headers=agent)
    assert done.status_code == 200, done.text
    mail = await last_mail(runtime)
    assert str(mail["Subject"]).startswith("Your data is ready to download")
    page = await client.get(link_in(mail, "exports"))
    assert page.status_code == 200
