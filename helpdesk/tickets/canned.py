"""Canned replies: admins keep reusable answers, agents insert them into a reply.

Variables are filled in by one pass of plain `{name}` substitution, never by a template
engine: a learner called `{{ config }}` or `{operator_name}` stays exactly that text, so
nothing a learner types can run or expand. Unknown placeholders are left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, Forbidden, NotFound, ValidationFailed
from helpdesk.models import CannedReply, Learner, Operator, Ticket

MAX_TITLE = 200
MAX_BODY = 20_000
VARIABLES = {
    "learner_name": "the learner's (or requester's) full name",
    "first_name": "the learner's first name",
    "learner_email": "the learner's (or requester's) email address",
    "ticket_number": "the ticket number, e.g. 1042",
    "subject": "the ticket's subject",
    "operator_name": "your name",
    "operator_first_name": "your first name",
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill_placeholders(body: str, values: Mapping[str, str]) -> str:
    """`{name}` replaced by `values[name]` in one pass; unknown names are left as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def reply_variables(ticket: Ticket, learner: Learner | None, operator: Operator) -> dict[str, str]:
    """The values of `VARIABLES` for a reply on this ticket by this operator."""
    name = (learner.name if learner else None) or ticket.requester_name or ""
    return {
        "learner_name": name,
        "first_name": name.split()[0] if name.split() else "",
        "learner_email": learner.email if learner else ticket.requester,
        "ticket_number": str(ticket.number),
        "subject": ticket.subject,
        "operator_name": operator.name,
        "operator_first_name": operator.name.split()[0] if operator.name.split() else "",
    }


async def list_canned_replies(session: AsyncSession) -> list[CannedReply]:
    """Every canned reply, by title."""
    query = select(CannedReply).order_by(func.lower(col(CannedReply.title)), col(CannedReply.id))
    return list(await session.scalars(query))


async def get_canned_reply(session: AsyncSession, canned_id: int) -> CannedReply:
    """The canned reply with this id, or NotFound."""
    canned = await session.get(CannedReply, canned_id)
    if canned is None:
        raise NotFound(f"No canned reply {canned_id}.")
    return canned


async def create_canned_reply(
    session: AsyncSession, *, operator: Operator, title: str, body: str, now: datetime
) -> CannedReply:
    """Admin only: a new canned reply (titles are unique, case-insensitively)."""
    _require_admin(operator)
    title, body = _checked(title, body)
    await _require_free_title(session, title, None)
    canned = CannedReply(
        title=title, body=body, created_by_id=operator.id, created_at=now, updated_at=now
    )
    session.add(canned)
    await session.flush()
    await record_event(session, _actor(operator), "canned_reply.created", _target(canned))
    return canned


async def update_canned_reply(
    session: AsyncSession,
    canned: CannedReply,
    *,
    operator: Operator,
    title: str,
    body: str,
    now: datetime,
) -> CannedReply:
    """Admin only: change a canned reply's title and text."""
    _require_admin(operator)
    title, body = _checked(title, body)
    await _require_free_title(session, title, canned.id)
    canned.title, canned.body, canned.updated_at = title, body, now
    await record_event(session, _actor(operator), "canned_reply.updated", _target(canned))
    return canned


async def delete_canned_reply(
    session: AsyncSession, canned: CannedReply, *, operator: Operator
) -> None:
    """Admin only: remove a canned reply (replies already sent keep their text)."""
    _require_admin(operator)
    await record_event(session, _actor(operator), "canned_reply.deleted", _target(canned))
    await session.delete(canned)


def _checked(title: str, body: str) -> tuple[str, str]:
    title = " ".join(title.split())
    body = body.replace("\r\n", "\n").strip()
    errors: dict[str, str] = {}
    if not title:
        errors["title"] = "must not be empty"
    elif len(title) > MAX_TITLE:
        errors["title"] = f"must be at most {MAX_TITLE} characters"
    if not body:
        errors["body"] = "must not be empty"
    elif len(body) > MAX_BODY:
        errors["body"] = f"must be at most {MAX_BODY} characters"
    if errors:
        raise ValidationFailed(errors)
    return title, body


async def _require_free_title(session: AsyncSession, title: str, own_id: int | None) -> None:
    query = select(col(CannedReply.id)).where(func.lower(col(CannedReply.title)) == title.lower())
    found = await session.scalar(query)
    if found is not None and found != own_id:
        raise Conflict(f"A canned reply called {title!r} already exists.")


def _require_admin(operator: Operator) -> None:
    if operator.role != "admin":
        raise Forbidden("Only an admin may manage canned replies.")


def _actor(operator: Operator) -> str:
    return f"operator:{operator.id}"


def _target(canned: CannedReply) -> str:
    return f"canned_reply:{canned.id}"
