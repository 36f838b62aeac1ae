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

from helpdesk.adapters.pubsub import Event
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
    pubsub, operator, tab = watch.runtime.pubsub, watch.operator, watch.tab
    channel = f"ticket:{view.ticket_id}"
    roster = Roster(tab)
    async with pubsub.subscribe(channel) as subscription:
        try:
            yield opening()
            await announce_presence(pubsub, view.ticket_id, tab, operator, "hello")
            stale, people = True, None
            next_beat = time.monotonic() + HEARTBEAT_SECONDS
            next_refresh = time.monotonic() + PRESENCE_REFRESH
            while True:
                if stale:
                    messages, finished = await _catch_up(watch, view)
                    for message in messages:
                        yield message
                    if finished:
                        return
                    stale = False
                now = time.monotonic()
                roster.expire(now)
                shown = roster.others(operator.id, now)
                if shown != people:
                    people = shown
                    yield sse("presence", {"people": people}, view.last_message_id)
                waits = [next_beat - now, next_refresh - now, roster.next_change(now)]
                timeout = max(0.01, min(w for w in waits if w is not None))
                event = await subscription.next_within(timeout)
                if event is not None:
                    for each in [event, *await settle(subscription)]:
                        stale = await _take(watch, view, roster, each) or stale
                now = time.monotonic()
                if now >= next_refresh:
                    await announce_presence(pubsub, view.ticket_id, tab, operator, "viewing")
                    next_refresh = now + PRESENCE_REFRESH
                if now >= next_beat:
                    if not await still_signed_in(watch.runtime, watch.session_token):
                        yield sse("signed-out", {})
                        return
                    # Also re-read now and then: a change made by a process that could not
                    # nudge this one (`helpdesk ingest` in the embedded mode, a lost event).
                    stale = True
                    yield heartbeat()
                    next_beat = now + HEARTBEAT_SECONDS
        finally:
            # The tab closed (the stream is being cancelled): others see it leave at once.
            publish_detached(pubsub, channel, presence_event(tab, operator, "left"))


async def _take(watch: TicketWatch, view: TicketView, roster: Roster, event: Event) -> bool:
    """Apply one channel event; True when the ticket must be re-read."""
    kind = event.data.get("type")
    if kind == "presence":
        roster.apply(event.data, time.monotonic())
        if event.data.get("state") == "hello" and event.data.get("tab") != watch.tab:
            # Somebody opened the ticket: tell them we are here, without waiting a round.
            await announce_presence(
                watch.runtime.pubsub, view.ticket_id, watch.tab, watch.operator, "viewing"
            )
        return False
    if kind == "resync":  # events may have been lost, presence included
        await announce_presence(
            watch.runtime.pubsub, view.ticket_id, watch.tab, watch.operator, "hello"
        )
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
