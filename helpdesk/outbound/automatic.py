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

The acknowledgement is only *queued* while a message is ingested: an unwritten outbox row
(`raw` is null) with its recipient and Message-ID fixed, committed with the new ticket, so
it is never lost and never sent twice. The checks that read the database and the mail
itself are done by the outbox worker under the row's lease (`acknowledgements`).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import String, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.config import Settings
from helpdesk.inbound.linking import is_our_address
from helpdesk.models import Message, OutboundEmail, Ticket
from helpdesk.models.rows import insert_later
from helpdesk.outbound.compose import OutgoingMail, Recipient, compose, to_bytes
from helpdesk.outbound.headers import reply_subject
from helpdesk.outbound.history import ThreadHeaders, replying_to, thread_headers
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
from helpdesk.privacy.restriction import ticket_learner_restricted
from helpdesk.tickets.lifecycle import MessageDraft, append_message
from helpdesk.tickets.service_levels import promised_response_hours

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


def message_refusal(
    settings: Settings, message: Message, *, require_verified_sender: bool = True
) -> str | None:
    """The first reason not to answer `message` automatically that needs no query, or None."""
    if message.direction != "inbound":
        return "not an inbound message"
    if message.machine is not None:
        return f"machine mail ({message.machine})"
    if require_verified_sender and not message.sender_verified:
        return "the sender's From failed DMARC"
    return address_refusal(message.author_email, settings.support_address)


async def automatic_mail_refusal(
    session: AsyncSession,
    settings: Settings,
    message: Message,
    now: datetime,
    *,
    require_verified_sender: bool = True,
    excluding: int | None = None,
) -> str | None:
    """The first reason not to answer `message` automatically, or None when we may.

    `excluding` is the outbox row being decided on, which never counts against itself.
    """
    refusal = message_refusal(settings, message, require_verified_sender=require_verified_sender)
    if refusal is not None or message.author_email is None:
        return refusal
    address = message.author_email
    if await is_suppressed(session, address):
        return "the address is on the suppression list"
    if await answered_recently(session, address, now, excluding=excluding):
        return "already answered automatically within 4 hours"
    if await ticket_learner_restricted(session, message.ticket_id):
        return "the learner's processing is restricted (privacy request)"
    return None


async def lock_address(session: AsyncSession, settings: Settings, address: str) -> None:
    """Serialise automatic-mail decisions about one address until this transaction ends.

    PostgreSQL: a transaction-level advisory lock on the address. SQLite: the caller's
    transaction holds the database's single write lock once it has written anything.
    """
    if not settings.is_sqlite:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"helpdesk.automatic-mail:{address_key(address)}"},
        )


async def answered_recently(
    session: AsyncSession, address: str, now: datetime, *, excluding: int | None = None
) -> bool:
    """True when automatic mail to this address was written within ONCE_PER_ADDRESS of `now`.

    Rows still unwritten (acknowledgements the worker has not decided on yet) do not
    count; the window reaches both ways, so the order in which the worker decides on rows
    never lets two automatic mails to one address come closer than four hours.
    """
    key = address_key(address)
    query = select(col(OutboundEmail.recipients)).where(
        col(OutboundEmail.kind).in_(AUTOMATIC_KINDS),
        col(OutboundEmail.raw).is_not(None),
        col(OutboundEmail.created_at) > now - ONCE_PER_ADDRESS,
        col(OutboundEmail.created_at) < now + ONCE_PER_ADDRESS,
        func.lower(cast(col(OutboundEmail.recipients), String)).like(_loose_pattern(key)),
    )
    if excluding is not None:
        query = query.where(col(OutboundEmail.id) != excluding)
    recent = await session.scalars(query)
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
) -> bool:
    """Queue the acknowledgement of a new ticket as an unwritten outbox row; whether it did.

    Call it for the first message of a newly created ticket, in the same transaction.
    Only the rules that need no query are applied here (machine mail, robots, our own
    addresses, DMARC); the outbox worker applies the rest before it writes the mail.
    """
    if not enabled:
        return False
    refusal = message_refusal(settings, message)
    if refusal is not None or message.author_email is None:
        log.info("no acknowledgement for ticket #%s: %s", ticket.number, refusal)
        return False
    assert ticket.id is not None and message.id is not None, "both rows are written"
    # A plain INSERT, at the commit where the session defers them (every new ticket by
    # mail passes here; nothing reads the row back).
    row = {
        "message_id": message.id,  # the mail it answers, until the worker writes its own
        "ticket_id": ticket.id,
        "kind": "acknowledgement",
        "recipients": [address_key(message.author_email)],
        "rfc_message_id": new_message_id(settings, ticket),
        "raw": None,
        "status": "queued",
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    await insert_later(session, OutboundEmail, row)
    return True


async def write_acknowledgement(
    session: AsyncSession,
    settings: Settings,
    row: OutboundEmail,
    now: datetime,
    *,
    response_hours: int = DEFAULT_RESPONSE_HOURS,
    brand: str = SUPPORT_NAME,
) -> str | None:
    """Decide on a queued acknowledgement and write it into `row`; the refusal, or None.

    The caller holds the row's lease and `lock_address` for its recipient. The mail is
    recorded on the ticket as a system message, which the row then points at.
    """
    ticket = await session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
    trigger = await session.get(Message, row.message_id) if row.message_id is not None else None
    if ticket is None or trigger is None or trigger.ticket_id != ticket.id:
        return "the ticket or its message is gone"
    already = await session.scalar(
        select(col(OutboundEmail.id))
        .where(
            col(OutboundEmail.ticket_id) == ticket.id,
            col(OutboundEmail.kind) == "acknowledgement",
            col(OutboundEmail.raw).is_not(None),
            col(OutboundEmail.id) != row.id,
        )
        .limit(1)
    )
    if already is not None:
        return "already acknowledged"
    refusal = await automatic_mail_refusal(
        session, settings, trigger, row.created_at, excluding=row.id
    )
    if refusal is not None:
        return refusal
    context: dict[str, object] = {
        "ticket_number": ticket.number,
        # The same rule as the ticket's due time (helpdesk.tickets.service_levels).
        "response_hours": promised_response_hours(session, ticket.priority),
    }
    message, mail = await _automatic_mail(
        session,
        settings,
        ticket,
        trigger,
        now,
        "acknowledgement",
        context,
        brand,
        message_id=row.rfc_message_id,
        threading=replying_to(trigger),
    )
    row.raw = to_bytes(compose(mail))
    row.message_id = message.id
    row.updated_at = now
    return None


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
    the DMARC check is skipped here; every other rule of automatic mail applies. Rare
    enough to be written at once, in the ingest transaction.
    """
    if (
        message.author_email
        and message_refusal(settings, message, require_verified_sender=False) is None
    ):
        await lock_address(session, settings, message.author_email)
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
    outgoing, mail = await _automatic_mail(
        session,
        settings,
        ticket,
        message,
        now,
        "too-large",
        context,
        brand,
        message_id=new_message_id(settings, ticket),
        threading=await thread_headers(session, ticket),
    )
    return await add_to_outbox(
        session, mail, kind="notice", ticket=ticket, message=outgoing, now=now
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f}" if size % (1024 * 1024) == 0 else f"{size / 1048576:.1f}"


async def _automatic_mail(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    trigger: Message,
    now: datetime,
    template: str,
    context: dict[str, object],
    brand: str,
    *,
    message_id: str,
    threading: ThreadHeaders,
) -> tuple[Message, OutgoingMail]:
    """Render, record as a system message on the ticket, and build with RFC 3834 headers."""
    assert trigger.author_email is not None
    rendered = render_mail(
        template,
        await learner_locale(session, ticket),
        {**context, "name": trigger.author_name or "", "brand": brand},
    )
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
    return message, mail
