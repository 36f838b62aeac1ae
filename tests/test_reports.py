"""The reports page: volume per day and channel, median business-hour times, breaches, the
SVG charts and the CSV export, on seeded tickets."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import Ticket
from helpdesk.reports.figures import Period, build_report
from helpdesk.reports.svg import nice_ceiling
from helpdesk.tickets.service_levels import default_policy
from tests.factories import add_ticket
from tests.inbox_helpers import add_inbox_operator, sign_in

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=OSLO)
WEEK = Period(date(2026, 11, 16), date(2026, 11, 20))


def oslo(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=OSLO).astimezone(UTC)


async def _seed(runtime: Runtime) -> None:
    """Five tickets around the week of 16-20 November 2026 (see the expected figures)."""
    seeds = [
        # created, channel, first response, resolved
        (oslo(16, 9), "email", oslo(16, 10), oslo(17, 9)),  # 1 h, 8 h
        (oslo(16, 14), "widget", oslo(17, 12), oslo(19, 14)),  # 6 h, 24 h (exactly on time)
        (oslo(18, 10), "form", oslo(19, 15), None),  # 13 h: first response late
        (oslo(16, 0, 30), "email", None, None),  # Monday 00:30 Oslo is Sunday in UTC
        (oslo(21, 10), "email", None, None),  # Saturday: after the period
        (oslo(15, 23, 30), "widget", None, None),  # Sunday evening: before it
    ]
    for created, channel, responded, resolved in seeds:
        ticket = await add_ticket(runtime, now=created, channel=channel)
        async with transaction(runtime.sessions) as session:
            stored = await session.get(Ticket, ticket.id)
            assert stored is not None
            stored.first_response_at, stored.resolved_at = responded, resolved


async def test_figures_count_days_in_oslo_and_times_in_business_hours(runtime: Runtime) -> None:
    await _seed(runtime)

    async with runtime.sessions() as session:
        report = await build_report(session, WEEK, default_policy(), NOW.astimezone(UTC))

    monday, _, wednesday = report.days[0], report.days[1], report.days[2]
    assert monday.volume == {"email": 2, "widget": 1, "form": 0}
    assert wednesday.volume == {"email": 0, "widget": 0, "form": 1}
    assert report.total == 4
    assert report.volume_by_channel() == {"email": 2, "widget": 1, "form": 1}
    assert monday.median_first_response == 3.5
    assert report.median_first_response == 6
    assert report.median_resolution == 16
    # Late answer (Wednesday's), and the unanswered Monday-night mail on both counts.
    assert report.first_response_breaches == 2
    assert report.resolution_breaches == 1


async def _signed_in_client(runtime: Runtime, client: httpx.AsyncClient) -> httpx.AsyncClient:
    runtime.clock = FrozenClock(NOW.astimezone(UTC))
    await add_inbox_operator(runtime)
    await sign_in(client)
    return client


async def test_reports_page_draws_accessible_charts(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    await _seed(runtime)
    await _signed_in_client(runtime, client)

    response = await client.get(
        "/inbox/reports", params={"first": "2026-11-16", "last": "2026-11-20"}
    )

    assert response.status_code == 200
    page = response.text
    assert page.count('<svg class="chart"') == 4
    assert (
        'role="img"' in page
        and '<title id="chart-volume-title">New tickets per day</title>' in page
    )
    assert "<title>16.11: Email 2</title>" in page
    assert "<title>18.11: First response 13 h</title>" in page
    assert "<script" not in page.split("<svg", 1)[1].split("</svg>")[0]
    assert "median first response" in page and ">6 h<" in page


async def test_reports_default_to_the_last_30_days(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    await _signed_in_client(runtime, client)

    response = await client.get("/inbox/reports")

    assert response.status_code == 200
    assert 'value="2026-10-22"' in response.text and 'value="2026-11-20"' in response.text


async def test_bad_periods_are_explained(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    await _signed_in_client(runtime, client)

    backwards = await client.get(
        "/inbox/reports", params={"first": "2026-11-20", "last": "2026-11-01"}
    )
    nonsense = await client.get("/inbox/reports/export.csv", params={"first": "yesterday"})
    too_long = await client.get(
        "/inbox/reports", params={"first": "2024-01-01", "last": "2026-01-01"}
    )

    assert backwards.status_code == 422 and "must not be after" in backwards.text
    assert nonsense.status_code == 422 and "2026-11-21" in nonsense.text
    assert too_long.status_code == 422 and "366 days" in too_long.text


async def test_csv_export_has_the_same_figures(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    await _seed(runtime)
    await _signed_in_client(runtime, client)

    response = await client.get(
        "/inbox/reports/export.csv", params={"first": "2026-11-16", "last": "2026-11-20"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "helpdesk-report-2026-11-16-2026-11-20.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["date"] for row in rows] == [
        "2026-11-16",
        "2026-11-17",
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
        "total",
    ]
    monday, total = rows[0], rows[-1]
    assert (monday["tickets_email"], monday["tickets_widget"], monday["tickets_total"]) == (
        "2",
        "1",
        "3",
    )
    assert monday["median_first_response_business_hours"] == "3.5"
    assert rows[1]["median_first_response_business_hours"] == ""
    assert total["tickets_total"] == "4"
    assert total["median_resolution_business_hours"] == "16"
    assert (total["first_response_breaches"], total["resolution_breaches"]) == ("2", "1")


async def test_reports_need_a_signed_in_operator(client) -> None:  # type: ignore[no-untyped-def]
    page = await client.get("/inbox/reports")
    export = await client.get("/inbox/reports/export.csv")

    assert page.status_code == 303 and export.status_code == 303


def test_chart_axis_ends_on_a_round_number() -> None:
    assert [nice_ceiling(v) for v in (0, 3, 7, 12, 26, 180)] == [1, 5, 10, 20, 50, 200]
