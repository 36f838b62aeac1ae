"""Debian's Chromium for the browser tests, driven by Playwright (never `playwright install`).

`require_chromium()` at the top of a browser test module skips it when /usr/bin/chromium
is missing — except under CI=true, where that fails the run. Screenshots go to
`ARTIFACTS` (test-artifacts/ at the top of the checkout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> Any:
    """Playwright's sync API, once Chromium is known to be there (call at import)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but /usr/bin/chromium is missing (apt-get install chromium)")
        pytest.skip("/usr/bin/chromium is not installed", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from Debian's package."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
