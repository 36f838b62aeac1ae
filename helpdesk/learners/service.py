"""Course-platform sync: idempotent upserts of learners, orders and enrolments (DESIGN §6).

The platform is the source of truth for these records, so a PUT replaces the stored values
(an optional field left out is cleared). Repeating a PUT changes nothing and writes no audit
event. Tickets find their learner by the requester address: when a learner is created or
changes email, unlinked tickets from that address are linked to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.clock import utcnow
from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.learners.field_checks import MAX_AMOUNT_MINOR, FieldErrors
from helpdesk.models import Enrolment, Learner, Order, Ticket
from helpdesk.models.learners import LOCALES
from helpdesk.models.orders import ORDER_STATUSES

ACTOR = "platform"

RowT = TypeVar("RowT", Learner, Order, Enrolment)


async def find_learner(session: AsyncSession, external_id: str) -> Learner | None:
    """The learner with this course-platform id, or None."""
    return await session.scalar(select(Learner).where(col(Learner.external_id) == external_id))


async def learner_enrolments(session: AsyncSession, learner_id: int) -> list[Enrolment]:
    """A learner's enrolments, by course, for the operator's view of a ticket."""
    query = (
        select(Enrolment)
        .where(col(Enrolment.learner_id) == learner_id)
        .order_by(col(Enrolment.course))
    )
    return list(await session.scalars(query))


async def learner_orders(session: AsyncSession, learner_id: int) -> list[Order]:
    """A learner's orders, newest purchase first, for the operator's view of a ticket."""
    query = (
        select(Order)
        .where(col(Order.learner_id) == learner_id)
        .order_by(col(Order.purchased_at).desc(), col(Order.number))
    )
    return list(await session.scalars(query))


async def link_tickets_to_learner(session: AsyncSession, learner: Learner) -> int:
    """Link unlinked tickets whose requester is the learner's address (any case); count them."""
    linked = await session.execute(
        update(Ticket)
        .where(
            func.lower(col(Ticket.requester)) == learner.email_key,
            col(Ticket.learner_id).is_(None),
        )
        .values(learner_id=learner.id, updated_at=utcnow())
        .returning(col(Ticket.number))
    )
    numbers = sorted(linked.scalars())
    for number in numbers:
        await record_event(
            session, ACTOR, "ticket.learner_linked", f"ticket:{number}", learner=learner.id
        )
    return len(numbers)


async def upsert_learner(
    session: AsyncSession,
    external_id: str,
    *,
    email: str,
    name: str,
    locale: str,
    organisation: str | None = None,
) -> tuple[Learner, bool]:
    """Create or replace a learner; 422 on bad fields, 409 if another learner has the email."""
    errors = FieldErrors()
    external_id = errors.identifier("external_id", external_id, 200)
    values: dict[str, Any] = {
        "email": errors.email("email", email),
        "name": errors.text("name", name, 300),
        "locale": errors.choice("locale", locale, LOCALES),
        "organisation": errors.text("organisation", organisation, 300, required=False),
    }
    errors.raise_if_any()
    values["email_key"] = values["email"].lower()
    learner = await find_learner(session, external_id)
    if learner is not None and learner.erased_at is not None:
        # Re-syncing would bring back personal data the learner had erased.
        raise Conflict("This learner has been erased; their data cannot be synced again.")
    await _ensure_email_is_free(session, values["email_key"], learner)
    if learner is None:
        learner = Learner(external_id=external_id, **values)
        session.add(learner)
        await _flush(session)
        linked = await link_tickets_to_learner(session, learner)
        await record_event(
            session, ACTOR, "learner.created", f"learner:{learner.id}", linked_tickets=linked
        )
        return learner, True
    changed = _assign(learner, values)
    if changed:
        await _flush(session)
        linked = await link_tickets_to_learner(session, learner) if "email" in changed else 0
        await record_event(
            session,
            ACTOR,
            "learner.updated",
            f"learner:{learner.id}",
            changed=[name for name in changed if name != "email_key"],
            linked_tickets=linked,
        )
    return learner, False


async def upsert_order(
    session: AsyncSession,
    number: str,
    *,
    learner_external_id: str,
    course: str,
    amount_minor: int,
    currency: str,
    status: str,
    purchased_at: datetime,
    buyer_org_number: str | None = None,
) -> tuple[Order, bool]:
    """Create or replace an order of a known learner; 422 names every bad field."""
    errors = FieldErrors()
    number = errors.identifier("number", number, 100)
    learner = await _learner_for(session, errors, learner_external_id)
    values: dict[str, Any] = {
        "course": errors.identifier("course", course, 200),
        "amount_minor": errors.whole_number("amount_minor", amount_minor, 0, MAX_AMOUNT_MINOR),
        "currency": errors.currency("currency", currency),
        "status": errors.choice("status", status, ORDER_STATUSES),
        "purchased_at": errors.moment("purchased_at", purchased_at),
        "buyer_org_number": errors.text("buyer_org_number", buyer_org_number, 20, required=False),
    }
    errors.raise_if_any()
    assert learner is not None
    values["learner_id"] = learner.id
    order = await session.scalar(select(Order).where(col(Order.number) == number))
    return await _insert_or_update(session, "order", order, values, partial(Order, number=number))


async def upsert_enrolment(
    session: AsyncSession,
    learner_external_id: str,
    course: str,
    *,
    progress_percent: int,
    completed_at: datetime | None = None,
    certificate_number: str | None = None,
) -> tuple[Enrolment, bool]:
    """Create or replace a learner's enrolment in a course; 422 names every bad field."""
    errors = FieldErrors()
    learner = await _learner_for(session, errors, learner_external_id)
    course = errors.identifier("course", course, 200)
    values: dict[str, Any] = {
        "progress_percent": errors.whole_number("progress_percent", progress_percent, 0, 100),
        "completed_at": errors.moment("completed_at", completed_at, required=False),
        "certificate_number": errors.text(
            "certificate_number", certificate_number, 100, required=False
        ),
    }
    errors.raise_if_any()
    assert learner is not None and learner.id is not None
    learner_id = learner.id
    enrolment = await session.scalar(
        select(Enrolment).where(
            col(Enrolment.learner_id) == learner_id, col(Enrolment.course) == course
        )
    )
    return await _insert_or_update(
        session,
        "enrolment",
        enrolment,
        values,
        partial(Enrolment, learner_id=learner_id, course=course),
    )


async def _learner_for(
    session: AsyncSession, errors: FieldErrors, external_id: str
) -> Learner | None:
    """The learner an order or enrolment belongs to; an unknown id is a field error."""
    external_id = errors.identifier("learner_external_id", external_id, 200)
    if external_id is None or "learner_external_id" in errors.messages:
        return None
    learner = await find_learner(session, external_id)
    if learner is None:
        errors.add("learner_external_id", "no learner with this id; sync the learner first")
    return learner


async def _insert_or_update(
    session: AsyncSession,
    kind: str,
    row: RowT | None,
    values: dict[str, Any],
    new_row: Callable[..., RowT],
) -> tuple[RowT, bool]:
    """Insert `new_row(**values)`, or update `row`; audit what changed, by name only."""
    if row is None:
        row = new_row(**values)
        session.add(row)
        await _flush(session)
        await record_event(session, ACTOR, f"{kind}.created", f"{kind}:{row.id}")
        return row, True
    changed = _assign(row, values)
    if changed:
        await _flush(session)
        await record_event(session, ACTOR, f"{kind}.updated", f"{kind}:{row.id}", changed=changed)
    return row, False


async def _ensure_email_is_free(
    session: AsyncSession, email_key: str, learner: Learner | None
) -> None:
    holder = await session.scalar(
        select(col(Learner.id)).where(col(Learner.email_key) == email_key)
    )
    if holder is not None and (learner is None or holder != learner.id):
        raise Conflict("Another learner already uses this email address.")


def _assign(row: Any, values: dict[str, Any]) -> list[str]:
    """Set the fields whose value differs; return their names, sorted (for the audit log)."""
    changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
    for name in changed:
        setattr(row, name, values[name])
    if changed and hasattr(row, "updated_at"):
        row.updated_at = utcnow()
    return changed


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two syncs of the same record (or of the same email address) raced each other;
        # the transaction is rolled back and the platform can simply retry.
        raise Conflict("The record was changed by a concurrent request; please retry.") from exc
