"""Restriction of processing keeps a learner's data out of ordinary work: queues, counts,
search, the operator API's list and the reports — all but the privacy request itself — and
lifting it brings everything back (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.inbox.queues import QueueFilters, list_queue, queue_counts
from helpdesk.models import Operator
from helpdesk.reports.figures import Period, build_report
from tests.factories import add_learner_with_history, add_operator, bearer
from tests.inbox_helpers import add_inbox_operator, browser_client, sign_in
from tests.privacy_flow import NOW, confirm_by_link, link_in, mail_in, mail_to, text_of

PHRASE = "blåbærsyltetøyet"
PER = "Per Hansen <per@example.no>"


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


async def listed(client, agent, **params: str) -> set[int]:
    response = await client.get("/api/v1/tickets", params=params, headers=agent)
    assert response.status_code == 200, response.text
    return {item["number"] for item in response.json()["items"]}


async def landing_open_count(client) -> int:
    """The "Open tickets" figure of the landing page at /."""
    page = (await client.get("/")).text
    found = re.search(r"<dt>Open tickets</dt><dd>(\d+)</dd>", page)
    assert found, page
    return int(found.group(1))


async def open_queue(runtime) -> tuple[set[int], int, int]:
    """The numbers in the inbox's "All open" queue, its count, and today's report total."""
    async with transaction(runtime.sessions) as session:
        operator = await session.scalar(select(Operator).where(Operator.role == "agent"))
        page = await list_queue(
            session, operator=operator, queue="open", filters=QueueFilters(), now=NOW
        )
        counts = await queue_counts(session, operator, NOW)
        policy = runtime.settings.service_levels
        today = NOW.astimezone(policy.hours.zone).date()
        report = await build_report(session, Period(today, today), policy, NOW)
    return {row.ticket.number for row in page.items}, counts["open"], report.total


async def test_restricted_learner_is_left_out_of_work_but_not_out_of_the_request(
    runtime, client, agent
) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    other = await mail_in(runtime, f"Kursbeviset mitt mangler. Stikkord: {PHRASE}.", subject="Kurs")
    per = await mail_in(runtime, f"Jeg liker {PHRASE} også.", sender=PER, subject="Spørsmål")
    number = await mail_in(runtime, "Jeg ber om begrensning av behandlingen av mine opplysninger.")
    before_numbers, before_count, before_total = await open_queue(runtime)
    before_landing = await landing_open_count(client)
    assert {other, per, number} <= before_numbers
    assert await listed(client, agent, q=PHRASE) == {other, per}

    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "restriction"}, headers=agent
        )
    ).json()
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    fulfilled = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert fulfilled.status_code == 200, fulfilled.text

    # Hidden: the operator API's list and search, the queues, their counts and the reports.
    assert other not in await listed(client, agent)
    assert {per, number} <= await listed(client, agent)
    assert await listed(client, agent, q=PHRASE) == {per}
    numbers, count, total = await open_queue(runtime)
    assert other not in numbers and number in numbers and per in numbers
    assert count == len(numbers) == before_count - 1
    assert total == before_total - 1
    assert await landing_open_count(client) == before_landing - 1
    # An operator may still answer her by hand about the request.
    reply = await client.post(
        f"/api/v1/tickets/{number}/replies",
        json={"body": "Vi har begrenset behandlingen som du ba om."},
        headers=agent,
    )
    assert reply.status_code == 201, reply.text
    assert "Vi har begrenset behandlingen som du ba om." in text_of(
        (await mail_to(runtime, "kari@example.no"))[-1]
    )
    # Her new mail after the restriction is not work either.
    later = await mail_in(runtime, "Et nytt spørsmål om kurset.", subject="Nytt spørsmål")
    assert later not in await listed(client, agent)
    # The privacy queue still shows the request.
    privacy = (await client.get("/api/v1/privacy-requests", headers=agent)).json()
    assert case["id"] in {item["id"] for item in privacy["items"]}

    # Opened directly, the ticket says why it is missing elsewhere; an agent's learner card
    # leaves it out, an administrator handling the request sees it.
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Inbox", "agent")
    await add_inbox_operator(runtime, "ada@kurs.example", "Ada Admin", "admin")
    async with browser_client(runtime) as inbox_agent, browser_client(runtime) as inbox_admin:
        await sign_in(inbox_agent, "ola@kurs.example")
        await sign_in(inbox_admin, "ada@kurs.example")
        hidden_page = await inbox_agent.get(f"/inbox/tickets/{other}")
        assert hidden_page.status_code == 200
        assert "Processing restricted" in hidden_page.text
        assert "hidden from the queues, search, reports" in hidden_page.text
        request_page = (await inbox_agent.get(f"/inbox/tickets/{number}")).text
        assert "data-hidden-from-work" not in request_page
        assert f'href="/inbox/tickets/{other}"' not in request_page
        admin_page = (await inbox_admin.get(f"/inbox/tickets/{number}")).text
        assert f'href="/inbox/tickets/{other}"' in admin_page
        queue_page = (await inbox_agent.get("/inbox", params={"q": PHRASE})).text
        assert f'href="/inbox/tickets/{per}"' in queue_page
        assert f'href="/inbox/tickets/{other}"' not in queue_page

    lifted = await client.post(
        f"/api/v1/privacy-requests/{case['id']}/lift-restriction", headers=agent
    )
    assert lifted.status_code == 200
    assert {other, later, per, number} <= await listed(client, agent)
    assert await listed(client, agent, q=PHRASE) == {other, per}
    numbers, count, total = await open_queue(runtime)
    assert {other, later} <= numbers and count == len(numbers)
    assert total == before_total + 1  # the later ticket counts again too


async def test_restriction_leaves_an_unrestricted_learner_alone(runtime, client, agent) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    await add_learner_with_history(
        runtime, external_id="L-2002", email="per@example.no", name="Per Hansen"
    )
    per = await mail_in(runtime, "Hvor finner jeg kursbeviset?", sender=PER, subject="Kurs")
    number = await mail_in(runtime, "Begrens behandlingen av mine opplysninger, takk.")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "restriction"}, headers=agent
        )
    ).json()
    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    runtime.clock = FrozenClock(NOW + timedelta(minutes=5))
    assert {per, number} <= await listed(client, agent)
