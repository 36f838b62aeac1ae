"""Queues, search, filters, pages and reports in a real browser (Chromium via Playwright).

`helpdesk serve` runs a migrated embedded installation with the demo data and forty more
tickets, so the search goes through the migration's FTS5 tables and triggers and a queue has
more than one page. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from helpdesk.bootstrap import build_runtime
from helpdesk.config import Settings
from helpdesk.db import transaction
from helpdesk.tickets.lifecycle import MessageDraft, create_ticket
from tests.peers.chromium import ARTIFACTS, launch_chromium, require_chromium
from tests.peers.served import serving

sync_api = require_chromium()


def _helpdesk(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def _add_invoice_tickets(database_url: str, data_dir: Path, count: int) -> None:
    """Forty invoice questions by mail over the last days (more than one page of a queue)."""
    runtime = build_runtime(
        Settings(database_url=database_url, data_dir=data_dir, secret_key="x" * 32)
    )
    now = runtime.clock.now()
    try:
        for n in range(count):
            async with transaction(runtime.sessions) as session:
                address = f"bedrift{n}@firma{n % 4}.no"
                await create_ticket(
                    session,
                    subject=f"Faktura nr. {7000 + n}",
                    channel="email",
                    requester=address,
                    requester_name=f"Innkjøper {n}",
                    first_message=MessageDraft(
                        direction="inbound",
                        text=f"Hei, kan dere sende fakturaen for ordre {7000 + n} på nytt?",
                        author_kind="unknown",
                        author_email=address,
                    ),
                    now=now - timedelta(days=3, minutes=n),
                )
    finally:
        await runtime.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    env["HELPDESK_DATABASE_URL"] = database_url
    _helpdesk(env, "migrate")
    _helpdesk(env, "demo-data")
    asyncio.run(_add_invoice_tickets(database_url, tmp_path / "var", 40))
    with serving(env) as base:
        yield base


def _row_numbers(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator("ol.ticket-list .ticket-number").all_inner_texts()


def test_operator_searches_filters_pages_and_reads_reports(server: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    csp_violations: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(
            viewport={"width": 1360, "height": 900}, locale="nb-NO", accept_downloads=True
        )
        page = context.new_page()
        page.on(
            "console",
            lambda m: (
                csp_violations.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        expect = sync_api.expect

        page.goto(f"{server}/inbox/login")
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()

        # A search for the base form finds the inflected word, marked in the snippet.
        page.locator("#top-q").fill("kursbevis")
        page.locator("#top-q").press("Enter")
        expect(page.get_by_text("best match first")).to_be_visible()
        first = page.locator("ol.ticket-list li").first
        expect(first).to_contain_text("Kursbevis mangler")
        expect(first.locator(".ticket-snippet mark").first).to_have_text(
            re.compile("kursbevis", re.IGNORECASE)
        )
        page.screenshot(path=str(ARTIFACTS / "inbox-search.png"), full_page=True)

        # An address finds its sender's tickets; nothing for a word that is nowhere.
        page.locator("#top-q").fill("firma2.no")
        page.locator("#top-q").press("Enter")
        expect(page.locator("ol.ticket-list li")).to_have_count(10)
        page.locator("#top-q").fill("zzyzx")
        page.locator("#top-q").press("Enter")
        expect(page.get_by_text("No tickets here.")).to_be_visible()

        # Filters: the open queue, chat widget only.
        page.goto(f"{server}/inbox?queue=open")
        page.get_by_label("Channel").select_option("widget")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("ol.ticket-list li")).to_have_count(1)
        expect(page.locator("ol.ticket-list li").first).to_contain_text("prøveeksamen")
        page.screenshot(path=str(ARTIFACTS / "inbox-filtered.png"), full_page=True)

        # Pages: the unassigned queue holds more than 25 tickets; page two continues it.
        page.goto(f"{server}/inbox?queue=unassigned")
        first_page = _row_numbers(page)
        assert len(first_page) == 25
        page.get_by_role("link", name="Older tickets →").click()
        second_page = _row_numbers(page)
        assert second_page and not set(first_page) & set(second_page)
        expect(page.get_by_role("link", name="← First page")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-page-two.png"), full_page=True)

        # The invoice questions are three days old: past their first-response due time.
        page.get_by_role("link", name=re.compile("Breached SLA")).click()
        expect(page.locator("ol.ticket-list li").first).to_contain_text("First response overdue")
        page.locator("ol.ticket-list li a").first.click()
        expect(page.get_by_label("Service levels")).to_contain_text("First response")
        page.screenshot(path=str(ARTIFACTS / "inbox-ticket-service-levels.png"), full_page=True)

        # Reports: charts with accessible names, and the CSV of the same figures.
        page.get_by_role("link", name="Reports").first.click()
        expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
        expect(page.get_by_role("img", name="New tickets per day")).to_be_visible()
        expect(page.locator("svg.chart")).to_have_count(4)
        page.screenshot(path=str(ARTIFACTS / "inbox-reports.png"), full_page=True)
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download CSV").click()
        csv_text = Path(download_info.value.path()).read_text()
        assert csv_text.startswith("date,tickets_email,tickets_widget,tickets_form")
        assert csv_text.splitlines()[-1].startswith("total,")

        browser.close()
    assert csp_violations == []
