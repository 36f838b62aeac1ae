"""Linking inbound mail to what we know: participants from To/Cc, and mentioned orders."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Exists, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.inbound.parse import ParsedMessage
from helpdesk.models import Order, Ticket, TicketOrder
from helpdesk.tickets.lifecycle import MessageDraft, append_message, merge_participants

# Order numbers are the platform's: anything that looks like an identifier and has a digit.
_ORDER_CANDIDATE = re.compile(r"(?<![\w-])([A-Za-z0-9][A-Za-z0-9-]{3,40})(?![\w-])")
_MAX_CANDIDATES = 200
# Built once: most mail names something that looks like a number.
_ORDERS_NAMED = select(Order).where(col(Order.number).in_(bindparam("numbers", expanding=True)))


def is_our_address(address: str, support_address: str) -> bool:
    """Our support address itself or any plus-address of it (signed reply addresses)."""
    local, _, domain = address.lower().partition("@")
    our_local, _, our_domain = support_address.lower().partition("@")
    return domain == our_domain and (local == our_local or local.startswith(our_local + "+"))


def merge_mail_participants(ticket: Ticket, parsed: ParsedMessage, support_address: str) -> None:
    """DESIGN §7: the To/Cc addresses of inbound mail, ours excepted, take part in the ticket."""
    others = [a for a in [*parsed.to, *parsed.cc] if not is_our_address(a, support_address)]
    if parsed.from_address and parsed.from_address.lower() != ticket.requester:
        others.append(parsed.from_address)
    merged = merge_participants(ticket.participants, others, requester=ticket.requester)
    if merged != ticket.participants:
        ticket.participants = merged


def order_candidates(parsed: ParsedMessage) -> list[str]:
    """What in the subject or body could be an order number (most mail has some)."""
    text = f"{parsed.subject}\n{parsed.text}"
    found = (m for m in _ORDER_CANDIDATE.findall(text) if any(c.isdigit() for c in m))
    return list(dict.fromkeys(found))[:_MAX_CANDIDATES]


def any_order_named() -> Exists:
    """Whether any of the bound `order_numbers` is an order: asked with the pipeline's
    look-up, so the orders are read only for the few messages that name one."""
    return exists().where(col(Order.number).in_(bindparam("order_numbers", expanding=True)))


async def link_mentioned_orders(
    session: AsyncSession, ticket: Ticket, candidates: list[str], *, now: datetime
) -> None:
    """Link the orders among `candidates` (`order_candidates`) that belong to the ticket's
    learner.

    An order of somebody else is not linked — a stranger must not learn about it through
    the ticket — and an internal note tells the operator why.
    """
    if not candidates:
        return
    orders = (await session.scalars(_ORDERS_NAMED, {"numbers": candidates})).all()
    if not orders:  # the usual case: numbers that are not order numbers
        return
    linked = set(
        (
            await session.scalars(
                select(col(TicketOrder.order_id)).where(col(TicketOrder.ticket_id) == ticket.id)
            )
        ).all()
    )
    for order in orders:
        if order.id in linked:
            continue
        if ticket.learner_id is not None and order.learner_id == ticket.learner_id:
            assert ticket.id is not None and order.id is not None, "both rows are stored"
            session.add(TicketOrder(ticket_id=ticket.id, order_id=order.id))
            linked.add(order.id)
            continue
        note = f"Order {order.number} is mentioned in this message but was not linked: " + (
            "it belongs to another learner."
            if ticket.learner_id
            else "the sender is not a known (verified) learner."
        )
        await append_message(
            session,
            ticket,
            MessageDraft(direction="note", text=note, author_kind="system"),
            now=now,
        )
