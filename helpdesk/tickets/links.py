"""Linking a ticket to a learner and to orders by hand, found by address, id or number.

Inbound mail links the learner by the sender's address and orders mentioned in the text
(`helpdesk.inbound.linking`); these are the operator's corrections. Audit events name ids,
never addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, NotFound, ValidationFailed
from helpdesk.live import announce_ticket_change
from helpdesk.models import Learner, Operator, Order, Ticket, TicketOrder
from helpdesk.tickets.lifecycle import target
from helpdesk.tickets.moves import actor_of

MAX_RESULTS = 10
MAX_QUERY = 320


@dataclass(frozen=True)
class LinkCandidates:
    """What a search for a learner or an order found."""

    query: str
    learners: list[Learner]
    orders: list[Order]


async def find_link_candidates(session: AsyncSession, query: str) -> LinkCandidates:
    """Learners by email (exact or prefix) or external id, orders by number (exact or prefix)."""
    text = query.strip()
    if not text:
        raise ValidationFailed({"query": "type an email address, learner id or order number"})
    if len(text) > MAX_QUERY:
        raise ValidationFailed({"query": f"must be at most {MAX_QUERY} characters"})
    prefix = _like_prefix(text.lower())
    learners = await session.scalars(
        select(Learner)
        .where(
            col(Learner.erased_at).is_(None),
            or_(
                col(Learner.email_key).like(prefix, escape="\\"),
                col(Learner.external_id) == text,
            ),
        )
        .order_by(col(Learner.email_key))
        .limit(MAX_RESULTS)
    )
    orders = await session.scalars(
        select(Order)
        .where(
            or_(col(Order.number) == text, col(Order.number).like(_like_prefix(text), escape="\\"))
        )
        .order_by(col(Order.purchased_at).desc())
        .limit(MAX_RESULTS)
    )
    return LinkCandidates(text, list(learners), list(orders))


async def learner_by_external_id(session: AsyncSession, external_id: str) -> Learner:
    """The learner with this course-platform id, or NotFound."""
    learner = await session.scalar(select(Learner).where(col(Learner.external_id) == external_id))
    if learner is None:
        raise NotFound(f"No learner {external_id!r}.")
    return learner


async def order_by_number(session: AsyncSession, number: str) -> Order:
    """The order with this number, or NotFound."""
    order = await session.scalar(select(Order).where(col(Order.number) == number))
    if order is None:
        raise NotFound(f"No order {number!r}.")
    return order


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def link_learner(
    session: AsyncSession, ticket: Ticket, learner_id: int, *, operator: Operator, now: datetime
) -> Ticket:
    """Point the ticket at this learner (an erased learner cannot be linked)."""
    learner = await session.get(Learner, learner_id)
    if learner is None:
        raise NotFound(f"No learner {learner_id}.")
    if learner.erased_at is not None:
        raise Conflict("That learner's data was erased; they cannot be linked.")
    if ticket.learner_id == learner.id:
        return ticket
    ticket.learner_id, ticket.updated_at = learner.id, now
    await record_event(
        session, actor_of(operator), "ticket.learner_linked", target(ticket), learner=learner.id
    )
    announce_ticket_change(session, ticket)
    return ticket


async def unlink_learner(
    session: AsyncSession, ticket: Ticket, *, operator: Operator, now: datetime
) -> Ticket:
    """Remove the ticket's learner link (the requester address stays)."""
    if ticket.learner_id is None:
        raise Conflict(f"Ticket #{ticket.number} is not linked to a learner.")
    old, ticket.learner_id, ticket.updated_at = ticket.learner_id, None, now
    await record_event(
        session, actor_of(operator), "ticket.learner_unlinked", target(ticket), learner=old
    )
    announce_ticket_change(session, ticket)
    return ticket


async def link_order(
    session: AsyncSession, ticket: Ticket, order_id: int, *, operator: Operator, now: datetime
) -> Ticket:
    """Say that the ticket concerns this order (linking twice changes nothing)."""
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"No order {order_id}.")
    assert ticket.id is not None and order.id is not None
    if await session.get(TicketOrder, (ticket.id, order.id)) is not None:
        return ticket
    session.add(TicketOrder(ticket_id=ticket.id, order_id=order.id))
    ticket.updated_at = now
    await record_event(
        session, actor_of(operator), "ticket.order_linked", target(ticket), order=order.id
    )
    announce_ticket_change(session, ticket)
    return ticket


async def unlink_order(
    session: AsyncSession, ticket: Ticket, order_id: int, *, operator: Operator, now: datetime
) -> Ticket:
    """The ticket no longer concerns this order."""
    result = await session.execute(
        delete(TicketOrder).where(
            col(TicketOrder.ticket_id) == ticket.id, col(TicketOrder.order_id) == order_id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"Ticket #{ticket.number} is not linked to order {order_id}.")
    ticket.updated_at = now
    await record_event(
        session, actor_of(operator), "ticket.order_unlinked", target(ticket), order=order_id
    )
    announce_ticket_change(session, ticket)
    return ticket
