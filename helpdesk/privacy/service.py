"""Privacy requests as operators handle them: convert, list, fulfil, refuse, extend.

Nothing is disclosed, changed or erased before the request is verified (DESIGN §7), every
step writes a content-free audit event, and every outcome is mailed to the learner.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict, Forbidden, NotFound, ValidationFailed
from helpdesk.models import Learner, Message, Operator, PrivacyRequest, Ticket
from helpdesk.privacy import fulfilment
from helpdesk.privacy.cases import is_open, request_target
from helpdesk.privacy.deadlines import add_months, check_extension
from helpdesk.privacy.fulfilment import Fulfilment as Fulfilment  # re-exported
from helpdesk.privacy.intake import start_request
from helpdesk.privacy.listing import list_requests as list_requests  # re-exported
from helpdesk.privacy.notices import send_notice
from helpdesk.privacy.verification import ask_for_verification

MAX_REASON = 2000


def actor_of(operator: Operator) -> str:
    """The audit actor of an operator: an id, never an address."""
    return f"operator:{operator.id}"


async def get_request(session: AsyncSession, request_id: int) -> PrivacyRequest:
    """The privacy request with this id, or NotFound (404)."""
    request = await session.get(PrivacyRequest, request_id)
    if request is None:
        raise NotFound(f"No privacy request {request_id}.")
    return request


async def ticket_of(session: AsyncSession, request: PrivacyRequest) -> Ticket:
    """The ticket a request belongs to."""
    ticket = await session.get(Ticket, request.ticket_id)
    assert ticket is not None, "a privacy request always has its ticket (ON DELETE CASCADE)"
    return ticket


async def convert_ticket(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    kind: str,
    *,
    operator: Operator,
    now: datetime,
) -> PrivacyRequest:
    """An operator makes the ticket a privacy case (or confirms the suggested one)."""
    received = await _latest_learner_message_at(session, ticket)
    return await start_request(
        session,
        ticket,
        kind,
        now=now,
        actor=actor_of(operator),
        received_at=received,
        settings=settings,
    )


async def _latest_learner_message_at(session: AsyncSession, ticket: Ticket) -> datetime | None:
    # The request arrived with the requester's latest message, not when an operator saw it.
    return await session.scalar(
        select(func.max(col(Message.created_at))).where(
            col(Message.ticket_id) == ticket.id,
            col(Message.direction) == "inbound",
            col(Message.machine).is_(None),
        )
    )


async def resend_verification(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    *,
    operator: Operator,
    now: datetime,
) -> PrivacyRequest:
    """Mail a fresh confirmation link (the learner lost the first, or it expired)."""
    if request.status != "awaiting_verification":
        raise Conflict("Only a request awaiting verification gets a confirmation link.")
    await ask_for_verification(
        session, settings, request, await ticket_of(session, request), now=now
    )
    return request


async def _take_turn(session: AsyncSession, request: PrivacyRequest, now: datetime) -> None:
    """Claim the request for this step, or 409 if another operator changed it meanwhile.

    A conditional UPDATE on what the step was decided from (status and deadline): of two
    operators acting at the same moment, the second's UPDATE waits for the first commit
    and then matches nothing, so an export is sent once and an erasure runs once.
    """
    claimed = await session.execute(
        update(PrivacyRequest)
        .where(
            col(PrivacyRequest.id) == request.id,
            col(PrivacyRequest.status) == request.status,
            col(PrivacyRequest.extended_until).is_(None)
            if request.extended_until is None
            else col(PrivacyRequest.extended_until) == request.extended_until,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Another operator has just acted on this request; reload to see it.")


def _require_verified(request: PrivacyRequest) -> None:
    if request.status == "suggested":
        raise Conflict("Confirm the suggested request (choose its kind) first.")
    if request.status == "awaiting_verification":
        raise Conflict(
            "The learner has not confirmed the request yet: nothing is done before that."
        )
    if not is_open(request):
        raise Conflict(f"The request is already {request.status}.")


async def fulfil(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    request: PrivacyRequest,
    *,
    operator: Operator,
    now: datetime,
    decision: Fulfilment | None = None,
) -> PrivacyRequest:
    """Carry out a verified request by its kind, tell the learner, and complete it."""
    _require_verified(request)
    await _take_turn(session, request, now)
    decision = decision or Fulfilment()
    erases = request.kind == "erasure" or (
        request.kind == "objection" and decision.decision == "erase"
    )
    if erases and operator.role != "admin":
        raise Forbidden("Only an administrator may carry out an erasure.")
    ticket = await ticket_of(session, request)
    actor = actor_of(operator)
    if request.kind in ("access", "portability"):
        outcome = await fulfilment.send_export(session, settings, storage, request, ticket, now=now)
    elif erases:
        outcome = await fulfilment.erase(
            session, settings, storage, request, ticket, now=now, actor=actor
        )
    elif request.kind == "rectification":
        outcome = await fulfilment.rectify(
            session, settings, request, ticket, decision, now=now, actor=actor
        )
    elif request.kind == "restriction" or decision.decision == "restrict":
        outcome = await fulfilment.restrict(
            session, settings, request, ticket, now=now, actor=actor
        )
    else:
        outcome = await fulfilment.uphold_objection(
            session, settings, request, ticket, decision, now=now
        )
    await _complete(session, request, outcome, now=now, actor=actor)
    return request


async def _complete(
    session: AsyncSession, request: PrivacyRequest, outcome: str, *, now: datetime, actor: str
) -> None:
    request.status, request.outcome = "completed", outcome
    request.completed_at = request.updated_at = now
    await record_event(
        session, actor, "privacy.request_completed", request_target(request), kind=request.kind
    )


async def lift_restriction(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    *,
    operator: Operator,
    now: datetime,
) -> PrivacyRequest:
    """Lift a restriction this request put in place; the learner is told."""
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    if learner is None or learner.restricted_at is None:
        raise Conflict("The learner's processing is not restricted.")
    # Conditional, so two operators lifting at once send one notice (the other gets 409).
    lifted = await session.execute(
        update(Learner)
        .where(col(Learner.id) == learner.id, col(Learner.restricted_at).is_not(None))
        .values(restricted_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if lifted.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Another operator has just lifted the restriction.")
    learner.restricted_at, learner.updated_at = None, now
    await record_event(
        session,
        actor_of(operator),
        "learner.restriction_lifted",
        f"learner:{learner.id}",
        request=request.id,
    )
    await send_notice(
        session,
        settings,
        request,
        await ticket_of(session, request),
        template="restriction-lifted",
        subject="completed",
        now=now,
    )
    return request


async def refuse(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    *,
    operator: Operator,
    reason: str,
    now: datetime,
) -> PrivacyRequest:
    """Refuse with the grounds, told to the learner; a suggested case is just dismissed."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed({"reason": "Give the grounds; the learner is told them."})
    if len(reason) > MAX_REASON:
        raise ValidationFailed({"reason": f"At most {MAX_REASON} characters."})
    if not is_open(request):
        raise Conflict(f"The request is already {request.status}.")
    await _take_turn(session, request, now)
    dismissed = request.status == "suggested"
    if not dismissed:
        await send_notice(
            session,
            settings,
            request,
            await ticket_of(session, request),
            template="refused",
            subject="refused",
            now=now,
            context={"reason": reason},
        )
    request.status, request.outcome = "refused", reason
    request.completed_at = request.updated_at = now
    action = "privacy.suggestion_dismissed" if dismissed else "privacy.request_refused"
    await record_event(
        session, actor_of(operator), action, request_target(request), kind=request.kind
    )
    return request


async def extend(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    *,
    operator: Operator,
    months: int,
    reason: str,
    now: datetime,
) -> PrivacyRequest:
    """Extend the deadline once, by up to two months, before it passes; the learner is told."""
    reason = check_extension(request, months, reason, now)
    await _take_turn(session, request, now)
    request.extended_until = add_months(request.due_at, months)
    request.extension_reason, request.updated_at = reason, now
    await record_event(
        session,
        actor_of(operator),
        "privacy.deadline_extended",
        request_target(request),
        months=months,
    )
    await send_notice(
        session,
        settings,
        request,
        await ticket_of(session, request),
        template="extended",
        subject="extended",
        now=now,
        context={"reason": reason, "months": months},
    )
    return request
