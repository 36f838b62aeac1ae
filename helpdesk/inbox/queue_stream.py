"""The live event stream of a queue page: counts of every queue, and the list's first page.

Every ticket change is announced on `inbox`. A burst of them (a busy ingest) is taken
together, then the stream re-reads the counts and, on a first page, the rows, and sends
only what differs from what it sent before: `counts` {queue: n} and `rows` {html}. On
connecting (and reconnecting) both are sent, so the page is refreshed as a whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from litestar.response import ServerSentEventMessage

from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.event_streams import (
    HEARTBEAT_SECONDS,
    heartbeat,
    opening,
    settle,
    sse,
    still_signed_in,
)
from helpdesk.inbox.queues import QueueFilters, list_queue, queue_counts
from helpdesk.models import Operator
from helpdesk.tickets.queries import TicketRow

log = logging.getLogger("helpdesk.inbox.live")

# During a busy ingest the nudges never pause: a page re-reads at least this often.
QUEUE_SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class QueueWatch:
    """One open queue page: whose, which queue and filters, and how rows are rendered."""

    runtime: Runtime
    operator: Operator
    session_token: str
    queue: str
    filters: QueueFilters
    # Only the first page follows new tickets; deeper (cursor) pages update counts only.
    first_page: bool
    render_rows: Callable[[list[TicketRow]], str]


async def queue_events(watch: QueueWatch) -> AsyncIterator[ServerSentEventMessage]:
    """The page's events until the tab closes or the session ends."""
    async with watch.runtime.pubsub.subscribe("inbox") as subscription:
        yield opening()
        stale, shown_counts, shown_rows = True, None, None
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            if stale:
                read = await _read(watch)
                if read is None:
                    return
                counts, rows = read
                if counts != shown_counts:
                    shown_counts = counts
                    yield sse("counts", counts)
                if rows is not None and rows != shown_rows:
                    shown_rows = rows
                    yield sse("rows", {"html": rows})
                stale = False
            event = await subscription.next_within(max(0.01, next_beat - time.monotonic()))
            if event is not None:
                stale = True
                started = time.monotonic()
                while time.monotonic() - started < QUEUE_SETTLE_SECONDS:
                    if not await settle(subscription):
                        break
            if time.monotonic() >= next_beat:
                if not await still_signed_in(watch.runtime, watch.session_token):
                    yield sse("signed-out", {})
                    return
                stale = True  # changes by processes that cannot nudge this one
                yield heartbeat()
                next_beat = time.monotonic() + HEARTBEAT_SECONDS


async def _read(watch: QueueWatch) -> tuple[dict[str, int], str | None] | None:
    """Counts and (first page only) the rendered rows; None when reading failed."""
    try:
        async with watch.runtime.sessions() as session:
            counts = await queue_counts(session, watch.operator)
            if not watch.first_page:
                return counts, None
            try:
                page = await list_queue(
                    session, operator=watch.operator, queue=watch.queue, filters=watch.filters
                )
            except ValidationFailed:  # the page itself shows why; nothing to follow
                return counts, None
            return counts, watch.render_rows(page.items)
    except Exception:
        log.exception("live queue counts could not be read")
        return None
