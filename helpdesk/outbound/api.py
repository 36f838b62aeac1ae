"""Replies (`POST /api/v1/tickets/{number}/replies`) and the suppression list.

A reply is JSON `{"body", "force"?}` or multipart/form-data with a `body` field, an
optional `force` field and any number of files. It answers 201 with the message in the
DESIGN §8 shape, whose `status` is `queued`.

A reply to a suppressed (hard-bounced) address is held back with 409 and a `suppressed`
list naming the addresses, reasons and dates, so the operator's UI can ask "send anyway?"
before anything is written: `force: true` sends it, or any operator may lift the
suppression with `DELETE /api/v1/suppressions/{address}` (a learner on the phone saying
their mailbox works again is an everyday agent task, not an admin one; it is audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.error_handlers import error_response
from helpdesk.errors import NotFound
from helpdesk.models import Operator, SuppressedAddress
from helpdesk.outbound import service
from helpdesk.outbound.requests import ReplyOperation, read_reply
from helpdesk.outbound.schemas import SuppressionOut
from helpdesk.outbound.suppression import (
    RecipientsSuppressed,
    find_suppression,
    lift_suppression,
)
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.tickets import service as tickets
from helpdesk.tickets.api import provide_now
from helpdesk.tickets.queries import MessageRow
from helpdesk.tickets.resources import message_out
from helpdesk.tickets.schemas import MessageOut

# The attachments' limit plus room for the text and the multipart framing; past it
# Litestar answers 413 before reading the rest.
MAX_REQUEST_BYTES = service.MAX_TOTAL_ATTACHMENT_BYTES + 2 * 1024 * 1024


def suppression_out(row: SuppressedAddress) -> SuppressionOut:
    return SuppressionOut(address=row.address, reason=row.reason, since=row.created_at)


def handle_recipients_suppressed(
    _: Request[Any, Any, Any], exc: RecipientsSuppressed
) -> Response[Any]:
    """409 naming the suppressed recipients, so the UI can offer force or lift."""
    suppressed = [
        {"address": s.address, "reason": s.reason, "since": s.since} for s in exc.suppressed
    ]
    return error_response(exc.status_code, exc.code, exc.detail, suppressed=suppressed)


class ReplyController(Controller):
    path = "/tickets"
    tags = ["tickets"]

    @post(
        "/{number:int}/replies",
        summary="Reply to the requester (mail queued in the outbox)",
        status_code=201,
        request_max_body_size=MAX_REQUEST_BYTES,
        operation_class=ReplyOperation,
    )
    async def add_reply(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        operator: Operator,
        runtime: Runtime,
        now: datetime,
        number: int,
    ) -> Response[MessageOut]:
        reply = await read_reply(request)
        ticket = await tickets.get_ticket(db_session, number)
        queued = await service.queue_reply(
            db_session,
            runtime.settings,
            runtime.storage,
            ticket,
            operator,
            reply.body,
            now=now,
            attachments=reply.files,
            force=reply.force,
        )
        status = queued.outbound.status if queued.outbound is not None else None
        row = MessageRow(queued.message, queued.attachments, status)
        # Background tasks run after the response is sent, so after the request's
        # transaction has committed the outbox row that delivery will pick up.
        return Response(
            message_out(row), status_code=201, background=BackgroundTask(kick_delivery, runtime)
        )


class SuppressionController(Controller):
    path = "/suppressions"
    tags = ["suppressions"]

    @get("/{address:str}", summary="Is this address suppressed? (404 when not)")
    async def show_suppression(
        self, db_session: AsyncSession, operator: Operator, address: str
    ) -> SuppressionOut:
        row = await find_suppression(db_session, address)
        if row is None:
            raise NotFound("That address is not on the suppression list.")
        return suppression_out(row)

    @delete("/{address:str}", summary="Lift a suppression (any operator; audited)")
    async def lift(self, db_session: AsyncSession, operator: Operator, address: str) -> None:
        if not await lift_suppression(db_session, address, actor=f"operator:{operator.id}"):
            raise NotFound("That address is not on the suppression list.")


outbound_api = Router(
    path="/api/v1",
    route_handlers=[ReplyController, SuppressionController],
    dependencies={"now": Provide(provide_now, sync_to_thread=False)},
    exception_handlers={RecipientsSuppressed: handle_recipients_suppressed},
)
