"""Scheduled retention work: the daily run at 03:15 Oslo time and closing quiet solved tickets.

The outbox sweep every minute is `outbound.deliver_outbox` (helpdesk/outbound/tasks.py).
"""

from __future__ import annotations

import logging
from typing import Any

from taskiq import TaskiqDepends

from helpdesk.bootstrap import Runtime
from helpdesk.broker import background_task, provide_runtime
from helpdesk.retention.closing import close_quiet_solved_tickets
from helpdesk.retention.lease import JobBusy
from helpdesk.retention.service import run_retention

log = logging.getLogger("helpdesk.retention.tasks")

# Oslo time, so the run stays at night across daylight saving time changes.
DAILY_RUN = {"cron": "15 3 * * *", "cron_offset": "Europe/Oslo", "schedule_id": "retention-daily"}
HOURLY_CLOSE = {"cron": "40 * * * *", "schedule_id": "close-solved-tickets"}


@background_task("retention.run_policy", schedule=[DAILY_RUN])
async def run_policy(runtime: Runtime = TaskiqDepends(provide_runtime)) -> dict[str, Any]:
    """Apply the retention policy; a run already under way elsewhere makes this one skip."""
    try:
        report = await run_retention(runtime, trigger="schedule")
    except JobBusy as busy:
        log.info("retention skipped: %s", busy)
        return {"skipped": str(busy)}
    return report.as_json()


@background_task("retention.close_solved_tickets", schedule=[HOURLY_CLOSE])
async def close_solved_tickets(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Close solved tickets that have been quiet for the configured number of days."""
    days = runtime.settings.retention.auto_close_days
    return await close_quiet_solved_tickets(runtime.sessions, now=runtime.clock.now(), days=days)
