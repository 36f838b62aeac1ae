"""Moving messages between tickets: the shared step of merge, split and move.

A moved message keeps its `rfc_message_id`, and its outgoing mail rows move with it, so a
later reply whose In-Reply-To/References name it threads into its new ticket (DESIGN §7
rule 1 looks the id up in `messages` and `outbound_emails`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, NotFound
from helpdesk.live import announce_ticket_change, announce_ticket_message
from helpdesk.models import Message, Operator, OutboundEmail, Ticket
from helpdesk.tickets.lifecycle import MessageDraft, append_message, merge_participants, target


def actor_of(operator: Operator) -> str:
    """The audit actor of an operator: an id, never an address."""
    return f"operator:{operator.id}"


async def message_of(session: AsyncSession, ticket: Ticket, message_id: int) -> Message:
    """The message with this id on this ticket, or NotFound."""
    message = await session.get(Message, message_id)
    if message is None or message.ticket_id != ticket.id:
        raise NotFound(f"Ticket #{ticket.number} has no message {message_id}.")
    return message


def require_open(ticket: Ticket, role: str) -> None:
    """Closed tickets are final (DESIGN §7): nothing is moved into or out of them."""
    if ticket.status == "closed":
        raise Conflict(f"Ticket #{ticket.number} is closed; the {role} must not be closed.")


async def move_messages(
    session: AsyncSession, source: Ticket, destination: Ticket, message_ids: Sequence[int]
) -> None:
    """Re-home messages and their outgoing mail; the destination hears of each one live."""
    if not message_ids:
        return
    # ORM-enabled updates also change the messages this session already loaded.
    await session.execute(
        update(Message).where(col(Message.id).in_(message_ids)).values(ticket_id=destination.id)
    )
    await session.execute(
        update(OutboundEmail)
        .where(col(OutboundEmail.message_id).in_(message_ids))
        .values(ticket_id=destination.id)
    )
    senders = await session.scalars(
        select(col(Message.author_email)).where(
            col(Message.id).in_(message_ids),
            col(Message.direction) == "inbound",
            # Bounces and auto-replies come from robots that must not be copied on replies.
            col(Message.machine).is_(None),
        )
    )
    addresses = [a for a in senders if a]
    destination.participants = merge_participants(
        destination.participants, addresses, requester=destination.requester
    )
    for message_id in message_ids:
        announce_ticket_message(session, destination, message_id)
    announce_ticket_change(session, source)
    announce_ticket_change(session, destination)


async def latest_human_message_at(session: AsyncSession, ticket: Ticket) -> datetime | None:
    """When the newest learner or operator message of the ticket was written."""
    query = select(col(Message.created_at)).where(
        col(Message.ticket_id) == ticket.id,
        col(Message.direction) != "note",
        col(Message.machine).is_(None),
    )
    return await session.scalar(query.order_by(col(Message.created_at).desc()).limit(1))


async def add_system_note(
    session: AsyncSession, ticket: Ticket, text: str, *, operator: Operator, now: datetime
) -> Message:
    """A note that explains what an operator did to the ticket (merge, split, move)."""
    draft = MessageDraft(direction="note", text=text, author_kind="system", author_name="Helpdesk")
    return await append_message(session, ticket, draft, now=now, actor=actor_of(operator))


async def move_message(
    session: AsyncSession,
    ticket: Ticket,
    message_id: int,
    destination: Ticket,
    *,
    operator: Operator,
    now: datetime,
) -> Message:
    """Move one mis-threaded message to another (open) ticket; audited and announced."""
    message = await message_of(session, ticket, message_id)
    if destination.id == ticket.id:
        raise Conflict(f"The message is already on ticket #{ticket.number}.")
    require_open(destination, "ticket it moves to")
    if message.direction == "note":
        raise Conflict("Internal notes stay with their ticket; write a new note instead.")
    remaining = await session.scalar(
        select(col(Message.id)).where(
            col(Message.ticket_id) == ticket.id, col(Message.id) != message_id
        )
    )
    if remaining is None:
        raise Conflict(f"It is the only message of #{ticket.number}: merge the tickets instead.")
    await move_messages(session, ticket, destination, [message_id])
    message.thread_reason = f"moved; from #{ticket.number} by an operator"
    if message.direction == "inbound" and message.machine is None:
        destination.last_message_at = max(destination.last_message_at, message.created_at)
    ticket.updated_at = destination.updated_at = now
    await record_event(
        session,
        actor_of(operator),
        "message.moved",
        target(ticket),
        message=message_id,
        to=destination.number,
    )
    await add_system_note(
        session,
        ticket,
        f"A message was moved to #{destination.number} by {operator.name}.",
        operator=operator,
        now=now,
    )
    return message
