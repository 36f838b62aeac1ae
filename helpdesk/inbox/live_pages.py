"""Live updates of inbox pages: Server-Sent Event streams and the typing signal.

`GET /inbox/tickets/{number}/events` follows one ticket (new messages rendered as the
page renders them, delivery status, ticket fields, who else is here and typing);
`GET /inbox/events` follows the queues (counts and the first page's rows);
`POST /inbox/tickets/{number}/presence` tells the others this tab is typing or stopped.
The streams need the inbox session cookie; without one they answer 401 instead of the
sign-in page, which EventSource could not use. They hold no database session between
reads, so an open tab costs no connection from the pool.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import MediaType
from litestar.response import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import (
    SESSION_COOKIE,
    SignInRequired,
    csrf_checked,
    csrf_token,
    current_operator,
    signed_in,
)
from helpdesk.inbox.conversation import ConversationItem
from helpdesk.inbox.presence import TAB_PATTERN, TYPING_WHAT, announce_presence
from helpdesk.inbox.queue_stream import QueueWatch, queue_events
from helpdesk.inbox.queues import QueueFilters
from helpdesk.inbox.rendering import FORMATS
from helpdesk.inbox.ticket_stream import TicketWatch, ticket_events
from helpdesk.inbox.ticket_updates import TicketView, newest_message_id
from helpdesk.metrics import counted_stream
from helpdesk.models import Ticket
from helpdesk.tickets import service
from helpdesk.tickets.queries import TicketRow


def no_stream(_: Request[Any, Any, Any], __: SignInRequired) -> Response[str]:
    """No valid session: a plain 401 (EventSource stops instead of loading a sign-in page)."""
    return Response("Sign in to get live updates.", status_code=401, media_type=MediaType.TEXT)


# Message ids are 32-bit integer columns; anything larger did not come from our pages.
_MAX_MESSAGE_ID = 2**31 - 1


def _resume_from(request: Request[Any, Any, Any], after: int | None) -> int | None:
    """The newest message the page has: the `Last-Event-ID` of a reconnect, else `after`."""
    last_event_id = request.headers.get("last-event-id", "").strip()
    if last_event_id.isdigit() and len(last_event_id) <= 10:
        after = int(last_event_id)
    return after if after is not None and 0 <= after <= _MAX_MESSAGE_ID else None


def _template_context(request: Request[Any, Any, Any], runtime: Runtime) -> dict[str, Any]:
    """What the page templates find in their context besides the item itself."""
    token = request.cookies.get(SESSION_COOKIE, "")
    return {
        "fmt": FORMATS,
        "csrf": csrf_token(runtime.settings.secret_key, token) if token else "",
        "operator": current_operator(request),
    }


def _template(request: Request[Any, Any, Any], name: str) -> Any:
    engine = request.app.template_engine
    assert engine is not None  # configured by create_app
    return engine.get_template(name)


def _clean(value: str | None, limit: int = 200) -> str | None:
    text = (value or "").strip()[:limit]
    return text or None


class LivePages(Controller):
    path = ""
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("/tickets/{number:int}/events", exception_handlers={SignInRequired: no_stream})
    async def ticket_stream(
        self,
        request: Request[Any, Any, Any],
        runtime: Runtime,
        number: int,
        tab: str | None = None,
        after: int | None = None,
    ) -> ServerSentEvent:
        """The ticket page's events; `after` is the newest message id the page shows."""
        async with runtime.sessions() as session:
            ticket = await service.get_ticket(session, number)
            assert ticket.id is not None
            resume = _resume_from(request, after)
            view = TicketView(
                ticket.id,
                resume if resume is not None else await newest_message_id(session, ticket.id),
            )
        template = _template(request, "inbox/message.html")
        context = _template_context(request, runtime) | {"ticket": ticket}

        def render_message(item: ConversationItem) -> str:
            return str(template.render(**context, item=item))

        watch = TicketWatch(
            runtime=runtime,
            operator=current_operator(request),
            session_token=request.cookies.get(SESSION_COOKIE, ""),
            tab=tab if tab and TAB_PATTERN.match(tab) else secrets.token_urlsafe(9),
            render_message=render_message,
        )
        return ServerSentEvent(counted_stream("inbox", ticket_events(watch, view)))

    @post("/tickets/{number:int}/presence", status_code=204)
    async def presence(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> None:
        """This tab started (`typing`) or stopped (`idle`) writing a reply or note."""
        form = await request.form()
        tab, state, what = (str(form.get(name) or "") for name in ("tab", "state", "what"))
        if not TAB_PATTERN.match(tab):
            raise ValidationFailed({"tab": "must be the page's tab id"})
        if state not in ("typing", "idle"):
            raise ValidationFailed({"state": "must be typing or idle"})
        ticket: Ticket = await service.get_ticket(db_session, number)
        assert ticket.id is not None
        kind = what if what in TYPING_WHAT else None
        operator = current_operator(request)
        await announce_presence(runtime.pubsub, ticket.id, tab, operator, state, kind)

    @get("/events", exception_handlers={SignInRequired: no_stream})
    async def queue_stream(
        self,
        request: Request[Any, Any, Any],
        runtime: Runtime,
        queue: str | None = None,
        q: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        channel: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
    ) -> ServerSentEvent:
        """A queue page's events; the query is the page's own (queue, filters, cursor)."""
        filters = QueueFilters(
            status=_clean(status),
            assignee=_clean(assignee, 320),
            channel=_clean(channel),
            tag=_clean(tag, 40),
            q=_clean(q),
        )
        template = _template(request, "inbox/ticket_row.html")
        context = _template_context(request, runtime)

        def render_rows(rows: list[TicketRow]) -> str:
            return "".join(str(template.render(**context, row=row)) for row in rows)

        watch = QueueWatch(
            runtime=runtime,
            operator=current_operator(request),
            session_token=request.cookies.get(SESSION_COOKIE, ""),
            queue=queue or ("all" if filters.q else "open"),
            filters=filters,
            first_page=not cursor,
            render_rows=render_rows,
        )
        return ServerSentEvent(counted_stream("inbox", queue_events(watch)))
