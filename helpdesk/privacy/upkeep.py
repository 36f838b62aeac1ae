"""Scheduled upkeep of privacy cases: pending confirmation links, deadline reminders to
operators, expired links with their export files, and delivered platform events."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.models import (
    AuditEvent,
    Operator,
    OutboundEmail,
    PlatformEvent,
    PrivacyLink,
    PrivacyRequest,
    Ticket,
)
from helpdesk.models.privacy import OPEN_STATUSES
from helpdesk.outbound.compose import OutgoingMail, Recipient, compose, to_bytes
from helpdesk.outbound.headers import is_sendable
from helpdesk.outbound.templates import mail_locale, render_mail
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.deadlines import REMINDER_DAYS, current_deadline
from helpdesk.privacy.notices import KIND_LABELS
from helpdesk.privacy.verification import ask_for_verification

# A platform event names a learner (their external id): once the platform acknowledged it,
# it is kept this long as evidence the erasure/rectification was passed on, then deleted.
# Undelivered events stay until delivered, however old (they are retried with back-off).
DELIVERED_EVENTS_KEPT = timedelta(days=30)

_REMINDER_SUBJECT = {
    "nb": "Personvernforespørsel i sak #{number} har frist om {days} dager",
    "en": "Privacy request in ticket #{number} is due in {days} days",
}


async def send_pending_verifications(
    session: AsyncSession, settings: Settings, now: datetime
) -> int:
    """Mail a confirmation link for requests that wait for one but never got one (web form)."""
    has_link = exists().where(
        col(PrivacyLink.request_id) == col(PrivacyRequest.id), col(PrivacyLink.purpose) == "verify"
    )
    waiting = list(
        await session.scalars(
            select(PrivacyRequest).where(
                col(PrivacyRequest.status) == "awaiting_verification", ~has_link
            )
        )
    )
    for request in waiting:
        ticket = await session.get(Ticket, request.ticket_id)
        assert ticket is not None
        await ask_for_verification(session, settings, request, ticket, now=now)
    return len(waiting)


async def remind_deadlines(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Mail the assignee (or every admin) 7 and 2 days before an open request is due; once each."""
    sent = 0
    rows = await session.execute(
        select(PrivacyRequest, Ticket)
        .join(Ticket, col(Ticket.id) == col(PrivacyRequest.ticket_id))
        .where(col(PrivacyRequest.status).in_(OPEN_STATUSES))
    )
    for request, ticket in rows.tuples().all():
        days = (current_deadline(request).date() - now.date()).days
        if days not in REMINDER_DAYS or await _reminded(session, request, days):
            continue
        for operator in await _reminded_operators(session, ticket):
            _queue_reminder(session, settings, operator, request, ticket, days, now)
            sent += 1
        await record_event(
            session, "system", "privacy.reminder_sent", request_target(request), days=days
        )
    return sent


async def _reminded(session: AsyncSession, request: PrivacyRequest, days: int) -> bool:
    events = await session.scalars(
        select(AuditEvent).where(
            col(AuditEvent.action) == "privacy.reminder_sent",
            col(AuditEvent.target) == request_target(request),
        )
    )
    return any((event.details or {}).get("days") == days for event in events)


async def _reminded_operators(session: AsyncSession, ticket: Ticket) -> list[Operator]:
    if ticket.assignee_id is not None:
        assignee = await session.get(Operator, ticket.assignee_id)
        if assignee is not None and assignee.active:
            return [assignee]
    return list(
        await session.scalars(
            select(Operator).where(col(Operator.role) == "admin", col(Operator.active))
        )
    )


def _queue_reminder(
    session: AsyncSession,
    settings: Settings,
    operator: Operator,
    request: PrivacyRequest,
    ticket: Ticket,
    days: int,
    now: datetime,
) -> None:
    # Content-free like every operator notification: number, kind and date, no names.
    if not is_sendable(operator.email):
        return
    locale = mail_locale(operator.mail_locale)
    rendered = render_mail(
        "privacy-reminder",
        locale,
        {
            "name": operator.name,
            "ticket_number": ticket.number,
            "kind_label": KIND_LABELS[locale][request.kind],
            "days": days,
            "due_at": current_deadline(request),
            "ticket_url": f"{settings.base_url.rstrip('/')}/inbox/privacy/{request.id}",
        },
    )
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name="Helpdesk",
        reply_to=settings.support_address,
        to=Recipient(operator.email, operator.name),
        subject=_REMINDER_SUBJECT[locale].format(number=ticket.number, days=days),
        message_id=f"privacy-reminder.{secrets.token_hex(12)}@{settings.support_domain}",
        date=now,
        text=rendered.text,
        html=rendered.html,
        automatic=True,
        loop_stamp=settings.support_address,
    )
    session.add(
        OutboundEmail(
            kind="notification",
            recipients=[operator.email],
            rfc_message_id=mail.message_id,
            raw=to_bytes(compose(mail)),
            status="queued",
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


async def clean_expired_links(session: AsyncSession, storage: FileStorage, now: datetime) -> int:
    """Delete links past their 7 days, and export files that expired or were used up."""
    links = list(
        await session.scalars(select(PrivacyLink).where(col(PrivacyLink.file_path).is_not(None)))
    )
    for link in links:
        if link.file_path and (link.expires_at <= now or link.downloads >= link.max_downloads):
            storage.delete(link.file_path)
            link.file_path = None
    result = await session.execute(delete(PrivacyLink).where(col(PrivacyLink.expires_at) <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def clean_delivered_events(session: AsyncSession, now: datetime) -> int:
    """Delete platform events acknowledged more than `DELIVERED_EVENTS_KEPT` ago."""
    result = await session.execute(
        delete(PlatformEvent).where(
            col(PlatformEvent.status) == "delivered",
            col(PlatformEvent.delivered_at) < now - DELIVERED_EVENTS_KEPT,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
