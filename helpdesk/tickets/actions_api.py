"""Operator API for the ticket actions the inbox offers: merge, split, move, spam, links
and participants. Same services as the inbox forms, so the same rules and audit events.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, delete, post, put
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models import Operator, Ticket
from helpdesk.tickets import links, participants, queries, service
from helpdesk.tickets.api import provide_now
from helpdesk.tickets.merge import merge_tickets
from helpdesk.tickets.moves import move_message
from helpdesk.tickets.resources import ticket_out
from helpdesk.tickets.schemas import TicketOut
from helpdesk.tickets.spam import mark_spam, restore_from_spam
from helpdesk.tickets.split import split_message


class MergeIn(msgspec.Struct, forbid_unknown_fields=True):
    into: int  # the number of the ticket that survives


class SplitIn(msgspec.Struct, forbid_unknown_fields=True):
    subject: str | None = None


class MoveIn(msgspec.Struct, forbid_unknown_fields=True):
    to: int  # the number of the ticket the message belongs to


class ParticipantsIn(msgspec.Struct, forbid_unknown_fields=True):
    participants: list[str]


class LearnerLinkIn(msgspec.Struct, forbid_unknown_fields=True):
    external_id: str


async def _out(session: AsyncSession, ticket: Ticket) -> TicketOut:
    return ticket_out(await queries.ticket_row(session, ticket))


class TicketActionController(Controller):
    path = "/api/v1/tickets/{number:int}"
    tags = ["tickets"]
    dependencies = {"now": Provide(provide_now, sync_to_thread=False)}

    @post("/merge", summary="Merge this ticket into another; returns the surviving ticket")
    async def merge(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        data: MergeIn,
    ) -> TicketOut:
        source = await service.get_ticket(db_session, number)
        destination = await service.get_ticket(db_session, data.into)
        await merge_tickets(db_session, source, destination, operator=operator, now=now)
        return await _out(db_session, destination)

    @post("/messages/{message_id:int}/split", summary="Split a message into a new ticket")
    async def split(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        message_id: int,
        data: SplitIn,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        new_ticket = await split_message(
            db_session, ticket, message_id, operator=operator, now=now, subject=data.subject
        )
        return await _out(db_session, new_ticket)

    @post("/messages/{message_id:int}/move", summary="Move a message to another ticket")
    async def move(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        message_id: int,
        data: MoveIn,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        destination = await service.get_ticket(db_session, data.to)
        await move_message(db_session, ticket, message_id, destination, operator=operator, now=now)
        return await _out(db_session, destination)

    @post("/spam", summary="Mark as spam: tagged and closed")
    async def spam(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await mark_spam(db_session, ticket, operator=operator, now=now)
        return await _out(db_session, ticket)

    @post("/not-spam", summary="Undo spam: the tag goes and the ticket opens again")
    async def not_spam(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await restore_from_spam(db_session, ticket, operator=operator, now=now)
        return await _out(db_session, ticket)

    @put("/participants", summary="Replace the participants (Cc of replies)")
    async def set_participants(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        data: ParticipantsIn,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await participants.set_participants(
            db_session, ticket, data.participants, operator=operator, now=now
        )
        return await _out(db_session, ticket)

    @put("/learner", summary="Link the ticket to a learner by external id")
    async def link_learner(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        data: LearnerLinkIn,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        learner = await links.learner_by_external_id(db_session, data.external_id)
        assert learner.id is not None
        await links.link_learner(db_session, ticket, learner.id, operator=operator, now=now)
        return await _out(db_session, ticket)

    @delete("/learner", status_code=200, summary="Unlink the ticket's learner")
    async def unlink_learner(
        self, db_session: AsyncSession, operator: Operator, now: datetime, number: int
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        await links.unlink_learner(db_session, ticket, operator=operator, now=now)
        return await _out(db_session, ticket)

    @put("/orders/{order_number:str}", summary="Link the ticket to an order")
    async def link_order(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        order_number: str,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        order = await links.order_by_number(db_session, order_number)
        assert order.id is not None
        await links.link_order(db_session, ticket, order.id, operator=operator, now=now)
        return await _out(db_session, ticket)

    @delete("/orders/{order_number:str}", status_code=200, summary="Unlink an order")
    async def unlink_order(
        self,
        db_session: AsyncSession,
        operator: Operator,
        now: datetime,
        number: int,
        order_number: str,
    ) -> TicketOut:
        ticket = await service.get_ticket(db_session, number)
        order = await links.order_by_number(db_session, order_number)
        assert order.id is not None
        await links.unlink_order(db_session, ticket, order.id, operator=operator, now=now)
        return await _out(db_session, ticket)
