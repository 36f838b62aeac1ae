"""Live updates in a real browser: Debian's Chromium (Playwright) against a production-style
set of processes — `helpdesk serve` and, when the test starts it, `helpdesk worker` — that
talk through a real Redis, with mail ingested by `helpdesk ingest` in yet another process.

An operator sees a learner's new mail appear on the open ticket without reloading, sees the
reply's delivery status go from Queued to Sent when the worker delivers it, sees a colleague
open the same ticket and start typing, and, without JavaScript, is asked to confirm a reply
written before the learner's newest message. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helpdesk.config import DEFAULT_SUPPORT_ADDRESS
from tests.mail_factory import make_mail
from tests.peers.chromium import ARTIFACTS, launch_chromium, require_chromium
from tests.test_serve import free_port

DEMO = ("demo@helpdesk.local", "demo")
COLLEAGUE = ("ola.agent@helpdesk.local", "Ola Agent", "ola-passord-2026")
SUPPORT = DEFAULT_SUPPORT_ADDRESS  # the installation's own address (not a participant)


sync_api = require_chromium()
expect = sync_api.expect
pytest_plugins = ["tests.peers.redis"]


@dataclass
class Installation:
    base: str
    env: dict[str, str]
    mail_dir: Path

    def helpdesk(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "helpdesk", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def learner_writes(self, number: int, subject: str, body: str, sender: str) -> None:
        """A learner's mail, ingested by another process as an MTA pipe would."""
        path = self.mail_dir / f"{uuid.uuid4().hex}.eml"
        mail = make_mail(sender=sender, to=SUPPORT, subject=f"Re: {subject} [#{number}]", body=body)
        path.write_bytes(mail)
        outcome = json.loads(self.helpdesk("ingest", str(path)))
        assert (outcome["status"], outcome["ticket"]) == ("appended", number), outcome

    def start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "helpdesk", "worker"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0].decode()


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """Demo data served by `helpdesk serve` with Redis; yields the running installation."""
    redis_url = os.environ.get("HELPDESK_TEST_REDIS_URL", "").strip()
    if not redis_url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but HELPDESK_TEST_REDIS_URL is not set")
        pytest.skip("HELPDESK_TEST_REDIS_URL not set")
    root = tmp_path_factory.mktemp("live-browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env |= {
        "HELPDESK_DATA_DIR": str(root / "var"),
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'var' / 'helpdesk.db'}",
        "HELPDESK_REDIS_URL": redis_url,
        # This run's own task stream: other test runs may share the Redis database.
        "HELPDESK_TASK_QUEUE": f"helpdesk-test-live-{uuid.uuid4().hex[:8]}",
    }
    mail_dir = root / "mail"
    mail_dir.mkdir()
    port = free_port()
    setup = Installation(f"http://127.0.0.1:{port}", env, mail_dir)
    setup.helpdesk("migrate")
    setup.helpdesk("demo-data")
    email, name, password = COLLEAGUE
    setup.helpdesk("operator", "add", email, "--name", name, "--password-stdin", stdin=password)
    server = subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{setup.base}/readyz", timeout=1)
            break
        except httpx.TransportError:
            assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    try:
        yield setup
    finally:
        output = _stop(server)
        assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def browser(installation: Installation) -> Iterator[object]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def _signed_in_page(browser, base: str, email: str, password: str, **context_options):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, locale="nb-NO", **context_options
    )
    page = context.new_page()
    page.goto(f"{base}/inbox/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="All open")).to_be_visible()
    return page


def _open_ticket(page, subject: str) -> int:  # type: ignore[no-untyped-def]
    page.goto(re.sub(r"/inbox.*$", "/inbox?queue=all", page.url))
    page.get_by_role("link", name=re.compile(re.escape(subject))).first.click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(subject)))).to_be_visible()
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def _mark_page(page) -> None:  # type: ignore[no-untyped-def]
    """A marker that a reload or navigation would wipe."""
    page.evaluate("window.__stillTheSamePage = true")


def _same_page(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("window.__stillTheSamePage === true") is True


def test_new_mail_and_delivery_status_appear_without_reload(
    installation: Installation, browser
) -> None:
    subject = "Kursbevis mangler etter fullført HMS-kurs"
    page = _signed_in_page(browser, installation.base, *DEMO)
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    number = _open_ticket(page, subject)
    _mark_page(page)

    # The learner writes again; `helpdesk ingest` runs in its own process.
    installation.learner_writes(
        number,
        subject,
        "Jeg har sjekket søppelposten også, ingenting.",
        "Kari Nordmann <kari.nordmann@example.no>",
    )
    arrived = page.locator(".msg-learner").last
    expect(arrived).to_contain_text("sjekket søppelposten", timeout=15_000)
    expect(page.locator(".live-composer-notice")).to_contain_text("new message from the learner")
    assert _same_page(page)
    page.screenshot(path=str(ARTIFACTS / "inbox-live-new-message.png"), full_page=True)

    # A reply waits as Queued (no worker yet) and turns Sent when a worker delivers it.
    page.get_by_label(re.compile("^Reply to")).fill("Hei Kari! Vi sender kursbeviset på nytt nå.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_have_text("Reply queued for sending.")
    reply = page.locator(".msg-operator").last
    expect(reply).to_contain_text("sender kursbeviset på nytt")
    expect(reply.locator(".delivery")).to_have_text("Queued")
    _mark_page(page)
    page.screenshot(path=str(ARTIFACTS / "inbox-live-reply-queued.png"), full_page=True)
    worker = installation.start_worker()
    try:
        expect(reply.locator(".delivery")).to_have_text("Sent", timeout=30_000)
    finally:
        worker_output = _stop(worker)
    assert _same_page(page), "the status changed by a reload, not live"
    assert "Traceback" not in worker_output, worker_output
    page.screenshot(path=str(ARTIFACTS / "inbox-live-reply-sent.png"), full_page=True)
    page.context.close()
    assert csp_violations == []


def test_two_operators_see_each_other_and_who_is_typing(
    installation: Installation, browser
) -> None:
    subject = "Samarbeid om kurs for 30 ansatte?"
    demo = _signed_in_page(browser, installation.base, *DEMO)
    email, _, password = COLLEAGUE
    ola = _signed_in_page(browser, installation.base, email, password)
    _open_ticket(demo, subject)
    _open_ticket(ola, subject)

    expect(demo.locator(".presence")).to_contain_text("Ola Agent", timeout=10_000)
    expect(ola.locator(".presence")).to_contain_text("Demo Operatør", timeout=10_000)

    ola.get_by_label(re.compile("^Reply to")).type("Hei! Vi har bedriftspriser ", delay=30)
    expect(demo.locator(".presence")).to_contain_text("Ola Agent is typing a reply", timeout=10_000)
    demo.screenshot(path=str(ARTIFACTS / "inbox-live-presence-typing.png"))

    ola.get_by_label(re.compile("^Internal note")).type("Sjekker prislisten", delay=30)
    expect(demo.locator(".presence")).to_contain_text("Ola Agent is typing a note", timeout=10_000)

    # Ola closes the tab: gone from Demo's page at once, not only after the 30 s expiry.
    ola.context.close()
    expect(demo.locator(".presence")).to_be_hidden(timeout=10_000)
    demo.context.close()


def test_without_javascript_a_reply_after_newer_learner_mail_asks_first(
    installation: Installation, browser
) -> None:
    subject = "Faktura til arbeidsgiver"
    page = _signed_in_page(browser, installation.base, *DEMO, java_script_enabled=False)
    number = _open_ticket(page, subject)
    page.get_by_label(re.compile("^Reply to")).fill("Kva er fakturaadressa?")

    installation.learner_writes(
        number,
        subject,
        "Fakturaadressa er faktura@vestland-elektro.example.",
        "Åse Ødegård <aase.odegard@example.no>",
    )
    page.get_by_role("button", name="Send reply").click()

    confirm = page.get_by_role("alert").filter(has_text="A newer message from the learner")
    expect(confirm).to_contain_text("send anyway?")
    expect(page.locator(".msg-learner").last).to_contain_text("faktura@vestland-elektro")
    expect(page.get_by_label(re.compile("^Reply to"))).to_have_value("Kva er fakturaadressa?")
    page.screenshot(path=str(ARTIFACTS / "inbox-live-collision.png"), full_page=True)

    page.get_by_label(re.compile("^Reply to")).fill("Takk, Åse! Fakturaen kjem i dag.")
    page.get_by_role("button", name="Send anyway").click()
    expect(page.get_by_role("status")).to_have_text("Reply queued for sending.")
    expect(page.locator(".msg-operator").last).to_contain_text("Fakturaen kjem i dag")
    page.context.close()


def test_the_queue_page_shows_new_tickets_and_counts_without_reload(
    installation: Installation, browser
) -> None:
    page = _signed_in_page(browser, installation.base, *DEMO)
    unassigned = page.locator('.queue-nav a[href="/inbox?queue=unassigned"] .count')
    before = int(unassigned.inner_text())
    _mark_page(page)

    path = installation.mail_dir / "new-ticket.eml"
    path.write_bytes(
        make_mail(
            sender="Lise Berg <lise.berg@example.no>",
            to=SUPPORT,
            subject="Når er neste kursdato for truckførerkurs?",
            body="Hei! Vi er fire som vil ta truckførerkurs i januar.",
        )
    )
    outcome = json.loads(installation.helpdesk("ingest", str(path)))
    assert outcome["status"] == "created"

    row = page.locator(".ticket-list .ticket-row").first
    expect(row).to_contain_text("neste kursdato for truckførerkurs", timeout=15_000)
    expect(row).to_have_class(re.compile(r"\bis-new\b"))
    expect(unassigned).to_have_text(str(before + 1))
    assert _same_page(page)
    page.screenshot(path=str(ARTIFACTS / "inbox-live-queue.png"), full_page=True)
    page.context.close()
