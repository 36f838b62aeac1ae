"""Signed events to the course platform (DESIGN §6), through an outbox retried until a 2xx.

`POST $HELPDESK_PLATFORM_WEBHOOK_URL` with `{"id", "type", "external_id", "occurred_at"}`
and `X-Helpdesk-Signature: sha256=<hex HMAC-SHA256 of the body>`. The row is written in
the transaction of the change it reports, so an event is never lost nor sent for a change
that rolled back; the platform deduplicates by `id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import PlatformEvent
from helpdesk.models.privacy import PLATFORM_EVENT_TYPES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Helpdesk-Signature"
# Claimed rows are not picked up again for this long, so two workers never send one event
# at the same time; a crash mid-send retries after the lease.
CLAIM_LEASE = timedelta(minutes=2)
MAX_DELAY = timedelta(hours=6)
BATCH = 50


async def queue_platform_event(
    session: AsyncSession, event_type: str, external_id: str, *, now: datetime
) -> PlatformEvent:
    """Write the event in the caller's transaction; the webhook task delivers it."""
    if event_type not in PLATFORM_EVENT_TYPES:
        raise ValueError(f"event type must be one of {PLATFORM_EVENT_TYPES}")
    event = PlatformEvent(
        event_id=str(uuid.uuid4()),
        type=event_type,
        external_id=external_id,
        occurred_at=now,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(event)
    return event


def event_body(event: PlatformEvent) -> bytes:
    """The JSON body exactly as signed and sent."""
    document = {
        "id": event.event_id,
        "type": event.type,
        "external_id": event.external_id,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off from one minute, at most six hours."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_DELAY)


async def deliver_due_events(runtime: Runtime, client: httpx.AsyncClient | None = None) -> int:
    """Send every due event once; returns how many the platform acknowledged."""
    settings = runtime.settings
    if not settings.platform_webhook_url or not settings.platform_webhook_secret:
        return 0
    events = await _claim_due(runtime)
    if not events:
        return 0
    acknowledged = 0
    owned = client is None
    http = client or httpx.AsyncClient(timeout=10.0)
    try:
        for event in events:
            error = await _post(
                http, settings.platform_webhook_url, settings.platform_webhook_secret, event
            )
            await _record_outcome(runtime, event, error)
            acknowledged += error is None
    finally:
        if owned:
            await http.aclose()
    return acknowledged


async def _claim_due(runtime: Runtime) -> list[PlatformEvent]:
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        due = list(
            await session.scalars(
                select(PlatformEvent)
                .where(
                    col(PlatformEvent.status) == "pending",
                    col(PlatformEvent.next_attempt_at) <= now,
                )
                .order_by(col(PlatformEvent.id))
                .limit(BATCH)
            )
        )
        claimed = []
        for event in due:
            # Optimistic claim: only one process moves next_attempt_at from the value it read.
            result = await session.execute(
                update(PlatformEvent)
                .where(
                    col(PlatformEvent.id) == event.id,
                    col(PlatformEvent.next_attempt_at) == event.next_attempt_at,
                )
                .values(next_attempt_at=now + CLAIM_LEASE)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(event)
        session.expunge_all()
        return claimed


async def _post(http: httpx.AsyncClient, url: str, secret: str, event: PlatformEvent) -> str | None:
    body = event_body(event)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def _record_outcome(runtime: Runtime, event: PlatformEvent, error: str | None) -> None:
    now = runtime.clock.now()
    attempts = event.attempts + 1
    values: dict[str, object]
    if error is None:
        values = {
            "status": "delivered",
            "delivered_at": now,
            "next_attempt_at": None,
            "last_error": None,
        }
    else:
        log.warning(
            "platform event %s (%s) not acknowledged: %s", event.event_id, event.type, error
        )
        values = {"next_attempt_at": now + retry_delay(attempts), "last_error": error[:500]}
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(PlatformEvent)
            .where(col(PlatformEvent.id) == event.id)
            .values(attempts=attempts, **values)
        )
