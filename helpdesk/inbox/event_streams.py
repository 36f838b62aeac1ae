"""What the inbox's Server-Sent Event streams share: event encoding, heartbeats, sign-out.

A stream lives as long as the page: a comment line every `HEARTBEAT_SECONDS` keeps proxies
from closing an idle connection and lets the server notice a closed tab; at each heartbeat
the stream also checks that its session is still valid, so signing out (or an admin
disabling the operator) ends the live updates of every open tab within that time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from litestar.response import ServerSentEventMessage
from sqlalchemy import select
from sqlmodel import col

from helpdesk.adapters.pubsub import Event, PubSub, Subscription
from helpdesk.bootstrap import Runtime
from helpdesk.models import Operator, OperatorSession
from helpdesk.operators.service import hash_token

log = logging.getLogger("helpdesk.inbox.live")

HEARTBEAT_SECONDS = 15.0
# How long the browser waits before reconnecting after the stream ended (EventSource).
RETRY_MILLISECONDS = 3000
# After a nudge, events arriving within this window are taken together (one re-read).
SETTLE_SECONDS = 0.05
MAX_SETTLE_EVENTS = 200

# Publications made while a stream closes, kept so they are not garbage-collected.
_IN_FLIGHT: set[asyncio.Task[None]] = set()


def sse(name: str, data: Mapping[str, Any], event_id: int | None = None) -> ServerSentEventMessage:
    """One named event with a JSON payload (`id` is what the browser resumes from)."""
    payload = json.dumps(dict(data), ensure_ascii=False, separators=(",", ":"))
    return ServerSentEventMessage(data=payload, event=name, id=event_id)


def opening() -> ServerSentEventMessage:
    """The first bytes of a stream: the reconnect delay (no event for the page)."""
    return ServerSentEventMessage(data=None, comment="live updates", retry=RETRY_MILLISECONDS)


def heartbeat() -> ServerSentEventMessage:
    return ServerSentEventMessage(data=None, comment="keep-alive")


async def still_signed_in(runtime: Runtime, token: str) -> bool:
    """True while the session of the stream's cookie is valid (read only, no renewal)."""
    async with runtime.sessions() as session:
        found = (
            await session.execute(
                select(
                    col(OperatorSession.revoked_at),
                    col(OperatorSession.expires_at),
                    col(Operator.active),
                )
                .join(Operator, col(Operator.id) == col(OperatorSession.operator_id))
                .where(col(OperatorSession.token_hash) == hash_token(token))
            )
        ).first()
    if found is None:
        return False
    revoked_at, expires_at, active = found
    return revoked_at is None and expires_at > runtime.clock.now() and bool(active)


async def settle(subscription: Subscription) -> list[Event]:
    """Events that follow within `SETTLE_SECONDS` of each other (a burst of nudges)."""
    events: list[Event] = []
    while len(events) < MAX_SETTLE_EVENTS:
        event = await subscription.next_within(SETTLE_SECONDS)
        if event is None:
            break
        events.append(event)
    return events


def publish_detached(pubsub: PubSub, channel: str, data: dict[str, Any]) -> None:
    """Publish without waiting: for a stream that is being cancelled (its tab closed)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(pubsub.publish(channel, data))
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)
