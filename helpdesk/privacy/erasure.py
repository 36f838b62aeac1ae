"""Erasure (GDPR art. 17): the learner's support history goes, bookkeeping stays.

Deleted: the learner's tickets with messages, attachments and files, raw mail, outgoing
mail and its delivery log, widget conversations with their codes and tokens; enrolments.
Anonymised: the learner record. Kept: the bookkeeping fields of orders (number, date,
amount, currency, buyer organisation number) for the accounting retention window, and
tickets under legal hold (the reply says so). The request's own ticket is reduced to a
content-free record only after the confirmation mail has gone (`finish_erasure`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.models import (
    Enrolment,
    InboundMail,
    Learner,
    Order,
    OutboundEmail,
    PrivacyRequest,
    SuppressedAddress,
    Ticket,
    WidgetConversation,
)
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.purge import ERASED, delete_inbound_mail, delete_outbound, delete_tickets
from helpdesk.privacy.redaction import record_mentions
from helpdesk.privacy.webhook import queue_platform_event


@dataclass
class ErasurePlan:
    """Which tickets go, which stay under legal hold, and who the learner was."""

    learner: Learner | None
    delete_ids: list[int] = field(default_factory=list)
    held_numbers: list[int] = field(default_factory=list)


def on_legal_hold(ticket: Ticket, now: datetime) -> bool:
    """A hold whose end date has not passed."""
    return ticket.legal_hold_until is not None and ticket.legal_hold_until >= now.date()


async def plan_erasure(
    session: AsyncSession, request: PrivacyRequest, own_ticket: Ticket, now: datetime
) -> ErasurePlan:
    """The learner's tickets (linked, or from their registered address) besides this one."""
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    plan = ErasurePlan(learner)
    if learner is None:
        return plan  # an unknown requester: only the request's own ticket is theirs
    tickets = await session.scalars(
        select(Ticket).where(
            or_(col(Ticket.learner_id) == learner.id, col(Ticket.requester) == learner.email_key),
            col(Ticket.id) != own_ticket.id,
        )
    )
    for ticket in tickets:
        assert ticket.id is not None
        if on_legal_hold(ticket, now):
            plan.held_numbers.append(ticket.number)
        else:
            plan.delete_ids.append(ticket.id)
    plan.held_numbers.sort()
    return plan


async def erase_learner(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    request: PrivacyRequest,
    own_ticket: Ticket,
    plan: ErasurePlan,
    *,
    now: datetime,
    actor: str,
) -> list[int]:
    """Carry out `plan`; returns the numbers of other tickets that still mention the learner.

    The confirmation mail must already be queued: after this the learner's address is gone.
    """
    learner = plan.learner
    await delete_tickets(session, settings, storage, plan.delete_ids)
    mentions: list[int] = []
    if learner is not None:
        assert learner.id is not None
        held_ids = [
            ticket_id
            for ticket_id in await session.scalars(
                select(col(Ticket.id)).where(col(Ticket.number).in_(plan.held_numbers))
            )
            if ticket_id is not None
        ]
        mentions = await record_mentions(
            session,
            storage,
            request,
            [learner.name, learner.email],
            exclude_ticket_ids={own_ticket.id or 0, *held_ids},
        )
        keep = {own_ticket.id or 0, *held_ids}
        await _delete_loose_records(session, settings, storage, learner, keep)
        await queue_platform_event(
            session, "learner.erasure_requested", learner.external_id, now=now
        )
        _anonymise(learner, now)
        await session.execute(delete(Enrolment).where(col(Enrolment.learner_id) == learner.id))
        # Bookkeeping only: number, date, amount, currency, buyer organisation number.
        await session.execute(
            update(Order)
            .where(col(Order.learner_id) == learner.id)
            .values(learner_id=None, course=None)
        )
    await record_event(
        session,
        actor,
        "privacy.erasure_carried_out",
        request_target(request),
        tickets_deleted=len(plan.delete_ids),
        tickets_held=len(plan.held_numbers),
        tickets_mentioning=len(mentions),
    )
    return mentions


async def _delete_loose_records(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    learner: Learner,
    keep_ticket_ids: set[int],
) -> None:
    """Records tied to the learner's address rather than to one of their tickets
    (kept: the request's own ticket, scrubbed later, and tickets under legal hold)."""
    address = learner.email_key
    raw_mail = await session.scalars(
        select(InboundMail).where(
            col(InboundMail.sender) == address,
            or_(
                col(InboundMail.ticket_id).is_(None),
                col(InboundMail.ticket_id).not_in(keep_ticket_ids),
            ),
        )
    )
    await delete_inbound_mail(session, storage, raw_mail)
    candidates = await session.execute(
        select(col(OutboundEmail.id), col(OutboundEmail.recipients)).where(
            or_(
                col(OutboundEmail.ticket_id).is_(None),
                col(OutboundEmail.ticket_id).not_in(keep_ticket_ids),
            ),
            func.lower(cast(OutboundEmail.recipients, Text)).contains(address, autoescape=True),
        )
    )
    outbound_ids = [
        row_id for row_id, recipients in candidates if address in [r.lower() for r in recipients]
    ]
    await delete_outbound(session, settings, outbound_ids)
    await session.execute(
        delete(SuppressedAddress).where(col(SuppressedAddress.address) == address)
    )
    await session.execute(
        delete(WidgetConversation).where(
            col(WidgetConversation.learner_id) == learner.id,
            col(WidgetConversation.ticket_id).not_in(keep_ticket_ids),
        )
    )


def _anonymise(learner: Learner, now: datetime) -> None:
    placeholder = f"erased-{learner.id}@erased.invalid"
    learner.external_id = f"erased-{learner.id}"
    learner.email = learner.email_key = placeholder
    learner.name = ERASED
    learner.organisation = None
    learner.restricted_at = None
    learner.erased_at = learner.updated_at = now
