"""The widget in a real browser: Debian's Chromium, a course page on another origin.

`helpdesk serve` runs in a subprocess; a second tiny HTTP server on another port plays the
course site and embeds `<script src=".../widget.js">`. The learner writes, an operator
answers through the API, the answer appears in the open widget without a reload, and a
reload keeps the conversation. Screenshots go to test-artifacts/.
Skipped when /usr/bin/chromium is missing, except under CI=true, where that fails.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jinja2 import Environment, FileSystemLoader

from helpdesk.resources import templates_dir
from tests.peers.chromium import ARTIFACTS, launch_chromium, require_chromium
from tests.test_serve import free_port

sync_api = require_chromium()


def _helpdesk(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Installation:
    def __init__(self, base: str, course_site: str, token: str) -> None:
        self.base, self.course_site, self.token = base, course_site, token


@pytest.fixture
def course_site() -> Iterator[tuple[str, list[str]]]:
    """A stand-in course site on its own port; serves the demo page rendered for `base`."""
    port = free_port()
    pages: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = pages[0].encode() if pages else b"not ready"
            self.send_response(200 if pages else 503)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", pages
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def installation(tmp_path: Path, course_site: tuple[str, list[str]]) -> Iterator[Installation]:
    """`helpdesk serve` allowing the course site as widget origin, plus an operator token."""
    site, pages = course_site
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(
        HELPDESK_DATA_DIR=str(tmp_path / "var"),
        HELPDESK_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}",
        HELPDESK_BASE_URL=base,
        HELPDESK_WIDGET_ORIGINS=site,
    )
    _helpdesk(env, "migrate")
    _helpdesk(env, "operator", "add", "ola@kurs.example", "--name", "Ola Agent", "--role", "agent")
    token = _helpdesk(env, "token", "create", "ola@kurs.example").strip()
    environment = Environment(loader=FileSystemLoader(templates_dir()), autoescape=True)
    pages.append(environment.get_template("widget/demo_host.html").render(helpdesk_url=base))
    process = subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/readyz", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    try:
        yield Installation(base, site, token)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
        assert "Traceback" not in output, output


def operator_reply(installation: Installation, text: str) -> None:
    headers = {"Authorization": f"Bearer {installation.token}"}
    listed = httpx.get(f"{installation.base}/api/v1/tickets", headers=headers).json()
    (ticket,) = [t for t in listed["items"] if t["channel"] == "widget"]
    answer = httpx.post(
        f"{installation.base}/api/v1/tickets/{ticket['number']}/replies",
        json={"body": text},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text


def test_a_learner_chats_with_support_from_another_origin(installation: Installation) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="nb-NO")
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(installation.course_site)
        launcher = page.get_by_role("button", name="Kontakt kundeservice")
        expect(launcher).to_be_visible()
        launcher.click()
        panel = page.get_by_role("dialog", name="Kundeservice")
        expect(panel).to_be_visible()
        # The host page's styles do not reach into the widget, nor ours out of it.
        assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("Georgia")
        panel.get_by_label("Navn", exact=True).fill("Kari Nordmann")
        panel.get_by_label("E-post", exact=True).fill("kari@example.no")
        panel.get_by_label("Melding", exact=True).fill("Hei! Jeg finner ikke kursbeviset mitt.")
        page.screenshot(path=str(ARTIFACTS / "widget-intake.png"))
        panel.get_by_role("button", name="Send", exact=True).click()
        log = panel.get_by_role("log")
        expect(log).to_contain_text("Jeg finner ikke kursbeviset mitt.")
        expect(panel.get_by_role("button", name="Send kode")).to_be_visible()

        # The operator answers; the open widget shows it within a second, no reload.
        page.wait_for_timeout(300)  # the event stream is connected by now
        operator_reply(installation, "Hei Kari, kursbeviset er sendt til deg nå.")
        expect(log).to_contain_text("kursbeviset er sendt til deg nå", timeout=1000)
        page.screenshot(path=str(ARTIFACTS / "widget-conversation.png"))

        # The learner writes again from the composer (Enter sends).
        composer = panel.get_by_placeholder("Skriv en melding")
        composer.fill("Takk, nå fant jeg det!")
        composer.press("Enter")
        expect(log).to_contain_text("Takk, nå fant jeg det!")

        # A screenshot as attachment: checked by its content, shown as a file in the chat.
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
        page.locator("#hd-file").set_input_files(
            {"name": "feilmelding.png", "mimeType": "image/png", "buffer": png}
        )
        expect(log.get_by_role("button", name="feilmelding.png")).to_be_visible()

        # A reload keeps the conversation (the token is in localStorage).
        page.reload()
        page.get_by_role("button", name="Kontakt kundeservice").click()
        log = page.get_by_role("dialog", name="Kundeservice").get_by_role("log")
        expect(log).to_contain_text("kursbeviset er sendt til deg nå")
        expect(log).to_contain_text("Takk, nå fant jeg det!")
        expect(page.get_by_label("Navn")).to_have_count(0)

        # A reply while the panel is closed shows a badge on the launcher.
        page.keyboard.press("Escape")
        operator_reply(installation, "Bare si fra om noe mer.")
        expect(page.get_by_role("button", name="Kontakt kundeservice (1 nye svar)")).to_be_visible(
            timeout=2000
        )

        # Phone-sized screen: the panel takes the whole screen.
        page.set_viewport_size({"width": 375, "height": 667})
        page.get_by_role("button", name="Kontakt kundeservice (1 nye svar)").click()
        box = page.get_by_role("dialog", name="Kundeservice").bounding_box()
        assert box is not None and box["width"] == 375
        expect(page.get_by_role("link", name="Personvern")).to_have_attribute(
            "href", f"{installation.base}/support/privacy"
        )
        page.screenshot(path=str(ARTIFACTS / "widget-phone.png"))
        browser.close()
    assert problems == []
