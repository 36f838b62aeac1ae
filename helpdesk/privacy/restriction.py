"""Restriction of processing (GDPR art. 18) as other capabilities must respect it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Learner, Ticket


async def ticket_learner_restricted(session: AsyncSession, ticket_id: int | None) -> bool:
    """True when the ticket's learner is restricted: no automatic mail to them, except
    the mail about their privacy request (which `helpdesk.privacy.notices` sends itself)."""
    if ticket_id is None:
        return False
    restricted = await session.scalar(
        select(col(Learner.restricted_at))
        .join(Ticket, col(Ticket.learner_id) == col(Learner.id))
        .where(col(Ticket.id) == ticket_id)
    )
    return restricted is not None
