"""Ticket-page actions beyond answering: merge, split, move, spam, links and participants.

Each handler decodes its form, calls one service operation in `helpdesk.tickets` and
redirects with a flash message; a refusal re-renders the ticket page with the reason and
rolls the request back (`form_refusals`). The guard checks the CSRF token of every POST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from litestar import Controller, Request, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import HelpdeskError, ValidationFailed
from helpdesk.inbox.auth import csrf_checked, current_operator, signed_in
from helpdesk.inbox.form_refusals import error_text, refuse
from helpdesk.inbox.rendering import redirect_with_flash
from helpdesk.inbox.ticket_pages import render_ticket
from helpdesk.models import Ticket
from helpdesk.tickets import links, participants
from helpdesk.tickets.merge import merge_tickets
from helpdesk.tickets.moves import move_message
from helpdesk.tickets.service import get_ticket
from helpdesk.tickets.spam import mark_spam, restore_from_spam
from helpdesk.tickets.split import split_message


def _url(number: int) -> str:
    return f"/inbox/tickets/{number}"


def _ticket_number(form: Any, field: str) -> int:
    """A ticket number typed as `1042` or `#1042` (422 naming the field otherwise)."""
    raw = str(form.get(field) or "").strip().lstrip("#")
    if not raw.isdigit() or len(raw) > 12:
        raise ValidationFailed({field: "type a ticket number such as 1042"})
    return int(raw)


def _record_id(form: Any, field: str) -> int:
    raw = str(form.get(field) or "").strip()
    if not raw.isdigit() or len(raw) > 12:
        raise ValidationFailed({field: "choose one from the list"})
    return int(raw)


async def _attempt(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    number: int,
    action: Callable[[], Awaitable[Redirect]],
) -> Redirect:
    """Run the action; a refusal shows the ticket page with the reason and rolls back."""
    try:
        return await action()
    except HelpdeskError as refused:
        await _refuse(request, runtime, number, refused)
        raise  # pragma: no cover - _refuse never returns


async def _refuse(
    request: Request[Any, Any, Any], runtime: Runtime, number: int, refused: HelpdeskError
) -> NoReturn:
    async def build(session: AsyncSession) -> Template:
        return await render_ticket(
            request, session, number, status_code=refused.status_code, error=error_text(refused)
        )

    await refuse(request, runtime, build)


class TicketActions(Controller):
    path = "/tickets/{number:int}"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @post("/merge", status_code=303)
    async def merge(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Merge this ticket into the one named in `into`; shows the surviving ticket."""
        form = await request.form()

        async def action() -> Redirect:
            source = await get_ticket(db_session, number)
            destination = await get_ticket(db_session, _ticket_number(form, "into"))
            await merge_tickets(
                db_session,
                source,
                destination,
                operator=current_operator(request),
                now=runtime.clock.now(),
            )
            return redirect_with_flash(_url(destination.number), "ticket-merged")

        return await _attempt(request, runtime, number, action)

    @post("/messages/{message_id:int}/split", status_code=303)
    async def split(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
        message_id: int,
    ) -> Redirect:
        """Open a new ticket with this message (and the subject typed, if any)."""
        form = await request.form()
        subject = str(form.get("subject") or "").strip() or None

        async def action() -> Redirect:
            ticket = await get_ticket(db_session, number)
            new_ticket = await split_message(
                db_session,
                ticket,
                message_id,
                operator=current_operator(request),
                now=runtime.clock.now(),
                subject=subject,
            )
            return redirect_with_flash(_url(new_ticket.number), "message-split")

        return await _attempt(request, runtime, number, action)

    @post("/messages/{message_id:int}/move", status_code=303)
    async def move(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
        message_id: int,
    ) -> Redirect:
        """Move a mis-threaded message to the ticket named in `to`."""
        form = await request.form()

        async def action() -> Redirect:
            ticket = await get_ticket(db_session, number)
            destination = await get_ticket(db_session, _ticket_number(form, "to"))
            await move_message(
                db_session,
                ticket,
                message_id,
                destination,
                operator=current_operator(request),
                now=runtime.clock.now(),
            )
            return redirect_with_flash(_url(number), "message-moved")

        return await _attempt(request, runtime, number, action)

    @post("/spam", status_code=303)
    async def spam(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Tag as spam and close; back to the queues."""

        async def action() -> Redirect:
            ticket = await get_ticket(db_session, number)
            await mark_spam(
                db_session, ticket, operator=current_operator(request), now=runtime.clock.now()
            )
            return redirect_with_flash("/inbox", "ticket-spam")

        return await _attempt(request, runtime, number, action)

    @post("/not-spam", status_code=303)
    async def not_spam(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Restore a ticket marked as spam by mistake: open again, back on its page."""

        async def action() -> Redirect:
            ticket = await get_ticket(db_session, number)
            await restore_from_spam(
                db_session, ticket, operator=current_operator(request), now=runtime.clock.now()
            )
            return redirect_with_flash(_url(number), "ticket-not-spam")

        return await _attempt(request, runtime, number, action)

    @post("/learner", status_code=303)
    async def link_learner(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        form = await request.form()
        return await self._change(
            request,
            db_session,
            runtime,
            number,
            lambda ticket, **who: links.link_learner(
                db_session, ticket, _record_id(form, "learner_id"), **who
            ),
        )

    @post("/learner/unlink", status_code=303)
    async def unlink_learner(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        return await self._change(
            request,
            db_session,
            runtime,
            number,
            lambda ticket, **who: links.unlink_learner(db_session, ticket, **who),
        )

    @post("/orders", status_code=303)
    async def link_order(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        form = await request.form()
        return await self._change(
            request,
            db_session,
            runtime,
            number,
            lambda ticket, **who: links.link_order(
                db_session, ticket, _record_id(form, "order_id"), **who
            ),
        )

    @post("/orders/{order_id:int}/unlink", status_code=303)
    async def unlink_order(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
        order_id: int,
    ) -> Redirect:
        return await self._change(
            request,
            db_session,
            runtime,
            number,
            lambda ticket, **who: links.unlink_order(db_session, ticket, order_id, **who),
        )

    @post("/participants", status_code=303)
    async def participants(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Replace the Cc participants with the addresses typed (one per line or commas)."""
        form = await request.form()
        addresses = participants.parse_address_list(str(form.get("participants") or ""))
        return await self._change(
            request,
            db_session,
            runtime,
            number,
            lambda ticket, **who: participants.set_participants(
                db_session, ticket, addresses, **who
            ),
        )

    async def _change(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
        change: Callable[..., Awaitable[Ticket]],
    ) -> Redirect:
        async def action() -> Redirect:
            ticket = await get_ticket(db_session, number)
            await change(ticket, operator=current_operator(request), now=runtime.clock.now())
            return redirect_with_flash(_url(number), "ticket-updated")

        return await _attempt(request, runtime, number, action)
