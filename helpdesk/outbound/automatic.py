"""Automatic mail (RFC 3834): the acknowledgement of a new ticket and the too-large notice.

Automatic answers are where mail loops start, so each one has to pass every check of
`automatic_mail_refusal` first: never to machine mail (auto-replies, bounces, lists, our own
mail coming back), never to addresses that are not people (no-reply, mailer-daemon,
postmaster, list robots), never to a suppressed address, never to a sender whose From
failed DMARC (that would be backscatter to a forged address), and to one address at most
once within four hours. RFC 3834 §2 asks responders not to answer the same sender again
and again; four hours is this product's compromise, since a learner who writes again
tomorrow should hear that the new ticket arrived.
Each carries `Auto-Submitted: auto-replied` (§5) so that well-behaved responders do not
answer it; human replies never do.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import String, cast, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.config import Settings
from helpdesk.inbound.linking import is_our_address
from helpdesk.models import Message, OutboundEmail, Ticket
from helpdesk.outbound.compose import OutgoingMail, Recipient
from helpdesk.outbound.headers import reply_subject
from helpdesk.outbound.history import thread_headers
from helpdesk.outbound.outbox import (
    SUPPORT_NAME,
    add_to_outbox,
    deliverable,
    learner_locale,
    new_message_id,
    reply_address,
)
from helpdesk.outbound.suppression import address_key, is_suppressed
from helpdesk.outbound.templates import render_mail
from helpdesk.tickets.lifecycle import MessageDraft, append_message

log = logging.getLogger("helpdesk.outbound")

AUTOMATIC_KINDS = ("acknowledgement", "notice")
ONCE_PER_ADDRESS = timedelta(hours=4)
DEFAULT_RESPONSE_HOURS = 24
# Local parts of robots and role addresses that never read answers (RFC 2142 §4-5).
_NOT_A_PERSON = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?"
    r"|listserv|majordomo|owner-.+|.+-(?:request|owner|bounces?))$",
    re.IGNORECASE,
)


def address_refusal(address: str | None, support_address: str) -> str | None:
    """Why no automatic mail may go to this address (without naming it), or None."""
    if not address or not deliverable(address):
        return "no usable sender address"
    if is_our_address(address, support_address):
        return "the sender is our own address"
    local = address.rpartition("@")[0].split("+", 1)[0]
    if _NOT_A_PERSON.match(local):
        return "the sender is a robot or role address (no-reply, mailer-daemon, …)"
    return None


async def automatic_mail_refusal(
    session: AsyncSession,
    settings: Settings,
    message: Message,
    now: datetime,
    *,
    require_verified_sender: bool = True,
) -> str | None:
    """The first reason not to answer `message` automatically, or None when we may."""
    if message.direction != "inbound":
        return "not an inbound message"
    if message.machine is not None:
        return f"machine mail ({message.machine})"
    if require_verified_sender and not message.sender_verified:
        return "the sender's From failed DMARC"
    address = message.author_email
    refusal = address_refusal(address, settings.support_address)
    if refusal is not None or address is None:
        return refusal
    if await is_suppressed(session, address):
        return "the address is on the suppression list"
    if await answered_recently(session, address, now):
        return "already answered automatically within 4 hours"
    return None


async def answered_recently(session: AsyncSession, address: str, now: datetime) -> bool:
    """True when automatic mail went to this address within ONCE_PER_ADDRESS."""
    key = address_key(address)
    recent = await session.scalars(
        select(col(OutboundEmail.recipients)).where(
            col(OutboundEmail.kind).in_(AUTOMATIC_KINDS),
            col(OutboundEmail.created_at) > now - ONCE_PER_ADDRESS,
            func.lower(cast(col(OutboundEmail.recipients), String)).like(_loose_pattern(key)),
        )
    )
    return any(key in (address_key(r) for r in recipients) for recipients in recent)


def _loose_pattern(key: str) -> str:
    """A LIKE pattern every JSON text holding `key` matches (false positives are fine).

    Without it every automatic mail of the last four hours is loaded to look at one
    address. Only plain ASCII characters are matched literally; anything JSON may escape
    or write differently (JSONB on PostgreSQL, SQLite's JSON text), and LIKE's own `%`,
    `_` and escape character, becomes `%`. The exact comparison stays in Python.
    """
    literal = "".join(c if c.isascii() and (c.isalnum() or c in ".-+@") else "%" for c in key)
    return re.sub("%+", "%", f"%{literal}%")


async def maybe_acknowledge(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    message: Message,
    now: datetime,
    *,
    enabled: bool = True,
    response_hours: int = DEFAULT_RESPONSE_HOURS,
    brand: str = SUPPORT_NAME,
) -> OutboundEmail | None:
    """Queue the acknowledgement of a new ticket, unless a rule says not to (then None).

    Call it for the first message of a newly created ticket, in the same transaction.
    """
    if not enabled:
        return None
    already = await session.scalar(
        select(
            exists().where(
                col(OutboundEmail.ticket_id) == ticket.id,
                col(OutboundEmail.kind) == "acknowledgement",
            )
        )
    )
    refusal = (
        "already acknowledged"
        if already
        else await automatic_mail_refusal(session, settings, message, now)
    )
    if refusal is not None:
        log.info("no acknowledgement for ticket #%s: %s", ticket.number, refusal)
        return None
    context: dict[str, object] = {"ticket_number": ticket.number, "response_hours": response_hours}
    return await _queue_automatic(
        session, settings, ticket, message, now, "acknowledgement", context, brand
    )


async def queue_notice(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    message: Message,
    now: datetime,
    *,
    size_bytes: int,
    limit_bytes: int,
    brand: str = SUPPORT_NAME,
) -> OutboundEmail | None:
    """Tell the sender of an oversized message that it could not be taken in whole.

    The quarantined message is always marked unverified (only its headers were read), so
    the DMARC check is skipped here; every other rule of automatic mail applies.
    """
    refusal = await automatic_mail_refusal(
        session, settings, message, now, require_verified_sender=False
    )
    if refusal is not None:
        log.info("no too-large notice for ticket #%s: %s", ticket.number, refusal)
        return None
    context: dict[str, object] = {
        "ticket_number": ticket.number,
        "subject": ticket.subject,
        "size_mb": _megabytes(size_bytes),
        "limit_mb": _megabytes(limit_bytes),
    }
    return await _queue_automatic(
        session, settings, ticket, message, now, "too-large", context, brand
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f}" if size % (1024 * 1024) == 0 else f"{size / 1048576:.1f}"


async def _queue_automatic(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    trigger: Message,
    now: datetime,
    template: str,
    context: dict[str, object],
    brand: str,
) -> OutboundEmail:
    """Render, record as a system message on the ticket, and queue with RFC 3834 headers."""
    assert trigger.author_email is not None
    rendered = render_mail(
        template,
        await learner_locale(session, ticket),
        {**context, "name": trigger.author_name or "", "brand": brand},
    )
    message_id = new_message_id(settings, ticket)
    threading = await thread_headers(session, ticket)
    draft = MessageDraft(
        direction="outbound",
        text=rendered.text,
        author_kind="system",
        author_name=brand,
        rfc_message_id=message_id,
        # No `sender`: (sender, Message-ID) is the key of *inbound* mail, and our own mail
        # looping back is stored under our address with this very Message-ID.
        sender=None,
        in_reply_to=threading.in_reply_to,
        references=" ".join(threading.references) or None,
    )
    # A system message: shown on the ticket with its delivery status, moves nothing.
    message = await append_message(session, ticket, draft, now=now)
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name=brand,
        reply_to=reply_address(settings, ticket),
        to=Recipient(address_key(trigger.author_email), trigger.author_name),
        subject=reply_subject(ticket.subject, ticket.number, prefix="Auto:"),
        message_id=message_id,
        date=now,
        text=rendered.text,
        html=rendered.html,
        in_reply_to=threading.in_reply_to,
        references=threading.references,
        automatic=True,
        loop_stamp=settings.support_address,
    )
    kind = "acknowledgement" if template == "acknowledgement" else "notice"
    return await add_to_outbox(session, mail, kind=kind, ticket=ticket, message=message, now=now)
