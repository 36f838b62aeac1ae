"""Which ticket an inbound message belongs to (DESIGN §7), as an ordered list of rules.

Each rule looks at the message and answers with a `ThreadMatch` (the ticket number and a
readable detail) or None; the first match wins and its name becomes the message's
`thread_reason`. Subject tokens are the weakest evidence: anyone can type `[#1042]`, so
that rule only counts for a sender who already takes part in ticket 1042.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import BindParameter, ScalarSelect, Select, bindparam, case, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Message, OutboundEmail, Ticket
from helpdesk.signing import verify_message_id, verify_reply_address

_SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")


@dataclass(frozen=True)
class ThreadingInput:
    """What threading needs to know about a message."""

    sender: str | None
    sender_verified: bool
    referenced_ids: Sequence[str]  # In-Reply-To first, then References, newest first
    recipients: Sequence[str]
    subject: str


@dataclass(frozen=True)
class ThreadMatch:
    rule: str
    ticket_number: int
    detail: str = ""


@dataclass
class ThreadingContext:
    session: AsyncSession
    secret_key: str
    support_address: str
    notes: list[str] = field(default_factory=list)
    # The answer of `closest_stored_ticket(referenced_ids)` when the caller already asked
    # it along with other questions (one round trip); None means "not asked yet".
    stored_ticket: tuple[int | None] | None = None


class ThreadingRule(Protocol):
    name: str

    async def match(
        self, message: ThreadingInput, context: ThreadingContext
    ) -> ThreadMatch | None: ...


class MessageIdRule:
    """(1) In-Reply-To/References name a Message-ID we stored or signed."""

    name = "message-id"

    async def match(self, message: ThreadingInput, context: ThreadingContext) -> ThreadMatch | None:
        ids = referenced_ids(message)
        if not ids:
            return None
        for message_id in ids:
            number = verify_message_id(context.secret_key, message_id)
            if number is not None:
                return ThreadMatch(self.name, number, f"signed Message-ID of #{number}")
        if context.stored_ticket is not None:
            found = context.stored_ticket[0]
        else:
            found = await context.session.scalar(
                select(closest_stored_ticket(len(ids))), stored_ticket_params(ids)
            )
        if found is None:
            return None
        return ThreadMatch(self.name, found, f"references a message of #{found}")


def referenced_ids(message: ThreadingInput) -> list[str]:
    """The Message-IDs `MessageIdRule` looks for, closest first."""
    return [i for i in message.referenced_ids if i][:50]


def stored_ticket_params(ids: Sequence[str]) -> dict[str, str]:
    """The parameters of `closest_stored_ticket(len(ids))`."""
    return {f"ref{n}": message_id for n, message_id in enumerate(ids)}


@functools.lru_cache(maxsize=64)
def closest_stored_ticket(count: int) -> ScalarSelect[int]:
    """The ticket number of the closest of `count` referenced messages we have.

    Inbound or outgoing; the ids are bound as `stored_ticket_params(ids)`, In-Reply-To
    first, then References newest first, and the earliest one we know wins. A scalar
    subquery, so callers may ask it together with other questions; built once per count
    (building it costs more than running it).
    """
    ids: list[BindParameter[str]] = [bindparam(f"ref{n}") for n in range(count)]
    inbound: Select[str | None, int] = (
        select(col(Message.rfc_message_id).label("rfc_id"), col(Ticket.number))
        .join(Ticket, col(Ticket.id) == col(Message.ticket_id))
        .where(col(Message.rfc_message_id).in_(ids))
    )
    outgoing: Select[str | None, int] = (
        select(col(OutboundEmail.rfc_message_id).label("rfc_id"), col(Ticket.number))
        .join(Ticket, col(Ticket.id) == col(OutboundEmail.ticket_id))
        .where(col(OutboundEmail.rfc_message_id).in_(ids))
    )
    found = union_all(inbound, outgoing).subquery()
    closeness = case(*((found.c.rfc_id == ids[n], n) for n in range(count)), else_=count)
    return select(found.c.number).order_by(closeness).limit(1).scalar_subquery()


class ReplyAddressRule:
    """(2) The message was sent to a ticket's signed reply address."""

    name = "reply-address"

    async def match(self, message: ThreadingInput, context: ThreadingContext) -> ThreadMatch | None:
        for address in message.recipients:
            number = verify_reply_address(context.secret_key, context.support_address, address)
            if number is not None:
                return ThreadMatch(self.name, number, f"sent to the reply address of #{number}")
        return None


class SubjectTokenRule:
    """(3) A `[#N]` subject token, only from a verified sender who takes part in ticket N."""

    name = "subject-token"

    async def match(self, message: ThreadingInput, context: ThreadingContext) -> ThreadMatch | None:
        tokens = [int(n) for n in _SUBJECT_TOKEN.findall(message.subject)]
        if not tokens:
            return None
        number = tokens[-1]
        if not message.sender_verified or not message.sender:
            context.notes.append(f"subject names #{number} but the sender is unverified")
            return None
        ticket = await context.session.scalar(select(Ticket).where(col(Ticket.number) == number))
        if ticket is None:
            context.notes.append(f"subject names #{number}, which does not exist")
            return None
        if not is_participant(ticket, message.sender):
            context.notes.append(f"subject names #{number}; the sender does not take part in it")
            return None
        return ThreadMatch(self.name, number, f"subject token [#{number}] from a participant")


def is_participant(ticket: Ticket, address: str) -> bool:
    address = address.lower()
    return address == ticket.requester.lower() or address in {
        p.lower() for p in ticket.participants
    }


THREADING_RULES: list[ThreadingRule] = [MessageIdRule(), ReplyAddressRule(), SubjectTokenRule()]


async def find_thread(message: ThreadingInput, context: ThreadingContext) -> ThreadMatch | None:
    """The first matching rule's answer, or None for a new ticket (rule 4, `new`)."""
    for rule in THREADING_RULES:
        matched = await rule.match(message, context)
        if matched is not None:
            return matched
    return None


__all__ = [
    "THREADING_RULES",
    "ThreadMatch",
    "ThreadingContext",
    "ThreadingInput",
    "find_thread",
    "is_participant",
]
