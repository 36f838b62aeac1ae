"""The inbox on a phone: every main page fits a 390 px wide screen without sideways scrolling.

A demo installation served like tests/test_inbox_browser.py; the demo operator (an admin)
signs in at 390×844 and opens each page. The page itself must not be wider than the window
(wide tables and the queue strip scroll inside their own box instead). Phone screenshots go
to test-artifacts/.
"""

from __future__ import annotations

import re

from tests.peers.chromium import ARTIFACTS, launch_chromium
from tests.test_inbox_browser import server, sync_api  # noqa: F401 - server is a fixture

__all__ = ["server"]

PHONE = {"width": 390, "height": 844}

# The elements that stick out of the window, for a readable failure message.
OVERFLOW_REPORT = """() => {
  const width = window.innerWidth;
  const wide = [];
  for (const node of document.querySelectorAll('body *')) {
    const box = node.getBoundingClientRect();
    if (box.right > width + 0.5 && box.width > 0) {
      wide.push(`${node.tagName.toLowerCase()}.${node.className} right=${Math.round(box.right)}`);
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: width,
    wide: wide.slice(0, 8),
  };
}"""


def _assert_fits(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
    report = page.evaluate(OVERFLOW_REPORT)
    assert report["scrollWidth"] <= report["innerWidth"], (name, report)


def test_inbox_pages_fit_a_phone_screen(server: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    csp_violations: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        # Not is_mobile: a mobile viewport would widen itself to fit the page and hide overflow.
        context = browser.new_context(viewport=PHONE, locale="nb-NO")
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

        page.goto(f"{server}/inbox")
        expect(page).to_have_url(re.compile(r"/inbox/login"))
        _assert_fits(page, "inbox-login")
        page.get_by_label("Email").fill("demo@helpdesk.local")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="All open")).to_be_visible()
        _assert_fits(page, "inbox-queues")

        # The queue list is a strip that scrolls sideways by itself; every queue is reachable.
        strip = page.get_by_role("navigation", name="Queues")
        all_tickets = strip.get_by_role("link", name=re.compile("^All tickets"))
        all_tickets.scroll_into_view_if_needed()
        expect(all_tickets).to_be_in_viewport()
        all_tickets.click()
        expect(page.get_by_role("heading", name=re.compile("^All tickets"))).to_be_visible()
        expect(strip.locator("[aria-current=page]")).to_be_in_viewport(ratio=1)
        _assert_fits(page, "inbox-all-tickets")

        # The main navigation stays usable: every destination is on screen, none cut off.
        main_nav = page.get_by_role("navigation", name="Main")
        for name in ("Tickets", "Privacy", "Reports", "Admin", "Operators", "Canned replies"):
            expect(main_nav.get_by_role("link", name=name)).to_be_in_viewport(ratio=1)

        page.locator(".ticket-row a").first.click()
        expect(page.get_by_role("button", name="Send reply")).to_be_visible()
        _assert_fits(page, "inbox-ticket")

        pages = {
            "inbox-privacy": "/inbox/privacy",
            "inbox-reports": "/inbox/reports",
            "inbox-account": "/inbox/account",
            "inbox-admin": "/inbox/admin",
            "inbox-operators": "/inbox/admin/operators",
            "inbox-canned-replies": "/inbox/admin/canned",
            "inbox-retention": "/inbox/admin/retention",
        }
        for name, path in pages.items():
            response = page.goto(f"{server}{path}")
            assert response is not None and response.status == 200, (path, response)
            _assert_fits(page, name)

        # One privacy request, when the demo data has one.
        page.goto(f"{server}/inbox/privacy")
        request_links = page.locator("main a[href^='/inbox/privacy/']")
        if request_links.count():
            request_links.first.click()
            expect(page).to_have_url(re.compile(r"/inbox/privacy/\d+"))
            _assert_fits(page, "inbox-privacy-request")

        # On a laptop-sized window the whole top bar is one row (the search field gives way).
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{server}/inbox/account")
        brand = page.locator(".inbox-topbar .brand").bounding_box()
        whoami = page.locator(".inbox-topbar .whoami").bounding_box()
        assert brand is not None and whoami is not None
        assert abs((brand["y"] + brand["height"] / 2) - (whoami["y"] + whoami["height"] / 2)) < 8, (
            brand,
            whoami,
        )

        browser.close()
    assert csp_violations == []
