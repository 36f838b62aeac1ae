"""The reply collision check: did the learner write again while the operator was answering?

The reply form carries `seen_message`, the newest message id on the page the operator
answered from (live updates move it forward as they show new messages). A reply is held
back, and the page shown again with the new message and a "send anyway?" question, when
a learner message newer than that has arrived. Sending from that page is the
confirmation: its form carries the new id.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Message, Ticket

SEEN_FIELD = "seen_message"


def seen_message_id(value: object) -> int | None:
    """The form's `seen_message` as an id; None when absent or not a number (no check)."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


async def newer_learner_messages(session: AsyncSession, ticket: Ticket, seen: int | None) -> int:
    """How many learner messages (not machine mail) arrived after message `seen`."""
    if seen is None:
        return 0
    count = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            col(Message.ticket_id) == ticket.id,
            col(Message.id) > seen,
            col(Message.direction) == "inbound",
            col(Message.machine).is_(None),
        )
    )
    return int(count or 0)
