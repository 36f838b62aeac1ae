"""Scheduled privacy work: confirmation links, platform events, finishing erasures, daily
deadline reminders and hourly clean-up of expired links, exports and delivered events."""

from __future__ import annotations

from taskiq import TaskiqDepends

from helpdesk.bootstrap import Runtime
from helpdesk.broker import background_task, provide_runtime
from helpdesk.db import transaction
from helpdesk.privacy import scrub, upkeep, webhook

DAILY_REMINDERS = {
    "cron": "0 7 * * *",
    "cron_offset": "Europe/Oslo",
    "schedule_id": "privacy-reminders",
}
HOURLY_CLEAN_UP = {"cron": "23 * * * *", "schedule_id": "privacy-links-clean-up"}


def every_minute(schedule_id: str) -> dict[str, str]:
    """A schedule label: every minute, under this id."""
    return {"cron": "* * * * *", "schedule_id": schedule_id}


@background_task("privacy.send_verifications", schedule=[every_minute("privacy-verifications")])
async def send_verifications(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Confirmation links for requests that started without one (e.g. the web form)."""
    async with transaction(runtime.sessions) as session:
        return await upkeep.send_pending_verifications(
            session, runtime.settings, runtime.clock.now()
        )


@background_task("privacy.deliver_platform_events", schedule=[every_minute("platform-events")])
async def deliver_platform_events(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Signed webhook events to the course platform, retried with back-off until a 2xx."""
    return await webhook.deliver_due_events(runtime)


@background_task("privacy.finish_erasures", schedule=[every_minute("finish-erasures")])
async def finish_erasures(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Scrub erasure requests whose confirmation mail has gone; compact the database."""
    return await scrub.finish_erasures(runtime)


@background_task("privacy.remind_deadlines", schedule=[DAILY_REMINDERS])
async def remind_deadlines(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Operators hear 7 and 2 days before a privacy request is due."""
    async with transaction(runtime.sessions) as session:
        return await upkeep.remind_deadlines(session, runtime.settings, runtime.clock.now())


@background_task("privacy.clean_expired_links", schedule=[HOURLY_CLEAN_UP])
async def clean_expired_links(runtime: Runtime = TaskiqDepends(provide_runtime)) -> int:
    """Expired confirmation and export links go, and the export files with them; platform
    events delivered more than 30 days ago go too."""
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        removed = await upkeep.clean_expired_links(session, runtime.storage, now)
        return removed + await upkeep.clean_delivered_events(session, now)
