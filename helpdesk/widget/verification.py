"""Verifying who a widget learner is: a signed identity token, or a code sent by email.

Until then the conversation is unverified: its ticket shows no learner data, privacy
actions need verification, and replies are not mailed. Verifying links the ticket to the
learner (by the platform's external id, else by the proven address) and is audited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.errors import Conflict
from helpdesk.live import announce_ticket_change
from helpdesk.models import Learner, Message, OutboundEmail, Ticket, WidgetConversation
from helpdesk.outbound.compose import OutgoingMail, Recipient
from helpdesk.outbound.outbox import SUPPORT_NAME, add_to_outbox, new_message_id, reply_address
from helpdesk.outbound.suppression import is_suppressed
from helpdesk.outbound.templates import mail_locale, render_mail
from helpdesk.tickets.lifecycle import find_learner_id, target
from helpdesk.widget.codes import CODE_LIFETIME, CodeCheck, check_code, issue_code
from helpdesk.widget.identity import PlatformIdentity

_CODE_SUBJECT = {"nb": "Koden din fra {brand}", "en": "Your code from {brand}"}


async def mark_verified(
    session: AsyncSession,
    conversation: WidgetConversation,
    *,
    email: str,
    method: str,
    learner_id: int | None,
    now: datetime,
) -> None:
    """Record the proof and link the ticket to the learner (content-free audit event)."""
    ticket = await session.get(Ticket, conversation.ticket_id)
    assert ticket is not None
    conversation.email = email
    conversation.verified_at = now
    conversation.verification_method = method
    conversation.learner_id = learner_id
    ticket.requester = email.strip().lower()
    ticket.learner_id = learner_id
    ticket.updated_at = now
    # The learner's widget messages (no Message-ID: not mail) now come from a proven address.
    await session.execute(
        update(Message)
        .where(
            col(Message.ticket_id) == ticket.id,
            col(Message.direction) == "inbound",
            col(Message.rfc_message_id).is_(None),
        )
        .values(sender_verified=True)
    )
    await record_event(
        session,
        "widget",
        "widget.verified",
        target(ticket),
        method=method,
        learner_linked=learner_id is not None,
    )
    announce_ticket_change(session, ticket)


async def verify_identity_token(
    session: AsyncSession,
    conversation: WidgetConversation,
    identity: PlatformIdentity,
    now: datetime,
) -> None:
    """The course platform vouches for the learner: verified at once."""
    learner_id = await session.scalar(
        select(col(Learner.id)).where(col(Learner.external_id) == identity.external_id)
    )
    if learner_id is None:
        learner_id = await find_learner_id(session, identity.email)
    await mark_verified(
        session,
        conversation,
        email=identity.email,
        method="identity_token",
        learner_id=learner_id,
        now=now,
    )


async def send_code(
    session: AsyncSession,
    settings: Settings,
    conversation: WidgetConversation,
    now: datetime,
    *,
    locale: str | None = None,
    brand: str = SUPPORT_NAME,
) -> OutboundEmail:
    """Mail a fresh code to the conversation's address (rate-limited; see `codes`)."""
    if conversation.verified_at is not None:
        raise Conflict("This conversation is already verified.")
    if await is_suppressed(session, conversation.email):
        raise Conflict("We cannot send mail to this address. Please contact us by email.")
    ticket = await session.get(Ticket, conversation.ticket_id)
    assert ticket is not None
    code = await issue_code(session, settings.secret_key, conversation, now)
    chosen = mail_locale(locale)
    rendered = render_mail(
        "verification-code",
        chosen,
        {
            "code": code,
            "name": conversation.name,
            "brand": brand,
            "minutes": int(CODE_LIFETIME.total_seconds() // 60),
        },
    )
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name=brand,
        reply_to=reply_address(settings, ticket),
        to=Recipient(conversation.email, conversation.name),
        subject=_CODE_SUBJECT[chosen].format(brand=brand),
        message_id=new_message_id(settings, ticket),
        date=now,
        text=rendered.text,
        html=rendered.html,
        automatic=True,
        loop_stamp=settings.support_address,
    )
    outbound = await add_to_outbox(
        session, mail, kind="verification", ticket=ticket, message=None, now=now
    )
    await record_event(session, "widget", "widget.code_sent", target(ticket))
    return outbound


async def confirm_code(
    session: AsyncSession,
    settings: Settings,
    conversation: WidgetConversation,
    code: str,
    now: datetime,
) -> CodeCheck:
    """Try a code; on success the conversation is verified. Commit either way."""
    if conversation.verified_at is not None:
        return CodeCheck(True)
    result = await check_code(session, settings.secret_key, conversation, code, now)
    if result.accepted:
        learner_id = await find_learner_id(session, conversation.email)
        await mark_verified(
            session,
            conversation,
            email=conversation.email,
            method="code",
            learner_id=learner_id,
            now=now,
        )
    return result
