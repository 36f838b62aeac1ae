"""A learner's other tickets, for the learner card next to a ticket."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Ticket
from helpdesk.privacy.restriction import visible_to_work

MAX_OTHER_TICKETS = 10


async def other_tickets(
    session: AsyncSession, ticket: Ticket, *, include_restricted: bool = False
) -> list[Ticket]:
    """The same learner's (or, unlinked, the same address's) other tickets, newest first;
    a restricted learner's only with `include_restricted` (admins handling the request)."""
    same_person = col(Ticket.requester) == ticket.requester
    if ticket.learner_id is not None:
        same_person = or_(same_person, col(Ticket.learner_id) == ticket.learner_id)
    query = (
        select(Ticket)
        .where(same_person, col(Ticket.id) != ticket.id)
        .order_by(col(Ticket.last_message_at).desc(), col(Ticket.id).desc())
        .limit(MAX_OTHER_TICKETS)
    )
    visible = None if include_restricted else await visible_to_work(session)
    if visible is not None:
        query = query.where(visible)
    return list(await session.scalars(query))
