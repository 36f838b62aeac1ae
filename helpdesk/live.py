"""Live updates announced inside a transaction and published only after it commits.

Services call `announce(session, channel, data)` next to the change they make; nothing is
sent if the transaction rolls back, and subscribers never hear of a message before they can
read it. The session factory carries the pub/sub (`session_info`), so HTTP handlers, CLI
commands and workers all announce the same way without passing the pub/sub around.

Channels: `ticket:<id>` (`{"type": "message", "message": id}`, `{"type": "ticket"}` for
status/assignee/… changes) and `inbox` (`{"type": "ticket", "ticket": number}`: a queue
may have changed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from helpdesk.adapters.pubsub import PubSub

log = logging.getLogger("helpdesk.live")

_PUBSUB = "helpdesk.pubsub"
_PENDING = "helpdesk.live_events"
# Publishing tasks still running; kept so they are not garbage-collected mid-flight.
_IN_FLIGHT: set[asyncio.Task[None]] = set()


def session_info(pubsub: PubSub) -> dict[str, Any]:
    """The `info` of a session factory whose sessions publish their announcements."""
    return {_PUBSUB: pubsub}


def announce(session: AsyncSession | Session, channel: str, data: dict[str, Any]) -> None:
    """Publish `data` on `channel` once this session's transaction commits."""
    pending = session.info.setdefault(_PENDING, [])
    if (channel, data) not in pending:  # one nudge per change is enough
        pending.append((channel, data))


def announce_ticket_message(session: AsyncSession | Session, ticket: Any, message_id: int) -> None:
    """A message was added to a ticket (any direction, any channel)."""
    announce(session, f"ticket:{ticket.id}", {"type": "message", "message": message_id})
    announce(session, "inbox", {"type": "ticket", "ticket": ticket.number})


def announce_ticket_change(session: AsyncSession | Session, ticket: Any) -> None:
    """A ticket's status, assignee, priority, tags or links changed."""
    announce(session, f"ticket:{ticket.id}", {"type": "ticket"})
    announce(session, "inbox", {"type": "ticket", "ticket": ticket.number})


@event.listens_for(Session, "after_commit")
def _publish_announced(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    pubsub: PubSub | None = session.info.get(_PUBSUB)
    if not pending or pubsub is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a synchronous session outside the event loop: nobody listens
        return
    task = loop.create_task(pubsub.publish_all(pending))
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)


@event.listens_for(Session, "after_rollback")
def _forget_announced(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def wait_for_published() -> None:
    """Let announcements already committed reach the pub/sub (tests, orderly shutdown)."""
    if _IN_FLIGHT:
        await asyncio.gather(*tuple(_IN_FLIGHT), return_exceptions=True)
