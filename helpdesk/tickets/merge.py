"""Merging two tickets about the same matter into one.

Everything of the source moves into the target: messages (with their outgoing mail, so
delivery status and threading by Message-ID follow), participants, linked orders, tags and
the learner link when the target has none. The source is closed with a note pointing at
the target, and a `TicketMerge` row remembers where it went: mail that threads to the
source by its signed Message-IDs or reply address is filed into the target instead of
opening a follow-up (`surviving_ticket`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.models import Message, Operator, PrivacyRequest, Ticket, TicketMerge, TicketOrder
from helpdesk.tickets.lifecycle import change_status, merge_participants, target
from helpdesk.tickets.moves import (
    actor_of,
    add_system_note,
    latest_human_message_at,
    move_messages,
    require_open,
)

# Chains (A merged into B, B into C) are followed this far; more would be a loop.
MAX_MERGE_HOPS = 10


async def merge_tickets(
    session: AsyncSession,
    source: Ticket,
    destination: Ticket,
    *,
    operator: Operator,
    now: datetime,
) -> Ticket:
    """Merge `source` into `destination`; returns the destination. Audited and announced."""
    _check_mergeable(source, destination)
    await _check_privacy_case(session, source, destination)
    assert source.id is not None and destination.id is not None
    message_ids = list(
        await session.scalars(select(col(Message.id)).where(col(Message.ticket_id) == source.id))
    )
    moved = [i for i in message_ids if i is not None]
    await move_messages(session, source, destination, moved)
    # "Started this ticket" would be wrong in the target; say where the message came from.
    await session.execute(
        update(Message)
        .where(col(Message.id).in_(moved), col(Message.thread_reason).startswith("new"))
        .values(thread_reason=f"moved; started #{source.number}, merged here")
    )
    await _move_orders(session, source, destination)
    destination.participants = merge_participants(
        destination.participants,
        [source.requester, *source.participants],
        requester=destination.requester,
    )
    destination.tags = destination.tags + [t for t in source.tags if t not in destination.tags]
    if destination.learner_id is None:
        destination.learner_id = source.learner_id
    if destination.assignee_id is None:
        destination.assignee_id = source.assignee_id
    latest = await latest_human_message_at(session, destination)
    if latest is not None:
        destination.last_message_at = max(destination.last_message_at, latest)
    destination.updated_at = now
    session.add(
        TicketMerge(
            source_ticket_id=source.id,
            target_ticket_id=destination.id,
            operator_id=operator.id,
            merged_at=now,
        )
    )
    await record_event(
        session,
        actor_of(operator),
        "ticket.merged",
        target(source),
        into=destination.number,
        messages=len(message_ids),
    )
    await add_system_note(
        session,
        destination,
        f"#{source.number} was merged into this ticket by {operator.name}.",
        operator=operator,
        now=now,
    )
    await add_system_note(
        session,
        source,
        f"Merged into #{destination.number} by {operator.name}. Its messages are there now.",
        operator=operator,
        now=now,
    )
    await change_status(
        session, source, "closed", actor=actor_of(operator), now=now, cause="merged"
    )
    if destination.status == "new" and await _has_operator_reply(session, destination):
        # Someone already answered (on the source): the merged ticket is in progress.
        await change_status(
            session, destination, "open", actor=actor_of(operator), now=now, cause="merged"
        )
    return destination


def _check_mergeable(source: Ticket, destination: Ticket) -> None:
    if source.id == destination.id:
        raise Conflict("A ticket cannot be merged into itself.")
    require_open(source, "ticket merged away")
    require_open(destination, "ticket merged into")
    if source.channel == "widget":
        # The learner's chat window belongs to the widget ticket; it must stay the survivor.
        raise Conflict(
            f"#{source.number} is a chat-widget conversation: merge #{destination.number} "
            f"into #{source.number} instead."
        )


async def _has_operator_reply(session: AsyncSession, ticket: Ticket) -> bool:
    query = select(col(Message.id)).where(
        col(Message.ticket_id) == ticket.id,
        col(Message.direction) == "outbound",
        col(Message.author_kind) == "operator",
    )
    return await session.scalar(query.limit(1)) is not None


async def _check_privacy_case(session: AsyncSession, source: Ticket, destination: Ticket) -> None:
    """A privacy case belongs to one ticket (its deadline runs there): that ticket survives."""
    query = select(col(PrivacyRequest.id)).where(col(PrivacyRequest.ticket_id) == source.id)
    if await session.scalar(query) is not None:
        raise Conflict(
            f"#{source.number} has a privacy request: merge #{destination.number} "
            f"into #{source.number} instead."
        )


async def _move_orders(session: AsyncSession, source: Ticket, destination: Ticket) -> None:
    assert destination.id is not None
    ordered = select(col(TicketOrder.order_id)).where(col(TicketOrder.ticket_id) == source.id)
    have = select(col(TicketOrder.order_id)).where(col(TicketOrder.ticket_id) == destination.id)
    existing = set(await session.scalars(have))
    for order_id in await session.scalars(ordered):
        if order_id not in existing:
            session.add(TicketOrder(ticket_id=destination.id, order_id=order_id))
    await session.execute(delete(TicketOrder).where(col(TicketOrder.ticket_id) == source.id))


async def surviving_ticket(session: AsyncSession, ticket: Ticket) -> Ticket:
    """The ticket a merged ticket lives on in (following chains), else the ticket itself."""
    current = ticket
    for _ in range(MAX_MERGE_HOPS):
        query = (
            select(Ticket)
            .join(TicketMerge, col(TicketMerge.target_ticket_id) == col(Ticket.id))
            .where(col(TicketMerge.source_ticket_id) == current.id)
        )
        found = await session.scalar(query)
        if found is None:
            return current
        current = found
    return current


async def merged_into(session: AsyncSession, ticket: Ticket) -> int | None:
    """The number of the ticket this one was merged into, if it was."""
    query = (
        select(col(Ticket.number))
        .join(TicketMerge, col(TicketMerge.target_ticket_id) == col(Ticket.id))
        .where(col(TicketMerge.source_ticket_id) == ticket.id)
    )
    return await session.scalar(query)
