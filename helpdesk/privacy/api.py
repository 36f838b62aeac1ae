"""Operator API of privacy cases (DESIGN §6): convert a ticket, list, show, fulfil, refuse,
extend; plus lifting a restriction and redacting other tickets after an erasure.

Thin: decode, call one service operation, encode. Mail queued by an operation is kicked
after the response, when the request's transaction has committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.models import Operator, PrivacyRequest
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.privacy import redaction, service
from helpdesk.privacy.schemas import (
    ExtendIn,
    FulfilIn,
    MentionsOut,
    PrivacyRequestIn,
    PrivacyRequestListOut,
    PrivacyRequestOut,
    RefuseIn,
    privacy_request_out,
)
from helpdesk.tickets import service as tickets
from helpdesk.tickets.api import provide_now


async def _out(db_session: AsyncSession, request: PrivacyRequest) -> PrivacyRequestOut:
    ticket = await service.ticket_of(db_session, request)
    return privacy_request_out(request, ticket.number)


def _sent(
    body: PrivacyRequestOut, runtime: Runtime, status_code: int = 200
) -> Response[PrivacyRequestOut]:
    return Response(
        body, status_code=status_code, background=BackgroundTask(kick_delivery, runtime)
    )


class TicketPrivacyController(Controller):
    path = "/api/v1/tickets"
    tags = ["privacy"]
    dependencies = {"now": Provide(provide_now, sync_to_thread=False)}

    @post(
        "/{number:int}/privacy-request",
        summary="Make the ticket a privacy case (or confirm a suggested one)",
    )
    async def convert(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        number: int,
        data: PrivacyRequestIn,
    ) -> Response[PrivacyRequestOut]:
        ticket = await tickets.get_ticket(db_session, number)
        request = await service.convert_ticket(
            db_session, runtime.settings, ticket, data.kind, operator=operator, now=now
        )
        return _sent(privacy_request_out(request, ticket.number), runtime, status_code=201)


class PrivacyRequestController(Controller):
    path = "/api/v1/privacy-requests"
    tags = ["privacy"]
    dependencies = {"now": Provide(provide_now, sync_to_thread=False)}

    @get("", summary="List privacy requests, open ones by deadline (overdue first)")
    async def list_requests(
        self,
        db_session: AsyncSession,
        operator: Operator,
        status: Annotated[
            str | None, Parameter(description="one or more statuses, comma-separated")
        ] = None,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page")
        ] = None,
    ) -> PrivacyRequestListOut:
        page = await service.list_requests(db_session, status, cursor)
        return PrivacyRequestListOut(
            items=[privacy_request_out(r, t.number) for r, t in page.rows],
            next_cursor=page.next_cursor,
        )

    @get("/{request_id:int}", summary="Show a privacy request")
    async def show(
        self, db_session: AsyncSession, operator: Operator, request_id: int
    ) -> PrivacyRequestOut:
        return await _out(db_session, await service.get_request(db_session, request_id))

    @post(
        "/{request_id:int}/fulfil",
        status_code=200,
        summary="Carry out a verified request (erasure: admin)",
    )
    async def fulfil(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
        data: FulfilIn | None = None,
    ) -> Response[PrivacyRequestOut]:
        request = await service.get_request(db_session, request_id)
        decision = (
            service.Fulfilment(
                name=data.name,
                email=data.email,
                organisation=data.organisation,
                decision=data.decision,
            )
            if data
            else None
        )
        await service.fulfil(
            db_session,
            runtime.settings,
            runtime.storage,
            request,
            operator=operator,
            now=now,
            decision=decision,
        )
        return _sent(await _out(db_session, request), runtime)

    @post(
        "/{request_id:int}/refuse",
        status_code=200,
        summary="Refuse with the grounds (told to the learner)",
    )
    async def refuse(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
        data: RefuseIn,
    ) -> Response[PrivacyRequestOut]:
        request = await service.get_request(db_session, request_id)
        await service.refuse(
            db_session, runtime.settings, request, operator=operator, reason=data.reason, now=now
        )
        return _sent(await _out(db_session, request), runtime)

    @post(
        "/{request_id:int}/extend",
        status_code=200,
        summary="Extend the deadline once, by 1–2 months",
    )
    async def extend(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
        data: ExtendIn,
    ) -> Response[PrivacyRequestOut]:
        request = await service.get_request(db_session, request_id)
        await service.extend(
            db_session,
            runtime.settings,
            request,
            operator=operator,
            months=data.months,
            reason=data.reason,
            now=now,
        )
        return _sent(await _out(db_session, request), runtime)

    @post(
        "/{request_id:int}/verification", status_code=200, summary="Mail a fresh confirmation link"
    )
    async def resend_verification(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
    ) -> Response[PrivacyRequestOut]:
        request = await service.get_request(db_session, request_id)
        await service.resend_verification(
            db_session, runtime.settings, request, operator=operator, now=now
        )
        return _sent(await _out(db_session, request), runtime)

    @post(
        "/{request_id:int}/lift-restriction",
        status_code=200,
        summary="Lift the learner's restriction",
    )
    async def lift_restriction(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
    ) -> Response[PrivacyRequestOut]:
        request = await service.get_request(db_session, request_id)
        await service.lift_restriction(
            db_session, runtime.settings, request, operator=operator, now=now
        )
        return _sent(await _out(db_session, request), runtime)

    @get("/{request_id:int}/mentions", summary="Other tickets that still mention an erased learner")
    async def mentions(
        self, db_session: AsyncSession, operator: Operator, request_id: int
    ) -> MentionsOut:
        request = await service.get_request(db_session, request_id)
        return MentionsOut(tickets=await redaction.pending_mentions(db_session, request))

    @post(
        "/{request_id:int}/mentions/{number:int}/redact",
        status_code=200,
        summary="Redact them to [slettet]",
    )
    async def redact(
        self,
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        request_id: int,
        number: int,
    ) -> MentionsOut:
        request = await service.get_request(db_session, request_id)
        ticket = await tickets.get_ticket(db_session, number)
        await redaction.redact_ticket(
            db_session, runtime.storage, request, ticket, actor=service.actor_of(operator), now=now
        )
        return MentionsOut(tickets=await redaction.pending_mentions(db_session, request))
