"""The live event stream of an open ticket page: new messages, delivery, fields, presence.

Events on `ticket:<id>` are nudges. After each one (and after a `resync`, when the pub/sub
may have lost some) the stream re-reads the ticket and sends the page what it does not
show yet (`helpdesk.inbox.ticket_updates`). Every event carries the id of the newest
message sent as its SSE `id`, so a browser that reconnects (`Last-Event-ID`) gets exactly
the messages it missed. Presence events of the same channel update who else is here.

Events sent: `message` {id, side, after, html} (`after`: the message it follows),
`removed` {ids} (moved, split off or merged away), `delivery` {message, status, label},
`ticket` {status, status_label, priority, …}, `presence` {people: [{name, initials,
typing}]}, `gone` (the ticket was deleted) and `signed-out`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from litestar.response import ServerSentEventMessage

from helpdesk.adapters.pubsub import Event, Subscription
from helpdesk.bootstrap import Runtime
from helpdesk.inbox.conversation import ConversationItem
from helpdesk.inbox.event_streams import (
    HEARTBEAT_SECONDS,
    heartbeat,
    opening,
    publish_detached,
    settle,
    sse,
    still_signed_in,
)
from helpdesk.inbox.presence import (
    PRESENCE_REFRESH,
    Roster,
    announce_presence,
    presence_event,
)
from helpdesk.inbox.ticket_updates import TicketView, catch_up
from helpdesk.models import Operator

log = logging.getLogger("helpdesk.inbox.live")


@dataclass(frozen=True)
class TicketWatch:
    """Who watches which ticket from which tab, and how the page renders a message."""

    runtime: Runtime
    operator: Operator
    session_token: str
    tab: str
    render_message: Callable[[ConversationItem], str]


async def ticket_events(
    watch: TicketWatch, view: TicketView
) -> AsyncIterator[ServerSentEventMessage]:
    """The page's events until the tab closes, the session ends or the ticket is deleted."""
    stream = _TicketStream(watch, view)
    async with watch.runtime.pubsub.subscribe(stream.channel) as subscription:
        try:
            yield opening()
            await stream.announce("hello")
            while not stream.finished:
                for message in await stream.catch_up():
                    yield message
                for message in stream.presence():
                    yield message
                if not stream.finished:
                    await stream.wait_for_nudges(subscription)
                    for message in await stream.on_time():
                        yield message
        finally:
            # The tab closed (the stream is being cancelled): others see it leave at once.
            stream.leave()


class _TicketStream:
    """The state of one ticket page's stream between its events."""

    def __init__(self, watch: TicketWatch, view: TicketView) -> None:
        self.watch, self.view = watch, view
        self.channel = f"ticket:{view.ticket_id}"
        self.roster = Roster(watch.tab)
        self.people: list[dict[str, object]] | None = None
        self.stale, self.finished = True, False
        now = time.monotonic()
        self.next_beat, self.next_refresh = now + HEARTBEAT_SECONDS, now + PRESENCE_REFRESH

    async def announce(self, state: str) -> None:
        """This tab's presence, on the ticket's channel."""
        watch = self.watch
        await announce_presence(
            watch.runtime.pubsub, self.view.ticket_id, watch.tab, watch.operator, state
        )

    def leave(self) -> None:
        event = presence_event(self.watch.tab, self.watch.operator, "left")
        publish_detached(self.watch.runtime.pubsub, self.channel, event)

    async def catch_up(self) -> list[ServerSentEventMessage]:
        """What the page misses, when something may have changed."""
        if not self.stale:
            return []
        self.stale = False
        events, self.finished = await _catch_up(self.watch, self.view)
        return events

    def presence(self) -> list[ServerSentEventMessage]:
        """The others on the ticket, when they changed since the page was told."""
        now = time.monotonic()
        self.roster.expire(now)
        people = self.roster.others(self.watch.operator.id, now)
        if people == self.people:
            return []
        self.people = people
        return [sse("presence", {"people": people}, self.view.last_message_id)]

    async def wait_for_nudges(self, subscription: Subscription) -> None:
        """Wait for channel events (or the next timer) and take in every one that came."""
        now = time.monotonic()
        waits = [self.next_beat - now, self.next_refresh - now, self.roster.next_change(now)]
        event = await subscription.next_within(max(0.01, min(w for w in waits if w is not None)))
        if event is not None:
            for each in [event, *await settle(subscription)]:
                self.stale = await self._take(each) or self.stale

    async def on_time(self) -> list[ServerSentEventMessage]:
        """Re-announce this tab, and at each heartbeat check the session and re-read."""
        now = time.monotonic()
        if now >= self.next_refresh:
            await self.announce("viewing")
            self.next_refresh = now + PRESENCE_REFRESH
        if now < self.next_beat:
            return []
        if not await still_signed_in(self.watch.runtime, self.watch.session_token):
            self.finished = True
            return [sse("signed-out", {})]
        # Also re-read now and then: a change made by a process that could not nudge this
        # one (`helpdesk ingest` in the embedded mode, an event lost with Redis).
        self.stale = True
        self.next_beat = now + HEARTBEAT_SECONDS
        return [heartbeat()]

    async def _take(self, event: Event) -> bool:
        """Apply one channel event; True when the ticket must be re-read."""
        kind = event.data.get("type")
        if kind == "presence":
            self.roster.apply(event.data, time.monotonic())
            if event.data.get("state") == "hello" and event.data.get("tab") != self.watch.tab:
                await self.announce("viewing")  # a newcomer learns of us without waiting
            return False
        if kind == "resync":  # events may have been lost, presence included
            await self.announce("hello")
        return True  # message, ticket, delivery, resync, or anything new: re-read


async def _catch_up(
    watch: TicketWatch, view: TicketView
) -> tuple[list[ServerSentEventMessage], bool]:
    """The events that bring the page up to date, and whether the stream should end."""
    try:
        async with watch.runtime.sessions() as session:
            changes = await catch_up(session, view)
            # Rendered while the session is open: templates may read related rows.
            rendered = [(new, watch.render_message(new.item)) for new in changes.messages]
    except Exception:
        # The browser reconnects after the retry delay and catches up from its last id.
        log.exception("live updates of ticket %s could not be read", view.ticket_id)
        return [], True
    if changes.gone:
        return [sse("gone", {})], True
    events = []
    if changes.removed:
        events.append(sse("removed", {"ids": changes.removed}, view.last_message_id))
    for new, html in rendered:
        message_id, side = new.item.row.message.id, new.item.side
        payload = {"id": message_id, "side": side, "after": new.after, "html": html}
        events.append(sse("message", payload, view.last_message_id))
    for message_id, (status, label) in changes.delivery.items():
        payload = {"message": message_id, "status": status, "label": label}
        events.append(sse("delivery", payload, view.last_message_id))
    if changes.facts is not None:
        events.append(sse("ticket", changes.facts, view.last_message_id))
    return events, False
