"""Splitting a learner's message that raises a new matter off into a ticket of its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.models import Message, Operator, Ticket
from helpdesk.tickets.lifecycle import clean_subject, find_learner_id, target
from helpdesk.tickets.moves import actor_of, add_system_note, message_of, move_messages
from helpdesk.tickets.numbers import allocate_ticket_number


async def split_message(
    session: AsyncSession,
    ticket: Ticket,
    message_id: int,
    *,
    operator: Operator,
    now: datetime,
    subject: str | None = None,
) -> Ticket:
    """Open a new ticket with this inbound message; the original ticket keeps the rest."""
    message = await message_of(session, ticket, message_id)
    if message.direction != "inbound":
        raise Conflict("Only a message from the learner's side can start a new ticket.")
    others = await session.scalar(
        select(col(Message.id)).where(
            col(Message.ticket_id) == ticket.id, col(Message.id) != message_id
        )
    )
    if others is None:
        raise Conflict(f"It is the only message of #{ticket.number}; there is nothing to split.")
    requester = (message.author_email or message.sender or ticket.requester).lower()
    # A forged From (dmarc=fail) must not put a learner's orders next to a stranger's mail.
    learner_id = await find_learner_id(session, requester) if message.sender_verified else None
    new_ticket = Ticket(
        number=await allocate_ticket_number(session, now),
        subject=clean_subject(subject or ticket.subject),
        channel=ticket.channel,
        priority=ticket.priority,
        learner_id=learner_id,
        requester=requester,
        requester_name=message.author_name,
        refers_to=ticket.number,
        created_at=now,
        updated_at=now,
        last_message_at=message.created_at if message.machine is None else now,
    )
    session.add(new_ticket)
    await session.flush()
    await move_messages(session, ticket, new_ticket, [message_id])
    message.thread_reason = f"split; from #{ticket.number} by an operator"
    ticket.updated_at = now
    await record_event(
        session,
        actor_of(operator),
        "ticket.created",
        target(new_ticket),
        channel=new_ticket.channel,
        refers_to=ticket.number,
    )
    await record_event(
        session,
        actor_of(operator),
        "message.split",
        target(ticket),
        message=message_id,
        to=new_ticket.number,
    )
    await add_system_note(
        session,
        new_ticket,
        f"Split from #{ticket.number} by {operator.name}.",
        operator=operator,
        now=now,
    )
    await add_system_note(
        session,
        ticket,
        f"A message was split off into #{new_ticket.number} by {operator.name}.",
        operator=operator,
        now=now,
    )
    return new_ticket
