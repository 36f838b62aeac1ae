"""`helpdesk retention` as an operator runs it: the JSON report of DESIGN §5."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.bootstrap import build_runtime
from helpdesk.config import load_settings
from tests.retention_factory import old_ticket
from tests.test_cli import run_cli

CATEGORIES = [
    "threads",
    "delivery_logs",
    "audit_events",
    "one_time_codes",
    "privacy_links",
    "exports",
    "sessions",
    "ignored_mail",
    "order_bookkeeping",
]


@pytest.fixture
def installation(tmp_path: Path) -> dict[str, str]:
    """A migrated embedded installation with one expired and one held ticket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    migrated = run_cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr

    async def seed() -> None:
        runtime = build_runtime(load_settings(env))
        try:
            await old_ticket(runtime, datetime(2024, 2, 29, 12, 0, tzinfo=UTC))
            await old_ticket(
                runtime,
                datetime(2023, 6, 1, tzinfo=UTC),
                legal_hold_until=datetime(2027, 1, 1).date(),
                legal_hold_reason="Reklamasjon",
            )
        finally:
            await runtime.close()

    asyncio.run(seed())
    return env


def test_dry_run_prints_the_report_and_changes_nothing(installation: dict[str, str]) -> None:
    first = run_cli(installation, "retention", "--dry-run", "--now", "2026-02-28T12:00:01")
    second = run_cli(installation, "retention", "--dry-run", "--now", "2026-02-28T12:00:01Z")

    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report == json.loads(second.stdout)
    assert list(report) == ["dry_run", "now", "categories", "held"]
    assert report["dry_run"] is True
    assert report["now"] == "2026-02-28T12:00:01+00:00"
    assert list(report["categories"]) == CATEGORIES
    assert report["categories"]["threads"] == {
        "count": 1,
        "oldest": "2024-02-29T12:00:00+00:00",
        "newest": "2024-02-29T12:00:00+00:00",
    }
    assert report["held"] == [1002]


def test_real_run_deletes_and_reports_the_same_shape(installation: dict[str, str]) -> None:
    too_early = run_cli(installation, "retention", "--now", "2026-02-28T12:00:00+00:00")
    run = run_cli(installation, "retention", "--now", "2026-02-28T13:00:00+01:00")
    again = run_cli(installation, "retention", "--now", "2026-03-01T00:00:00")

    assert json.loads(too_early.stdout)["categories"]["threads"]["count"] == 0
    report = json.loads(run.stdout)
    assert report["dry_run"] is False and report["now"] == "2026-02-28T12:00:00+00:00"
    assert report["categories"]["threads"]["count"] == 0  # 12:00 exactly is not "more than"
    assert json.loads(again.stdout)["categories"]["threads"]["count"] == 1
    assert json.loads(again.stdout)["held"] == [1002]
    assert run.stderr == ""  # no progress lines when stderr is not a terminal


def test_bad_now_and_bad_window_are_refused_with_a_clear_line(
    installation: dict[str, str],
) -> None:
    bad_now = run_cli(installation, "retention", "--now", "yesterday")
    bad_window = run_cli(
        {**installation, "HELPDESK_RETENTION_THREADS_MONTHS": "two years"}, "retention"
    )

    assert bad_now.returncode == 64 and "--now 'yesterday'" in bad_now.stderr
    assert bad_window.returncode == 78
    assert bad_window.stderr.strip() == (
        "HELPDESK_RETENTION_THREADS_MONTHS: expected a whole number from 1 to 240"
    )
