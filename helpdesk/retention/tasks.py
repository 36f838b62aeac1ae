"""Scheduled retention work: the daily run at 03:15 Oslo time, an hourly clean-up of expired
codes, links, exports and sessions, and closing quiet solved tickets.

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
from helpdesk.retention.service import purge_short_windows, run_retention

log = logging.getLogger("helpdesk.retention.tasks")

# Oslo time, so the run stays at night across daylight saving time changes.
DAILY_RUN = {"cron": "15 3 * * *", "cron_offset": "Europe/Oslo", "schedule_id": "retention-daily"}
HOURLY_CLOSE = {"cron": "40 * * * *", "schedule_id": "close-solved-tickets"}
HOURLY_PURGE = {"cron": "5 * * * *", "schedule_id": "purge-short-windows"}


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


@background_task("retention.purge_short_windows", schedule=[HOURLY_PURGE])
async def purge_expired_links(runtime: Runtime = TaskiqDepends(provide_runtime)) -> dict[str, int]:
    """Expired one-time codes, privacy links, export files and ended sessions, every hour."""
    return await purge_short_windows(runtime)
