"""Editing a ticket's participants (the addresses replies are copied to).

Addresses go into the Cc header of outgoing mail, so each must be a plain addr-spec
(RFC 5322 §3.4.1, dot-atom local part): no display names, no quoted strings, and never a
CR or LF, which would let someone add headers of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.service import record_event
from helpdesk.errors import ValidationFailed
from helpdesk.live import announce_ticket_change
from helpdesk.models import Operator, Ticket
from helpdesk.tickets.lifecycle import target
from helpdesk.tickets.moves import actor_of

MAX_PARTICIPANTS = 30
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+$")


def check_address(address: str) -> str:
    """The address lower-cased if it is a plain addr-spec; ValueError saying why if not."""
    if "\r" in address or "\n" in address:
        raise ValueError("must be on one line")
    value = address.strip()
    if len(value) > 254 or not _ADDR_SPEC.match(value) or len(value.split("@")[0]) > 64:
        raise ValueError(f"{value[:80]!r} is not an email address like name@example.no")
    return value.lower()


def parse_address_list(text: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or lines (CR/LF only between them)."""
    return [part for part in re.split(r"[,;\s]+", text) if part]


async def set_participants(
    session: AsyncSession,
    ticket: Ticket,
    addresses: Sequence[str],
    *,
    operator: Operator,
    now: datetime,
) -> Ticket:
    """Replace the participants; the requester is always one and is not listed twice."""
    checked: list[str] = []
    problems: list[str] = []
    for address in addresses:
        try:
            value = check_address(address)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if value != ticket.requester and value not in checked:
            checked.append(value)
    if problems:
        raise ValidationFailed({"participants": "; ".join(problems)})
    if len(checked) > MAX_PARTICIPANTS:
        raise ValidationFailed({"participants": f"at most {MAX_PARTICIPANTS} addresses"})
    if checked == ticket.participants:
        return ticket
    before = set(ticket.participants)
    ticket.participants, ticket.updated_at = checked, now
    await record_event(
        session,
        actor_of(operator),
        "ticket.participants_changed",
        target(ticket),
        added=len(set(checked) - before),
        removed=len(before - set(checked)),
    )
    announce_ticket_change(session, ticket)
    return ticket
