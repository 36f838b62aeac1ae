"""Carrying out a verified privacy request, one function per kind; each tells the learner
the outcome by mail and returns the content-free outcome recorded on the request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models import Learner, PrivacyRequest, Ticket
from helpdesk.privacy import erasure, export, rectification
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.notices import send_notice
from helpdesk.privacy.verification import LINK_LIFETIME, issue_link

EXPORT_DOWNLOADS = 3
OBJECTION_DECISIONS = ("restrict", "erase", "stop")


@dataclass(frozen=True, kw_only=True)
class Fulfilment:
    """What the operator decided, where the kind needs a decision."""

    name: str | None = None
    email: str | None = None
    organisation: str | None = None
    # Objection: restrict the processing, erase, or stop the processing objected to.
    decision: str | None = None


async def send_export(
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


async def erase(
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


async def rectify(
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


async def restrict(
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


async def uphold_objection(
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
