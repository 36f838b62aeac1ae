"""Ticket operations: the lifecycle (re-exported) plus what operators do to a ticket.

Other capabilities call `create_ticket`, `append_message` and `open_followup_ticket`
(see `helpdesk.tickets.lifecycle`); the operator API and inbox call the rest. Every change
writes an audit event with field names and statuses, never message text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from msgspec import UNSET, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Forbidden, NotFound, ValidationFailed
from helpdesk.live import announce_ticket_change
from helpdesk.models import Message, Operator, Ticket
from helpdesk.models.tickets import PRIORITIES, STATUSES
from helpdesk.operators.notifications import notify_assigned
from helpdesk.operators.service import find_operator
from helpdesk.tickets import service_levels
from helpdesk.tickets.lifecycle import (
    ALLOWED_TRANSITIONS,
    MessageDraft,
    append_message,
    change_status,
    check_transition,
    create_ticket,
    open_followup_ticket,
    target,
)
from helpdesk.tickets.numbers import allocate_ticket_number

__all__ = [
    "ALLOWED_TRANSITIONS",
    "MessageDraft",
    "add_note",
    "allocate_ticket_number",
    "append_message",
    "change_status",
    "create_ticket",
    "get_ticket",
    "lift_legal_hold",
    "normalise_tags",
    "open_followup_ticket",
    "set_legal_hold",
    "update_ticket",
]

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 100_000
MAX_HOLD_REASON = 500
# Letters (any script, so "å" is fine), digits, and a few separators; no spaces or commas.
_TAG = re.compile(r"^\w[\w.:/-]*$")


def actor_of(operator: Operator) -> str:
    """The audit actor of an operator: an id, never an address."""
    return f"operator:{operator.id}"


async def get_ticket(session: AsyncSession, number: int) -> Ticket:
    """The ticket with this public number, or NotFound (404)."""
    result = await session.execute(select(Ticket).where(col(Ticket.number) == number))
    ticket = result.scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"No ticket #{number}.")
    return ticket


async def update_ticket(
    session: AsyncSession,
    ticket: Ticket,
    *,
    operator: Operator,
    now: datetime,
    status: str | UnsetType = UNSET,
    assignee: str | None | UnsetType = UNSET,
    priority: str | UnsetType = UNSET,
    tags: Sequence[str] | UnsetType = UNSET,
) -> Ticket:
    """Apply an operator's PATCH; UNSET leaves a field alone, `assignee=None` unassigns.

    Everything is validated before anything changes: a bad value is 422 naming the field,
    a status change the table does not allow is 409.
    """
    new_tags, assignee_id = await _checked_changes(session, status, assignee, priority, tags)
    if status is not UNSET and status != ticket.status:
        check_transition(ticket, status)
    changed: dict[str, Any] = {}
    if priority is not UNSET and priority != ticket.priority:
        ticket.priority = changed["priority"] = priority
        service_levels.set_due_times(ticket, service_levels.policy_of(session))
    if assignee_id is not UNSET and assignee_id != ticket.assignee_id:
        ticket.assignee_id = changed["assignee"] = assignee_id
        await notify_assigned(session, ticket, by=operator, now=now)
    if new_tags is not UNSET and new_tags != ticket.tags:
        ticket.tags = new_tags
        changed["tags"] = len(new_tags)  # how many, not which: tags are free text
    if changed:
        ticket.updated_at = now
        await record_event(
            session,
            actor_of(operator),
            "ticket.updated",
            target(ticket),
            fields=sorted(changed),
            **changed,
        )
        announce_ticket_change(session, ticket)
    if status is not UNSET:
        await change_status(session, ticket, status, actor=actor_of(operator), now=now)
    return ticket


async def _checked_changes(
    session: AsyncSession,
    status: str | UnsetType,
    assignee: str | None | UnsetType,
    priority: str | UnsetType,
    tags: Sequence[str] | UnsetType,
) -> tuple[list[str] | UnsetType, int | None | UnsetType]:
    """Validate a PATCH (422 naming every bad field); returns the tags and assignee id."""
    errors: dict[str, str] = {}
    if status is not UNSET and status not in STATUSES:
        errors["status"] = f"must be one of {', '.join(STATUSES)}"
    if priority is not UNSET and priority not in PRIORITIES:
        errors["priority"] = f"must be one of {', '.join(PRIORITIES)}"
    new_tags: list[str] | UnsetType = UNSET
    if tags is not UNSET:
        try:
            new_tags = normalise_tags(tags)
        except ValueError as exc:
            errors["tags"] = str(exc)
    assignee_id: int | None | UnsetType = UNSET if assignee is UNSET else None
    if isinstance(assignee, str):
        assignee_id = await _active_operator_id(session, assignee)
        if assignee_id is None:
            errors["assignee"] = "no active operator with that email"
    if errors:
        raise ValidationFailed(errors)
    return new_tags, assignee_id


def normalise_tags(tags: Sequence[str]) -> list[str]:
    """Tags lower-cased and trimmed, duplicates dropped (first one kept); ValueError if bad."""
    result: list[str] = []
    for raw in tags:
        tag = raw.strip().lower()
        if not tag or len(tag) > MAX_TAG_LENGTH or not _TAG.match(tag):
            raise ValueError(
                f"{raw!r} is not a tag: use letters, digits, '-', '_', '.', ':' or '/', "
                f"at most {MAX_TAG_LENGTH} characters"
            )
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return result


async def add_note(
    session: AsyncSession, ticket: Ticket, *, operator: Operator, body: str, now: datetime
) -> Message:
    """An internal note: never sent, never moves `last_message_at`, allowed on any status."""
    text = body.strip()
    if not text:
        raise ValidationFailed({"body": "must not be empty"})
    if len(text) > MAX_NOTE_LENGTH:
        raise ValidationFailed({"body": f"must be at most {MAX_NOTE_LENGTH} characters"})
    draft = MessageDraft(
        direction="note",
        text=text,
        author_kind="operator",
        author_name=operator.name,
        author_email=operator.email,
        operator_id=operator.id,
    )
    return await append_message(session, ticket, draft, now=now, actor=actor_of(operator))


async def set_legal_hold(
    session: AsyncSession,
    ticket: Ticket,
    *,
    operator: Operator,
    reason: str,
    until: date,
    now: datetime,
) -> Ticket:
    """Admin only: keep this thread past its retention date until `until` (a future date)."""
    _require_admin(operator, "set a legal hold")
    errors: dict[str, str] = {}
    reason = " ".join(reason.split())
    if not reason:
        errors["reason"] = "must not be empty"
    elif len(reason) > MAX_HOLD_REASON:
        errors["reason"] = f"must be at most {MAX_HOLD_REASON} characters"
    if until <= now.date():
        errors["until"] = "must be a date after today"
    if errors:
        raise ValidationFailed(errors)
    ticket.legal_hold_reason, ticket.legal_hold_until, ticket.updated_at = reason, until, now
    # The reason is free text and may name people, so only the date goes to the audit log.
    await record_event(
        session,
        actor_of(operator),
        "ticket.legal_hold_set",
        target(ticket),
        until=until.isoformat(),
    )
    return ticket


async def lift_legal_hold(
    session: AsyncSession, ticket: Ticket, *, operator: Operator, now: datetime
) -> Ticket:
    """Admin only: remove the legal hold (a no-op, still audited, if there was none)."""
    _require_admin(operator, "lift a legal hold")
    had_hold = ticket.legal_hold_until is not None
    ticket.legal_hold_reason = ticket.legal_hold_until = None
    ticket.updated_at = now
    await record_event(
        session,
        actor_of(operator),
        "ticket.legal_hold_lifted",
        target(ticket),
        had_hold=had_hold,
    )
    return ticket


def _require_admin(operator: Operator, what: str) -> None:
    if operator.role != "admin":
        raise Forbidden(f"Only an admin may {what}.")


async def _active_operator_id(session: AsyncSession, email: str) -> int | None:
    operator = await find_operator(session, email.strip())
    return operator.id if operator is not None and operator.active else None
