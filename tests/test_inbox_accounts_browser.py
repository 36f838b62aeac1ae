"""Two-step sign-in in a real browser: Debian's Chromium (Playwright) against `helpdesk serve`.

The demo admin turns on TOTP from the account page (the secret read from the page, the code
computed with pyotp as a phone app would), signs out, and signs in with password and code;
then adds an operator on the operators page. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pyotp
import pytest

from tests.peers.chromium import ARTIFACTS, launch_chromium
from tests.test_inbox_browser import server  # noqa: F401 - a fixture

sync_api = pytest.importorskip("playwright.sync_api")


def _code_after(totp: pyotp.TOTP, used_step: int) -> str:
    """A code of a later time step than one already used (the server refuses replays)."""
    while totp.timecode(datetime.now(UTC)) <= used_step:
        time.sleep(0.5)
    return totp.now()


def test_operator_turns_on_two_step_sign_in_and_signs_in_with_a_code(server: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    csp_violations: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO")
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

        page.goto(f"{server}/inbox/login")
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()

        # The account page, reached from one's own name in the top bar.
        page.get_by_role("link", name="Demo Operatør").click()
        expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
        page.get_by_role("link", name="Turn on two-step sign-in").click()
        expect(page.locator(".qr svg")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-account-enrol.png"), full_page=True)
        page.get_by_text("Can't scan it? Type the key instead").click()
        secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
        totp = pyotp.TOTP(secret)
        enrolled_step = totp.timecode(datetime.now(UTC))
        page.get_by_label("Code from the app").fill(totp.at(datetime.now(UTC)))
        page.get_by_role("button", name="Turn on").click()
        expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
        expect(page.locator(".recovery-codes li")).to_have_count(10)
        page.get_by_role("link", name="I have saved them").click()
        expect(page.get_by_text("10 unused recovery codes")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-account.png"), full_page=True)

        # Sign out, then in again: the password alone is no longer enough.
        page.get_by_role("button", name="Sign out", exact=True).first.click()
        expect(page.get_by_role("status")).to_have_text("You are signed out.")
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-login-code.png"))
        page.goto(f"{server}/inbox")  # half signed in is not signed in
        expect(page).to_have_url(re.compile(r"/inbox/login"))
        page.goto(f"{server}/inbox/login/code")
        page.get_by_label("Code").fill(_code_after(totp, enrolled_step))
        page.get_by_role("button", name="Verify and sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()

        # Operators: add one and get the one-time setup link.
        page.get_by_role("link", name="Operators").click()
        expect(page.get_by_role("heading", name="Operators")).to_be_visible()
        page.get_by_label("Name").fill("Nora Nyansatt")
        page.get_by_label("Email").fill("nora@helpdesk.local")
        page.get_by_role("button", name="Add operator").click()
        expect(page.get_by_test_id("setup-link")).to_contain_text("/inbox/welcome?token=")
        expect(page.get_by_role("cell", name=re.compile("^Nora Nyansatt"))).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "inbox-operators.png"), full_page=True)

        # Phone width.
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "inbox-operators-phone.png"), full_page=True)
        page.goto(f"{server}/inbox/account")
        page.screenshot(path=str(ARTIFACTS / "inbox-account-phone.png"), full_page=True)

        browser.close()
    assert csp_violations == []
