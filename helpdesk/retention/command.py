"""`helpdesk retention [--dry-run] [--now ISO-8601]`: one run, its JSON report on stdout."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from helpdesk.bootstrap import build_runtime
from helpdesk.config import Settings
from helpdesk.retention.lease import JobBusy
from helpdesk.retention.service import Progress, run_retention

EX_USAGE = 64
EX_TEMPFAIL = 75


def parse_now(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is UTC (DESIGN §5). ValueError if bad."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def _progress_on_terminal() -> Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(category: str, count: int) -> None:
        sys.stderr.write(f"\r{category}: {count} deleted\033[K")
        sys.stderr.flush()

    return show


async def run_command(settings: Settings, dry_run: bool, now_text: str | None) -> int:
    """Run once and print the report; exit 64 for a bad --now, 75 if a run is under way."""
    try:
        now = parse_now(now_text) if now_text else None
    except ValueError:
        print(f"helpdesk retention: --now {now_text!r} is not an ISO 8601 time", file=sys.stderr)
        return EX_USAGE
    runtime = build_runtime(settings)
    progress = _progress_on_terminal()
    try:
        report = await run_retention(
            runtime, now=now, dry_run=dry_run, trigger="cli", progress=progress
        )
    except JobBusy as busy:
        print(f"helpdesk retention: {busy}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        await runtime.close()
    if progress is not None:
        sys.stderr.write("\n")
    print(json.dumps(report.as_json(), indent=2))
    return 0
