"""A privacy request in real browsers: Debian's Chromium driven by Playwright against
`helpdesk serve` (embedded mode, demo data). The learner's mail comes in through
`helpdesk ingest`; the operator confirms it in the inbox; the learner follows the mailed
link (the GET page, then its button), the operator fulfils, and the learner downloads the
export. No Content-Security-Policy violations; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import email
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from email.policy import default
from pathlib import Path

import pytest

from tests.mail_factory import make_mail
from tests.peers.chromium import ARTIFACTS, launch_chromium
from tests.test_inbox_browser import server, sync_api  # noqa: F401 - server is a fixture

__all__ = ["server"]


def _env(tmp_path: Path) -> dict[str, str]:
    # The same installation as the `server` fixture's (it uses this test's tmp_path too).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    return env


def _ingest(env: dict[str, str], raw: bytes) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", "ingest"],
        input=raw,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    outcome = json.loads(result.stdout.decode().splitlines()[0])
    assert outcome["status"] == "created", outcome
    return int(outcome["ticket"])


def _link_in_outbox(outbox: Path, kind: str) -> str:
    """The path of the newest privacy link of this kind in the .eml files the embedded mode
    writes (the links carry HELPDESK_BASE_URL, here the default, not the test's port)."""
    deadline = time.monotonic() + 20
    pattern = re.compile(rf"https?://[^\s\"<>/]+(/privacy/{kind}/[A-Za-z0-9_-]+)")
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            body = message.get_body(preferencelist=("plain",))
            found = pattern.search(body.get_content() if body is not None else "")
            if found:
                return found.group(1)
        time.sleep(0.3)
    raise AssertionError(f"no /privacy/{kind}/ link was mailed")


@pytest.mark.usefixtures("server")
def test_access_request_through_inbox_and_learner_links(server: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    env = _env(tmp_path)
    number = _ingest(
        env,
        make_mail(
            sender="Jonas Berg <jonas.berg@example.com>",
            subject="GDPR",
            body="Hello, this is an access request: please send me a copy of my personal data.",
        ),
    )
    outbox = tmp_path / "var" / "outbox"
    csp_violations: list[str] = []
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)

        def new_page(locale: str):  # type: ignore[no-untyped-def]
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, locale=locale, accept_downloads=True
            )
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    csp_violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            return page

        operator = new_page("nb-NO")
        operator.goto(f"{server}/inbox/login")
        operator.get_by_label("Email").fill("demo@helpdesk.local")
        operator.get_by_label("Password").fill("demo")
        operator.get_by_role("button", name="Sign in").click()

        # The detected request waits in the privacy list; the ticket page shows the card.
        operator.goto(f"{server}/inbox/tickets/{number}")
        expect(operator.get_by_role("heading", name="Privacy")).to_be_visible()
        operator.get_by_role("link", name="Open the privacy request").click()
        expect(operator.get_by_role("heading", name=re.compile("Access request"))).to_be_visible()
        operator.screenshot(path=str(ARTIFACTS / "privacy-suggested.png"), full_page=True)
        operator.get_by_role("button", name="Confirm").click()
        expect(operator.get_by_role("heading", name="Waiting for the learner")).to_be_visible()

        # The learner opens the mailed link: a page (nothing happens yet), then the button.
        learner = new_page("en-GB")
        learner.goto(server + _link_in_outbox(outbox, "verify"))
        expect(learner.get_by_role("heading", name="Confirm your privacy request")).to_be_visible()
        learner.screenshot(path=str(ARTIFACTS / "privacy-verify.png"), full_page=True)
        learner.get_by_role("button", name=re.compile("Yes, it was me")).click()
        expect(
            learner.get_by_role("heading", name=re.compile("your request is confirmed"))
        ).to_be_visible()

        operator.reload()
        operator.get_by_role("button", name="Fulfil access").click()
        expect(operator.get_by_text(re.compile("Export sent"))).to_be_visible()
        operator.screenshot(path=str(ARTIFACTS / "privacy-completed.png"), full_page=True)

        learner.goto(server + _link_in_outbox(outbox, "exports"))
        expect(learner.get_by_role("heading", name="Download your data")).to_be_visible()
        with learner.expect_download() as download_info:
            learner.get_by_role("button", name="Download").click()
        archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))
        data = json.loads(archive.read("data.json"))
        assert data["profile"]["email"] == "jonas.berg@example.com"
        assert any(t["number"] == number for t in data["tickets"])
        assert "Your data at customer support" in archive.read("summary.html").decode()
        browser.close()
    assert csp_violations == []
