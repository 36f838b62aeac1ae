"""The retention admin page and the legal-hold form on the ticket page (admins only)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.retention.overview import next_daily_run
from helpdesk.retention.service import run_retention
from helpdesk.tickets import service as tickets
from tests.inbox_helpers import add_inbox_operator, post_form, sign_in
from tests.retention_factory import NOW, old_ticket


async def admin_client(runtime: Runtime, client: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_inbox_operator(runtime, "admin@kurs.example", "Ada Admin", role="admin")
    await sign_in(client, "admin@kurs.example")
    return client


def test_next_run_is_03_15_oslo_time_in_winter_and_summer() -> None:
    winter = next_daily_run(datetime(2026, 1, 15, 2, 14, tzinfo=UTC))
    summer = next_daily_run(datetime(2026, 7, 1, 1, 15, tzinfo=UTC))
    assert winter == datetime(2026, 1, 15, 2, 15, tzinfo=UTC)
    assert summer == datetime(2026, 7, 2, 1, 15, tzinfo=UTC)  # 01:15 UTC is 03:15 CEST: next day


async def test_admin_sees_policy_table_runs_next_run_and_holds(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    held = await old_ticket(
        runtime,
        datetime(2023, 1, 1, tzinfo=UTC),
        legal_hold_until=date(2027, 3, 1),
        legal_hold_reason="Reklamasjon på kurs",
    )
    await old_ticket(runtime, datetime(2023, 1, 2, tzinfo=UTC))
    await run_retention(runtime, now=NOW)
    await admin_client(runtime, client)

    response = await client.get("/inbox/admin/retention")

    assert response.status_code == 200
    text = response.text
    for variable in ("HELPDESK_RETENTION_THREADS_MONTHS", "HELPDESK_RETENTION_ORDERS_YEARS"):
        assert variable in text
    assert "24 months after the last message" in text
    assert "Next scheduled run" in text
    assert "finished" in text and "cli" in text
    assert f'href="/inbox/tickets/{held.number}"' in text and "Reklamasjon på kurs" in text
    admin_page = await client.get("/inbox/admin")
    assert 'href="/inbox/admin/retention"' in admin_page.text


async def test_agents_get_no_retention_page_and_no_hold_form(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    ticket = await old_ticket(runtime, NOW - timedelta(days=1))
    await add_inbox_operator(runtime)
    await sign_in(client)

    assert (await client.get("/inbox/admin/retention")).status_code == 403
    page = await client.get(f"/inbox/tickets/{ticket.number}")
    assert page.status_code == 200 and "legal-hold" not in page.text
    refused = await post_form(
        client,
        f"/inbox/tickets/{ticket.number}",
        f"/inbox/tickets/{ticket.number}/legal-hold",
        {"reason": "Krav", "until": "2030-01-01"},
    )
    assert refused.status_code == 403


async def test_admin_sets_and_lifts_a_legal_hold_from_the_ticket_page(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    runtime.clock = FrozenClock(NOW)
    ticket = await old_ticket(runtime, datetime(2023, 1, 1, tzinfo=UTC))
    await admin_client(runtime, client)
    url = f"/inbox/tickets/{ticket.number}"

    bad = await post_form(client, url, f"{url}/legal-hold", {"reason": "Krav", "until": "snart"})
    past = await post_form(
        client, url, f"{url}/legal-hold", {"reason": "Krav", "until": "2026-01-01"}
    )
    assert bad.status_code == 422 and "Until: give a date." in bad.text
    assert past.status_code == 422 and "must be a date after today" in past.text

    done = await post_form(
        client, url, f"{url}/legal-hold", {"reason": "Klage på kurset", "until": "2027-06-30"}
    )
    assert done.status_code == 303
    page = await client.get(url)
    assert "Kept until <strong>2027-06-30</strong>: Klage på kurset" in page.text
    assert (await run_retention(runtime, now=NOW)).held == [ticket.number]

    lifted = await post_form(client, url, f"{url}/legal-hold/lift", {})
    assert lifted.status_code == 303
    async with runtime.sessions() as session:
        stored = await tickets.get_ticket(session, ticket.number)
    assert stored.legal_hold_until is None and stored.legal_hold_reason is None
    assert (await run_retention(runtime, now=NOW)).categories["threads"].count == 1
