"""Marking a ticket as spam: tagged `spam`, closed, and out of every working queue.

A ticket marked by mistake is restored with "Not spam": the tag goes and the ticket opens
again. That is the one way back from closed (otherwise final, `helpdesk.tickets.lifecycle`):
the closing was an operator's classification, not the end of the conversation.

What happens to the sender's later mail is deliberately nothing special: it is filed as
usual (a new ticket, or a follow-up of the closed spam ticket). A From address is trivial
to forge, so blocking "the sender" would let anyone silence a learner by sending spam in
their name; an operator marks the next one as spam too, with one click.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.live import announce_ticket_change
from helpdesk.models import Operator, Ticket
from helpdesk.tickets.lifecycle import change_status, move_status, target
from helpdesk.tickets.merge import merged_into
from helpdesk.tickets.moves import actor_of

SPAM_TAG = "spam"


async def mark_spam(
    session: AsyncSession, ticket: Ticket, *, operator: Operator, now: datetime
) -> Ticket:
    """Tag the ticket `spam`, clear its review flag and close it; audited and announced."""
    if ticket.status == "closed":
        raise Conflict(f"Ticket #{ticket.number} is already closed.")
    if SPAM_TAG not in ticket.tags:
        ticket.tags = [*ticket.tags, SPAM_TAG]
    ticket.needs_review = False
    ticket.updated_at = now
    await record_event(session, actor_of(operator), "ticket.marked_spam", target(ticket))
    announce_ticket_change(session, ticket)
    await change_status(session, ticket, "closed", actor=actor_of(operator), now=now, cause="spam")
    return ticket


async def restore_from_spam(
    session: AsyncSession, ticket: Ticket, *, operator: Operator, now: datetime
) -> Ticket:
    """Undo `mark_spam`: drop the tag and open the ticket again; audited and announced."""
    if ticket.status != "closed" or SPAM_TAG not in ticket.tags:
        raise Conflict(f"Ticket #{ticket.number} is not marked as spam.")
    if (target_number := await merged_into(session, ticket)) is not None:
        # Its mail now threads into the target; reopening it would split the conversation.
        raise Conflict(f"Ticket #{ticket.number} was merged into #{target_number}.")
    actor = actor_of(operator)
    ticket.tags = [tag for tag in ticket.tags if tag != SPAM_TAG]
    await record_event(session, actor, "ticket.unmarked_spam", target(ticket))
    # Closed → open is outside the transition table on purpose (see the module docstring).
    await move_status(session, ticket, "open", actor=actor, now=now, cause="not_spam")
    return ticket
