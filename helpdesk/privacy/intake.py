"""Intake: a ticket becomes a privacy case (web form, operator conversion, detection).

Detection only *suggests* a case (status `suggested`) for an operator to confirm; the web
form and an operator start a confirmed one, which then either counts as verified (a verified
widget identity, or an unknown requester whose case concerns only the ticket) or waits for
the learner to confirm a link mailed to their registered address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models import PrivacyRequest, Ticket
from helpdesk.models.privacy import KINDS
from helpdesk.operators.notifications import SETTINGS_INFO_KEY
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.deadlines import due_date
from helpdesk.privacy.verification import ask_for_verification, assess_identity


async def request_for_ticket(session: AsyncSession, ticket: Ticket) -> PrivacyRequest | None:
    """The privacy case of this ticket, if it has one (at most one per ticket)."""
    result = await session.execute(
        select(PrivacyRequest).where(col(PrivacyRequest.ticket_id) == ticket.id)
    )
    return result.scalar_one_or_none()


async def start_request(
    session: AsyncSession,
    ticket: Ticket,
    kind: str,
    *,
    now: datetime,
    actor: str,
    suggested: bool = False,
    received_at: datetime | None = None,
    settings: Settings | None = None,
) -> PrivacyRequest:
    """Create the ticket's privacy case (due one calendar month after receipt), or confirm
    a suggested one with `kind`; audited.

    A confirmed case is assessed at once: verified, or awaiting verification. With
    `settings` the confirmation link is mailed now; without, the `privacy.send_verifications`
    task mails it within a minute.
    """
    if kind not in KINDS:
        raise ValidationFailed({"kind": f"One of {', '.join(KINDS)}."})
    assert ticket.id is not None, "start_request needs a stored ticket"
    request = await request_for_ticket(session, ticket)
    if request is not None:
        if suggested:
            return request  # detected again: nothing new
        await _claim_suggestion(session, request, ticket, kind, now)
        action = "privacy.request_confirmed"
    else:
        received = received_at or now
        request = PrivacyRequest(
            ticket_id=ticket.id,
            learner_id=ticket.learner_id,
            kind=kind,
            status="suggested",
            received_at=received,
            due_at=due_date(received),
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(request)
                await session.flush()
        except IntegrityError:
            # Someone else made this ticket's request at the same moment (one per ticket).
            if suggested:
                existing = await request_for_ticket(session, ticket)
                assert existing is not None
                return existing
            raise _already_started(ticket) from None
        action = "privacy.request_suggested" if suggested else "privacy.request_started"
    await record_event(session, actor, action, request_target(request), kind=kind)
    if not suggested:
        settings = settings or _session_settings(session)
        await _assess(session, request, ticket, now=now, actor=actor, settings=settings)
    request.updated_at = now
    return request


def _already_started(ticket: Ticket, request: PrivacyRequest | None = None) -> Conflict:
    what = f"a {request.kind} request ({request.status.replace('_', ' ')})" if request else "one"
    return Conflict(
        f"Ticket #{ticket.number} already has a privacy request: {what}. "
        "Another operator may have just made it; reload to see it."
    )


async def _claim_suggestion(
    session: AsyncSession, request: PrivacyRequest, ticket: Ticket, kind: str, now: datetime
) -> None:
    """Confirm a suggested case with `kind`, or 409 if it is no longer a suggestion.

    A conditional UPDATE, so of two operators confirming at the same moment exactly one
    matches the row (the other's UPDATE waits for the first commit, then matches nothing).
    """
    claimed = await session.execute(
        update(PrivacyRequest)
        .where(col(PrivacyRequest.id) == request.id, col(PrivacyRequest.status) == "suggested")
        .values(kind=kind, status="awaiting_verification", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(request)
        raise _already_started(ticket, request)
    request.kind, request.status = kind, "awaiting_verification"


def _session_settings(session: AsyncSession) -> Settings | None:
    # Runtime sessions carry the settings in `info` (helpdesk.bootstrap).
    found = session.info.get(SETTINGS_INFO_KEY)
    return found if isinstance(found, Settings) else None


async def _assess(
    session: AsyncSession,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    now: datetime,
    actor: str,
    settings: Settings | None,
) -> None:
    request.learner_id = ticket.learner_id
    method = await assess_identity(session, ticket)
    if method is None:
        request.status = "awaiting_verification"
        if settings is not None:
            await ask_for_verification(session, settings, request, ticket, now=now)
        return
    request.status, request.verified_at, request.verification_method = "verified", now, method
    await record_event(
        session, actor, "privacy.request_verified", request_target(request), method=method
    )
