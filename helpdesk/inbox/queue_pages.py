"""The queues page `/inbox`: queue tabs with counts, search, filters, keyset pages.

A search without a queue looks at every ticket, best match first, each row with the
matched text; service-level due times and privacy deadlines are on the rows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import csrf_checked, current_operator, runtime_of, signed_in
from helpdesk.inbox.directory import active_operators
from helpdesk.inbox.queues import QUEUES, QueueFilters, list_queue, queue_counts
from helpdesk.inbox.rendering import page
from helpdesk.models.tickets import CHANNELS, STATUSES
from helpdesk.tickets.queries import TicketPage


def _clean(value: str | None, limit: int = 200) -> str | None:
    text = (value or "").strip()[:limit]
    return text or None


class QueuePages(Controller):
    path = ""
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("")
    async def queues(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        queue: str | None = None,
        q: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        channel: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
    ) -> Template:
        """A queue (default: all open; a search without a queue looks at every ticket)."""
        operator = current_operator(request)
        filters = QueueFilters(
            status=_clean(status),
            assignee=_clean(assignee, 320),
            channel=_clean(channel),
            tag=_clean(tag, 40),
            q=_clean(q),
        )
        key = queue or ("all" if filters.q else "open")
        now = runtime_of(request).clock.now()
        error = None
        try:
            tickets = await list_queue(
                db_session, operator=operator, queue=key, filters=filters, cursor=cursor, now=now
            )
        except ValidationFailed as failure:
            error = "; ".join(f"{field}: {text}" for field, text in failure.fields.items())
            tickets = TicketPage([], None)
        query = {k: v for k, v in vars(filters).items() if v} | {"queue": key}
        return page(
            request,
            "inbox/queues.html",
            {
                "queues": QUEUES,
                "current": key,
                "counts": await queue_counts(db_session, operator, now),
                "page": tickets,
                "filters": filters,
                "error": error,
                "statuses": STATUSES,
                "channels": CHANNELS,
                "operators": await active_operators(db_session),
                "next_url": f"/inbox?{urlencode(query | {'cursor': tickets.next_cursor})}"
                if tickets.next_cursor
                else None,
                "first_url": f"/inbox?{urlencode(query)}" if cursor else None,
            },
            status_code=422 if error else 200,
        )
