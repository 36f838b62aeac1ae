"""Server-Sent Events of a widget conversation: operator replies the moment they commit.

Subscribes to the ticket's live channel first, then catches up from `Last-Event-ID`, so
nothing committed in between is missed. Each event on the channel is only a nudge: the
stream re-reads the messages newer than the last one it sent (learner-visible ones only,
never notes) and sends those, `id:` being the message id so a reconnecting browser
resumes exactly there. A comment line every 15 seconds keeps proxies from closing an
idle stream; after 30 minutes the stream ends and the browser reconnects by itself.
The stream holds no database connection while it waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec

from helpdesk.bootstrap import Runtime
from helpdesk.db import reading
from helpdesk.widget.feed import conversation_ticket, learner_feed

HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 30 * 60
RETRY_MS = 2000
_ENCODER = msgspec.json.Encoder()


def sse_message(message_id: int, data: bytes) -> bytes:
    """One `message` event (the JSON has no newlines, so one data line)."""
    return b"id: %d\nevent: message\ndata: %s\n\n" % (message_id, data)


def parse_last_event_id(value: str | None) -> int | None:
    """The message id the browser saw last, or None for a fresh start."""
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


async def conversation_events(
    runtime: Runtime,
    conversation_id: int,
    ticket_id: int,
    last_id: int | None,
    *,
    heartbeat: float | None = None,
    lifetime: float | None = None,
) -> AsyncIterator[bytes]:
    """The event stream's bytes until the lifetime ends or the client goes away."""
    heartbeat = heartbeat or HEARTBEAT_SECONDS
    yield b"retry: %d\n\n" % RETRY_MS
    deadline = time.monotonic() + (lifetime or STREAM_SECONDS)
    async with runtime.pubsub.subscribe(f"ticket:{ticket_id}") as subscription:
        kind = "resync"  # at the start: catch up, and make sure the conversation is here
        while True:
            async with reading(runtime.engine) as connection:
                # "ticket" (status, or the conversation moved on): only the move matters;
                # "message": only the new messages; "resync": both.
                if (
                    kind != "message"
                    and await conversation_ticket(connection, conversation_id) != ticket_id
                ):
                    return  # the conversation went on in a follow-up ticket: reconnect there
                fresh = (
                    await learner_feed(connection, ticket_id, after=last_id)
                    if kind != "ticket"
                    else []
                )
            for message in fresh:
                yield sse_message(message.id, _ENCODER.encode(message))
                last_id = message.id
            event = None
            while event is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                event = await subscription.next_within(min(heartbeat, remaining))
                if event is None:
                    yield b": heartbeat\n\n"
                elif event.data.get("type") not in ("message", "resync", "ticket"):
                    event = None
            kind = str(event.data.get("type"))
