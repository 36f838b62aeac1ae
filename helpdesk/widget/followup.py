"""Operator replies on widget tickets: live in the widget, by mail only if not seen there.

Every reply reaches the widget through the ticket's live channel. A learner with a
*verified* address also gets it by mail, held back for two minutes and cancelled if
their widget reports it shown by then (more precisely: before delivery claims the row,
so a learner reading it at 2:20 while the worker has not yet run gets no mail either).
An unverified address gets no mail at all: anyone can type anyone's address.

The mail links back to the conversation with a signed link (`conversation_link`), good for
`LINK_DAYS` after the mail was written: whoever reads the mailbox may use it, so a mail
found or forwarded later does not open the conversation for ever. The mail also carries our
signed Message-ID and reply address, so answering it lands in the same ticket either way.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.config import Settings
from helpdesk.models import OutboundEmail, Ticket, WidgetConversation

MAIL_DELAY = timedelta(minutes=2)
LINK_DAYS = 30


@dataclass(frozen=True)
class WidgetFollowup:
    """How an operator reply on a widget ticket travels besides the widget."""

    mail: bool  # True only for a verified address
    not_before: datetime
    conversation_url: str


def link_signature(secret_key: str, public_id: str, expires: int) -> str:
    """The signature of a conversation link valid until `expires` (Unix seconds)."""
    message = f"widget-link:{public_id}:{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def link_token(secret_key: str, public_id: str, now: datetime) -> str:
    """The `sig` of a new conversation link: `<expiry>.<signature>`."""
    expires = int((now + timedelta(days=LINK_DAYS)).timestamp())
    return f"{expires}.{link_signature(secret_key, public_id, expires)}"


def link_state(secret_key: str, public_id: str, token: str, now: datetime) -> str:
    """One of "valid", "expired" (genuine but too old), "invalid" (forged, altered, malformed)."""
    expiry, _, signature = token.partition(".")
    if not expiry.isdigit() or len(expiry) > 12:
        return "invalid"
    expected = link_signature(secret_key, public_id, int(expiry))
    if not hmac.compare_digest(expected, signature):
        return "invalid"
    return "valid" if now.timestamp() < int(expiry) else "expired"


def conversation_link(settings: Settings, public_id: str, now: datetime) -> str:
    """The absolute URL of the conversation page sent in reply mail."""
    token = link_token(settings.secret_key, public_id, now)
    return f"{settings.base_url}/support/conversations/{public_id}?sig={token}"


async def widget_followup(
    session: AsyncSession, settings: Settings, ticket: Ticket, now: datetime
) -> WidgetFollowup | None:
    """The terms for a reply on this ticket, or None when it is not a widget conversation."""
    if ticket.channel != "widget":
        return None
    conversation = await session.scalar(
        select(WidgetConversation).where(col(WidgetConversation.ticket_id) == ticket.id)
    )
    if conversation is None:
        return None
    return WidgetFollowup(
        mail=conversation.verified_at is not None,
        not_before=now + MAIL_DELAY,
        conversation_url=conversation_link(settings, conversation.public_id, now),
    )


async def cancel_unseen_mail(
    session: AsyncSession, ticket_id: int, shown_up_to: int, now: datetime
) -> int:
    """Drop held-back reply mail of messages the widget has shown; returns how many.

    Only rows nobody has started to deliver: still queued, never tried and not leased.
    """
    result = await session.execute(
        delete(OutboundEmail).where(
            col(OutboundEmail.ticket_id) == ticket_id,
            col(OutboundEmail.kind) == "reply",
            col(OutboundEmail.message_id) <= shown_up_to,
            col(OutboundEmail.status) == "queued",
            col(OutboundEmail.attempts) == 0,
            col(OutboundEmail.next_attempt_at) > col(OutboundEmail.created_at),
            or_(
                col(OutboundEmail.claimed_until).is_(None),
                col(OutboundEmail.claimed_until) < now,
            ),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
