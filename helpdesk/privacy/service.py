"""Privacy requests as operators handle them: convert, list, fulfil, refuse, extend.

Nothing is disclosed, changed or erased before the request is verified (DESIGN §7), every
step writes a content-free audit event, and every outcome is mailed to the learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict, Forbidden, NotFound, ValidationFailed
from helpdesk.models import Learner, Message, Operator, PrivacyRequest, Ticket
from helpdesk.models.privacy import STATUSES
from helpdesk.privacy import erasure, export, rectification
from helpdesk.privacy.cases import is_open, request_target
from helpdesk.privacy.deadlines import add_months, check_extension
from helpdesk.privacy.intake import start_request
from helpdesk.privacy.notices import send_notice
from helpdesk.privacy.verification import LINK_LIFETIME, ask_for_verification, issue_link

MAX_REASON = 2000
EXPORT_DOWNLOADS = 3
OBJECTION_DECISIONS = ("restrict", "erase", "stop")


def actor_of(operator: Operator) -> str:
    """The audit actor of an operator: an id, never an address."""
    return f"operator:{operator.id}"


@dataclass(frozen=True, kw_only=True)
class Fulfilment:
    """What the operator decided, where the kind needs a decision."""

    name: str | None = None
    email: str | None = None
    organisation: str | None = None
    # Objection: restrict the processing, erase, or stop the processing objected to.
    decision: str | None = None


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


async def list_requests(
    session: AsyncSession, status: str | None = None, limit: int = 200
) -> list[tuple[PrivacyRequest, Ticket]]:
    """Open requests first by deadline (so overdue ones lead), then closed ones, newest first."""
    query = select(PrivacyRequest, Ticket).join(
        Ticket, col(Ticket.id) == col(PrivacyRequest.ticket_id)
    )
    if status:
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        if not wanted or any(s not in STATUSES for s in wanted):
            raise ValidationFailed({"status": f"must be one of {', '.join(STATUSES)}"})
        query = query.where(col(PrivacyRequest.status).in_(wanted))
    closed = case((col(PrivacyRequest.status).in_(("completed", "refused")), 1), else_=0)
    deadline = func.coalesce(col(PrivacyRequest.extended_until), col(PrivacyRequest.due_at))
    query = query.order_by(closed, deadline, col(PrivacyRequest.id)).limit(limit)
    return [(r, t) for r, t in (await session.execute(query)).tuples()]


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
    decision = decision or Fulfilment()
    erases = request.kind == "erasure" or (
        request.kind == "objection" and decision.decision == "erase"
    )
    if erases and operator.role != "admin":
        raise Forbidden("Only an administrator may carry out an erasure.")
    ticket = await ticket_of(session, request)
    actor = actor_of(operator)
    if request.kind in ("access", "portability"):
        outcome = await _send_export(session, settings, storage, request, ticket, now=now)
    elif erases:
        outcome = await _erase(session, settings, storage, request, ticket, now=now, actor=actor)
    elif request.kind == "rectification":
        outcome = await _rectify(session, settings, request, ticket, decision, now=now, actor=actor)
    elif request.kind == "restriction" or decision.decision == "restrict":
        outcome = await _restrict(session, settings, request, ticket, now=now, actor=actor)
    else:
        outcome = await _uphold_objection(session, settings, request, ticket, decision, now=now)
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


async def _send_export(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    now: datetime,
) -> str:
    document = await export.collect(session, request, ticket, now)
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    stored = storage.put(
        "exports", export.build_zip(document, storage, learner.locale if learner else None)
    )
    token = await issue_link(
        session, request, "export", now=now, max_downloads=EXPORT_DOWNLOADS, file_path=stored.path
    )
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="export",
        subject="export",
        now=now,
        link_url=f"{settings.base_url.rstrip('/')}/privacy/exports/{token}",
        context={
            "expires_at": now + LINK_LIFETIME,
            "downloads": EXPORT_DOWNLOADS,
            "unknown_requester": learner is None,
        },
    )
    await record_event(
        session,
        "system",
        "privacy.export_sent",
        request_target(request),
        tickets=len(document["tickets"]),
    )
    return f"Export sent: {len(document['tickets'])} ticket(s), link valid 7 days."


async def _erase(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    now: datetime,
    actor: str,
) -> str:
    plan = await erasure.plan_erasure(session, request, ticket, now)
    # The confirmation goes out before the address is gone; the request's own ticket and
    # this mail are scrubbed once it has been sent (tasks: privacy.finish_erasures).
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="completed",
        subject="completed",
        now=now,
        context={
            "held": plan.held_numbers,
            "unknown_requester": plan.learner is None,
            "fields": [],
        },
    )
    mentions = await erasure.erase_learner(
        session, settings, storage, request, ticket, plan, now=now, actor=actor
    )
    parts = [f"Erased: {len(plan.delete_ids) + 1} ticket(s)"]
    if plan.held_numbers:
        parts.append(f"kept under legal hold: {', '.join(f'#{n}' for n in plan.held_numbers)}")
    if mentions:
        parts.append(f"{len(mentions)} other ticket(s) mention the learner (redact them)")
    return "; ".join(parts) + "."


async def _rectify(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    ticket: Ticket,
    decision: Fulfilment,
    *,
    now: datetime,
    actor: str,
) -> str:
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    changed: list[str] = []
    if learner is not None:
        changed = await rectification.rectify(
            session,
            request,
            learner,
            name=decision.name,
            email=decision.email,
            organisation=decision.organisation,
            now=now,
            actor=actor,
        )
    elif any(v is not None for v in (decision.name, decision.email, decision.organisation)):
        raise Conflict("The requester is not linked to a learner: there is no profile to correct.")
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="completed",
        subject="completed",
        now=now,
        context={"fields": changed, "unknown_requester": learner is None, "held": []},
    )
    return f"Rectified: {', '.join(changed) or 'nothing needed changing'}."


async def _restrict(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    now: datetime,
    actor: str,
) -> str:
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    if learner is not None and learner.restricted_at is None:
        learner.restricted_at = learner.updated_at = now
        await record_event(
            session, actor, "learner.restricted", f"learner:{learner.id}", request=request.id
        )
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="completed",
        subject="completed",
        now=now,
        context={
            "fields": [],
            "unknown_requester": learner is None,
            "held": [],
            "decision": "restrict",
        },
    )
    return "Processing restricted." if learner is not None else "Recorded (no learner account)."


async def _uphold_objection(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    ticket: Ticket,
    decision: Fulfilment,
    *,
    now: datetime,
) -> str:
    if decision.decision not in (None, "stop"):
        raise ValidationFailed({"decision": f"One of {', '.join(OBJECTION_DECISIONS)}."})
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="completed",
        subject="completed",
        now=now,
        context={
            "fields": [],
            "unknown_requester": request.learner_id is None,
            "held": [],
            "decision": "stop",
        },
    )
    return "Objection upheld: the processing objected to has stopped."


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
