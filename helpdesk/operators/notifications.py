"""Email notifications operators opt in to: a ticket assigned to them, a learner's reply.

The mail is an outbox row written in the transaction that made the change, so it is sent
exactly when the change commits. It says *that* something happened on ticket #N and links
to the inbox, never what: no subject, no message text, no learner name, because the
operator's mailbox is outside the helpdesk and a restricted learner's words must stay
inside it. Nobody is notified of their own action, nor while disabled.

The notification is not tied to the ticket in the outbox (`ticket_id` is null) and has an
unsigned Message-ID, so an operator answering it never threads into the learner's ticket.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from email.errors import MessageError

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.config import Settings
from helpdesk.models import Message, Operator, OutboundEmail, Ticket
from helpdesk.outbound.compose import ComposeError, OutgoingMail, Recipient, compose, to_bytes
from helpdesk.outbound.headers import is_sendable
from helpdesk.outbound.templates import render_mail

log = logging.getLogger("helpdesk.operators.notifications")

# The sessions' `info` carries the settings (helpdesk.bootstrap), so the ticket services
# can write this mail without taking settings through every signature.
SETTINGS_INFO_KEY = "helpdesk.settings"
NOTIFICATION_KIND = "notification"
SENDER_NAME = "Helpdesk"


def settings_info(settings: Settings) -> dict[str, Settings]:
    """The `info` entry that lets a session's services write notifications."""
    return {SETTINGS_INFO_KEY: settings}


async def notify_assigned(
    session: AsyncSession, ticket: Ticket, *, by: Operator, now: datetime
) -> OutboundEmail | None:
    """Tell the new assignee of `ticket`, if they opted in and did not assign it themselves."""
    if ticket.assignee_id is None or ticket.assignee_id == by.id:
        return None
    return await _notify(session, ticket, ticket.assignee_id, "assigned", "notify_assigned", now)


async def notify_learner_reply(
    session: AsyncSession, ticket: Ticket, message: Message, *, now: datetime
) -> OutboundEmail | None:
    """Tell the assignee that the learner wrote again on their ticket (if they opted in)."""
    if ticket.assignee_id is None or message.direction != "inbound" or message.machine:
        return None
    if message.author_kind not in ("learner", "unknown"):
        return None
    return await _notify(
        session, ticket, ticket.assignee_id, "learner-reply", "notify_learner_reply", now
    )


async def _notify(
    session: AsyncSession, ticket: Ticket, operator_id: int, event: str, choice: str, now: datetime
) -> OutboundEmail | None:
    operator = await session.get(Operator, operator_id)
    if operator is None or not operator.active or not getattr(operator, choice):
        return None
    settings = session.info.get(SETTINGS_INFO_KEY)
    if not isinstance(settings, Settings):
        log.warning("no settings on this session: notification for #%s not written", ticket.number)
        return None
    if not is_sendable(operator.email):
        return None
    rendered = render_mail(
        f"operator-{event}",
        operator.mail_locale,
        {
            "name": operator.name,
            "ticket_number": ticket.number,
            "ticket_url": f"{settings.base_url}/inbox/tickets/{ticket.number}",
            "account_url": f"{settings.base_url}/inbox/account",
        },
    )
    subject = _SUBJECTS[event][
        operator.mail_locale if operator.mail_locale in ("nb", "en") else "en"
    ]
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name=SENDER_NAME,
        reply_to=settings.support_address,
        to=Recipient(operator.email, operator.name),
        subject=subject.format(number=ticket.number),
        message_id=f"notify.{secrets.token_hex(12)}@{settings.support_domain}",
        date=now,
        text=rendered.text,
        html=rendered.html,
        # Auto-Submitted: out-of-office replies from the operator's mailbox stay away.
        automatic=True,
        loop_stamp=settings.support_address,
    )
    try:
        raw = to_bytes(compose(mail))
    except (ComposeError, MessageError, ValueError):
        # A notification must never cost the learner's message or the change itself.
        log.warning("notification for #%s could not be written", ticket.number, exc_info=True)
        return None
    outbound = OutboundEmail(
        kind=NOTIFICATION_KIND,
        recipients=[operator.email],
        rfc_message_id=mail.message_id,
        raw=raw,
        status="queued",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(outbound)
    return outbound


_SUBJECTS = {
    "assigned": {
        "nb": "Sak #{number} er tildelt deg",
        "en": "Ticket #{number} was assigned to you",
    },
    "learner-reply": {
        "nb": "Ny melding fra kunden på sak #{number}",
        "en": "New message from the learner on ticket #{number}",
    },
}
