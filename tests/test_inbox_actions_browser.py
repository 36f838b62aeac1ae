"""Ticket-page actions in a real browser: Debian's Chromium driven by Playwright.

The demo admin writes a canned reply, opens a ticket with the keyboard alone (j, Enter),
starts a reply with r, inserts the canned reply (its variables filled in for the ticket)
and sends it, then opens the learner's other ticket from the learner card and merges the
two (in the direction the privacy case allows). Screenshots of the ticket page with the
learner card go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest

from tests.peers.chromium import ARTIFACTS, launch_chromium
from tests.test_inbox_browser import server  # noqa: F401 - a fixture

sync_api = pytest.importorskip("playwright.sync_api")

CANNED_BODY = (
    "Hei {first_name}!\n\nKursbeviset i sak {ticket_number} er sendt på nytt til deg."
    "\n\nMvh {operator_first_name}"
)


def test_operator_uses_shortcuts_canned_reply_and_merge(server: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    console_problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="nb-NO")
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                console_problems.append(message.text) if message.type == "error" else None
            ),
        )
        expect = sync_api.expect

        page.goto(f"{server}/inbox/login")
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()

        # An admin writes a canned reply with variables.
        page.get_by_role("link", name="Canned replies").click()
        page.get_by_label("Title").fill("Kursbevis sendt på nytt")
        page.get_by_label("Text").fill(CANNED_BODY)
        page.get_by_role("button", name="Add canned reply").click()
        expect(page.get_by_role("status")).to_have_text("Canned reply saved.")
        page.screenshot(path=str(ARTIFACTS / "inbox-canned-replies.png"), full_page=True)

        # Keyboard only: j moves down the queue until the ticket is selected, Enter opens it.
        page.goto(f"{server}/inbox")
        rows = page.locator("[data-item]")
        expect(rows.first).to_be_visible()
        target_row = -1
        for index in range(rows.count()):
            page.keyboard.press("j")
            selected = page.locator("[data-item].is-selected")
            if "Kursbevis mangler" in selected.inner_text():
                target_row = index
                break
        assert target_row >= 0, "j never reached the ticket"
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("Kursbevis mangler"))).to_be_visible()
        number = page.url.rstrip("/").rsplit("/", 1)[1]

        # r starts the reply; the canned reply goes in with its variables filled in.
        page.keyboard.press("r")
        reply = page.locator("#reply-body")
        expect(reply).to_be_focused()
        page.keyboard.type("Takk for at du sa ifra.")
        page.get_by_label("Canned reply").select_option(label="Kursbevis sendt på nytt")
        expect(reply).to_have_value(
            f"Takk for at du sa ifra.\n\nHei Kari!\n\nKursbeviset i sak {number} er sendt på "
            "nytt til deg.\n\nMvh Demo"
        )
        expect(page.locator(".reply-channel")).to_contain_text("by email")
        page.get_by_role("button", name="Send reply").click()
        expect(page.get_by_role("status")).to_have_text("Reply queued for sending.")
        expect(page.locator(".msg-operator").last).to_contain_text(f"Kursbeviset i sak {number}")

        # The learner card: courses, orders, other tickets.
        card = page.locator(".learner-card")
        expect(card).to_contain_text("Kari Nordmann")
        expect(card).to_contain_text("Byggmester AS")
        page.screenshot(path=str(ARTIFACTS / "inbox-ticket-learner-card.png"), full_page=True)
        card.screenshot(path=str(ARTIFACTS / "inbox-learner-card.png"))

        # The learner's other ticket, opened from the card, holds a privacy request: it
        # cannot be merged away (its deadline runs there), so this one is merged into it.
        card.get_by_role("link", name=re.compile("Slette mine opplysninger")).click()
        expect(page.get_by_role("heading", name=re.compile("Slette mine"))).to_be_visible()
        other = page.url.rstrip("/").rsplit("/", 1)[1]
        page.get_by_label("Merge this ticket into").fill(f"#{number}")
        page.get_by_role("button", name="Merge", exact=True).click()
        expect(page.get_by_role("alert")).to_have_text(
            f"#{other} has a privacy request: merge #{number} into #{other} instead."
        )
        page.goto(f"{server}/inbox/tickets/{number}")
        page.get_by_label("Merge this ticket into").fill(other)
        page.get_by_role("button", name="Merge", exact=True).click()
        expect(page).to_have_url(re.compile(rf"/inbox/tickets/{other}$"))
        expect(page.get_by_role("status")).to_have_text(
            "Tickets merged: everything is on this ticket now."
        )
        conversation = page.locator(".conversation")
        expect(conversation).to_contain_text("har ikke fått kursbeviset")
        expect(conversation).to_contain_text(f"Kursbeviset i sak {number}")
        expect(conversation).to_contain_text(f"#{number} was merged into this ticket")
        page.screenshot(path=str(ARTIFACTS / "inbox-ticket-merged.png"), full_page=True)

        page.goto(f"{server}/inbox/tickets/{number}")
        expect(page.locator(".ticket-facts .status")).to_have_text("Closed")
        expect(page.get_by_text(f"This ticket was merged into #{other}")).to_be_visible()

        # "?" shows the shortcuts, documented in the overlay.
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press("?")
        expect(page.get_by_role("dialog")).to_contain_text("Reply to the learner")
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()

        browser.close()
    assert [p for p in console_problems if "Content Security Policy" in p] == []
