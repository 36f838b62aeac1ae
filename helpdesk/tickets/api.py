"""Operator ticket API (DESIGN §6): list, detail, PATCH, notes and the admin-only legal hold.

The `operator` dependency (from the Bearer API token, 401 otherwise) gives each request
exactly that operator's rights; services enforce the rest (403, 404, 409, 422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.deps import provide_runtime
from helpdesk.models import Operator
from helpdesk.tickets import queries, service
from helpdesk.tickets.resources import (
    message_out,
    ticket_detail_out,
    ticket_list_out,
    ticket_out,
)
from helpdesk.tickets.schemas import (
    LegalHoldIn,
    MessageOut,
    NoteIn,
    TicketDetailOut,
    TicketListOut,
    TicketOut,
    TicketPatch,
)


def provide_now(state: State) -> datetime:
    """The runtime clock's now, so tests can freeze time."""
    return provide_runtime(state).clock.now()


class TicketController(Controller):
    path = "/api/v1/tickets"
    tags = ["tickets"]
    dependencies = {"now": Provide(provide_now, sync_to_thread=False)}

    @get("", summary="List tickets")
    async def list_tickets(
        self,
        db_session: AsyncSession,
        operator: Operator,
        status: Annotated[
            str | None, Parameter(description="one or more statuses, comma-separated")
        ] = None,
        assignee: Annotated[
            str | None, Parameter(description="me, none, or an operator's email")
        ] = None,
        q: Annotated[
            str | None,
            Parameter(
                description="full-text search of subject, addresses and message text; "
                "results best match first, each with `search` (rank, snippet)"
            ),
        ] = None,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page")
        ] = None,
    ) -> TicketListOut:
        """Newest human activity first (a search: best match first), 25 a page."""
        page = await queries.list_tickets(
            db_session, operator=operator, status=status, assignee=assignee, q=q, cursor=cursor
        )
        return ticket_list_out(page)

    @get("/{number:int}", summary="Show a ticket")
    async def show_ticket(
        self, db_session: AsyncSession, operator: Operator, number: int
    ) -> TicketDetailOut:
        return ticket_detail_out(await queries.get_ticket_detail(db_session, number))

    @patch("/{number:int}", summary="Change status, assignee, priority or tags")
    async def update_ticket(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        data: TicketPatch,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await service.update_ticket(
            db_session,
            ticket,
            operator=operator,
            now=now,
            status=data.status,
            assignee=data.assignee,
            priority=data.priority,
            tags=data.tags,
        )
        return ticket_out(await queries.ticket_row(db_session, ticket))

    @post("/{number:int}/notes", summary="Add an internal note")
    async def add_note(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int,
        data: NoteIn,
    ) -> MessageOut:
        ticket = await service.get_ticket(db_session, number)
        note = await service.add_note(
            db_session, ticket, operator=operator, body=data.body, now=now
        )
        return message_out(queries.MessageRow(note, [], None))

    @put("/{number:int}/legal-hold", summary="Put the ticket on legal hold (admin)")
    async def set_legal_hold(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int,
        data: LegalHoldIn,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await service.set_legal_hold(
            db_session, ticket, operator=operator, reason=data.reason, until=data.until, now=now
        )
        return ticket_out(await queries.ticket_row(db_session, ticket))

    @delete("/{number:int}/legal-hold", status_code=200, summary="Lift a legal hold (admin)")
    async def lift_legal_hold(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await service.lift_legal_hold(db_session, ticket, operator=operator, now=now)
        return ticket_out(await queries.ticket_row(db_session, ticket))
