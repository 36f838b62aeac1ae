"""Writing outgoing mail into the outbox: recipients, identity, the `OutboundEmail` row.

The row is added to the caller's session, so it commits (or rolls back) together with
the message it carries; delivery picks up `queued` rows whose `next_attempt_at` has come.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.config import Settings
from helpdesk.inbound.linking import is_our_address
from helpdesk.models import Learner, Message, OutboundEmail, Ticket
from helpdesk.outbound.compose import OutgoingMail, compose, to_bytes
from helpdesk.outbound.headers import is_sendable
from helpdesk.signing import make_message_id, make_reply_address

# The display name of our From; one brand per installation for now.
SUPPORT_NAME = "Kundeservice"
# "verification": a widget learner's one-time code (never on the ticket as a message).
OUTBOUND_KINDS = ("reply", "acknowledgement", "notice", "verification")


def deliverable(address: str) -> bool:
    """An address mail can go to: well-formed, and not in the reserved `.invalid` TLD."""
    return is_sendable(address) and not address.lower().rstrip(".").endswith(".invalid")


def reply_recipients(ticket: Ticket, support_address: str) -> tuple[str, list[str]]:
    """DESIGN §7: To the requester, Cc the other participants; never ourselves, never twice."""
    cc = [
        address
        for address in dict.fromkeys(ticket.participants)
        if address != ticket.requester
        and not is_our_address(address, support_address)
        and deliverable(address)
    ]
    return ticket.requester, cc


def new_message_id(settings: Settings, ticket: Ticket) -> str:
    """Our signed Message-ID for mail about this ticket, fixed when the row is written."""
    return make_message_id(settings.secret_key, settings.support_domain, ticket.number)


def reply_address(settings: Settings, ticket: Ticket) -> str:
    """The ticket's signed reply address, `support+<ticket>.<hmac>@domain`."""
    return make_reply_address(settings.secret_key, settings.support_address, ticket.number)


async def learner_locale(session: AsyncSession, ticket: Ticket) -> str | None:
    """The linked learner's locale, or None (English) when we do not know who wrote."""
    if ticket.learner_id is None:
        return None
    learner = await session.get(Learner, ticket.learner_id)
    return learner.locale if learner is not None else None


async def add_to_outbox(
    session: AsyncSession,
    mail: OutgoingMail,
    *,
    kind: str,
    ticket: Ticket,
    message: Message | None,
    now: datetime,
    not_before: datetime | None = None,
) -> OutboundEmail:
    """Compose `mail` and queue it: the bytes and Message-ID are final from here on.

    `not_before` holds it back until then (a widget reply mailed only if not seen live).
    """
    if kind not in OUTBOUND_KINDS:
        raise ValueError(f"kind must be one of {OUTBOUND_KINDS}")
    raw = to_bytes(compose(mail))
    recipients = list(dict.fromkeys([mail.to.address, *mail.cc]))
    outbound = OutboundEmail(
        message_id=message.id if message is not None else None,
        ticket_id=ticket.id,
        kind=kind,
        recipients=recipients,
        rfc_message_id=mail.message_id,
        raw=raw,
        status="queued",
        next_attempt_at=not_before or now,
        created_at=now,
        updated_at=now,
    )
    session.add(outbound)
    await session.flush()
    return outbound
