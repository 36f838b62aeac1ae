"""What the ticket page shows besides the conversation: canned replies, other tickets,
the reply channel, merge state and the participants field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.errors import NotFound
from helpdesk.models import Operator
from helpdesk.privacy.restriction import hidden_from_work
from helpdesk.tickets import queries
from helpdesk.tickets.canned import (
    fill_placeholders,
    get_canned_reply,
    list_canned_replies,
    reply_variables,
)
from helpdesk.tickets.merge import merged_into
from helpdesk.tickets.related import other_tickets

# Where a reply on a ticket of each channel goes, in the operator's words.
REPLY_CHANNELS = {"email": "by email", "widget": "into the chat widget", "form": "by email"}


@dataclass(frozen=True)
class CannedChoice:
    """A canned reply with its variables already filled in for this ticket."""

    id: int
    title: str
    text: str


async def ticket_page_extras(
    session: AsyncSession, detail: queries.TicketDetail, operator: Operator
) -> dict[str, Any]:
    """The context the ticket page's side panels and composer need."""
    ticket = detail.row.ticket
    values = reply_variables(ticket, detail.row.learner, operator)
    canned = [
        CannedChoice(c.id, c.title, fill_placeholders(c.body, values))
        for c in await list_canned_replies(session)
        if c.id is not None
    ]
    return {
        "canned_replies": canned,
        "other_tickets": await other_tickets(
            session, ticket, include_restricted=operator.role == "admin"
        ),
        "hidden_from_work": await hidden_from_work(session, ticket),
        "merged_into": await merged_into(session, ticket),
        "reply_channel": REPLY_CHANNELS.get(ticket.channel, "by email"),
        "participants_text": "\n".join(ticket.participants),
        "find_query": "",
        "link_candidates": None,
        "link_error": None,
    }


async def with_canned_reply(
    session: AsyncSession, number: int, operator: Operator, draft: str, canned_id: object
) -> str:
    """The draft with the chosen canned reply (variables filled in) added at its end."""
    try:
        canned = await get_canned_reply(session, int(str(canned_id)))
    except (ValueError, NotFound):
        return draft
    detail = await queries.get_ticket_detail(session, number)
    text = fill_placeholders(
        canned.body, reply_variables(detail.row.ticket, detail.row.learner, operator)
    )
    return f"{draft.rstrip()}\n\n{text}" if draft.strip() else text
