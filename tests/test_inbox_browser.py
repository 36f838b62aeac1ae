"""The inbox in a real browser: Debian's Chromium driven by Playwright against `helpdesk serve`.

A fresh embedded installation (`migrate`, `demo-data`, `serve` in a subprocess) and the demo
operator do a short day's work: sign in, search, reply, watch the delivery status, add a
note with the keyboard, change the status. Screenshots of the pages go to test-artifacts/.
Skipped when /usr/bin/chromium is missing, except under CI=true, where that fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A demo installation served on a free port; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    _helpdesk(env, "migrate")
    _helpdesk(env, "demo-data")
    with serving(env) as base:
        yield base


def test_operator_answers_a_ticket_in_the_browser(server: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    csp_violations: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="nb-NO")
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                csp_violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        expect = sync_api.expect

        # Signing in: the inbox sends a stranger to the sign-in page first.
        page.goto(f"{server}/inbox")
        expect(page).to_have_url(re.compile(r"/inbox/login"))
        page.screenshot(path=str(ARTIFACTS / "inbox-login.png"))
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-queues.png"), full_page=True)

        # Search with the keyboard: "/" focuses the search field.
        page.keyboard.press("/")
        page.keyboard.type("kursbeviset")
        page.keyboard.press("Enter")
        result = page.get_by_role("link", name=re.compile("Kursbevis mangler etter fullført"))
        expect(result).to_be_visible()
        result.click()
        expect(page.get_by_role("heading", name=re.compile("Kursbevis mangler"))).to_be_visible()

        # Reply, and see the delivery status of the reply.
        page.get_by_label(re.compile("^Reply to")).fill(
            "Hei Kari!\n\nKursbeviset er sendt på nytt til deg nå."
        )
        page.get_by_role("button", name="Send reply").click()
        expect(page.get_by_role("status")).to_have_text("Reply queued for sending.")
        reply = page.locator(".msg-operator").last
        expect(reply).to_contain_text("Kursbeviset er sendt på nytt")
        expect(reply.locator(".delivery")).to_have_text(re.compile("^(Queued|Sent)$"))
        for _ in range(20):  # the embedded outbox delivers right after the commit
            if reply.locator(".delivery").inner_text() == "Sent":
                break
            page.wait_for_timeout(250)
            page.reload()
            reply = page.locator(".msg-operator").last
        expect(reply.locator(".delivery")).to_have_text("Sent")

        # An internal note with the keyboard: n, type, Ctrl+Enter.
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press("n")
        expect(page.locator("#note-body")).to_be_focused()
        page.keyboard.type("Sjekket i kursplattformen: beviset er generert.")
        page.keyboard.press("Control+Enter")
        expect(page.get_by_role("status")).to_have_text("Internal note added.")
        expect(page.locator(".msg-note").last).to_contain_text("beviset er generert")

        # Change the status in the side panel.
        page.get_by_label("Status").select_option("pending")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status")).to_have_text("Ticket updated.")
        expect(page.locator(".ticket-facts .status")).to_have_text("Pending")
        page.screenshot(path=str(ARTIFACTS / "inbox-ticket.png"), full_page=True)

        # The shortcut help opens with "?" (the script runs under the strict CSP).
        page.keyboard.press("?")
        expect(page.get_by_role("dialog")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-shortcuts.png"))
        page.keyboard.press("Escape")

        # A form post without the CSRF token is refused, even with the session cookie.
        number = page.url.rstrip("/").rsplit("/", 1)[1]
        forged = page.request.post(f"{server}/inbox/tickets/{number}/note", form={"body": "forged"})
        assert forged.status == 403

        # Phone width.
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "inbox-ticket-phone.png"), full_page=True)
        page.goto(f"{server}/inbox")
        page.screenshot(path=str(ARTIFACTS / "inbox-queues-phone.png"), full_page=True)

        browser.close()
    assert csp_violations == []
