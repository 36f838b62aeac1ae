"""Factories for test data: small functions that build realistic records through services."""

from __future__ import annotations

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.operators import service as operators


async def add_operator(
    runtime: Runtime,
    email: str = "agent@kurs.example",
    name: str = "Ola Agent",
    role: str = "agent",
    password: str | None = None,
) -> str:
    """Create an operator and return a fresh API token for them."""
    async with transaction(runtime.sessions) as session:
        await operators.create_operator(session, email, name, role, password)
    async with transaction(runtime.sessions) as session:
        return await operators.issue_api_token(session, email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- tickets (operator API and ticket service tests) ---------------------------------

from datetime import UTC, datetime  # noqa: E402

from helpdesk.models import Enrolment, Learner, Order, Ticket, TicketOrder  # noqa: E402
from helpdesk.tickets import service as tickets  # noqa: E402

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def learner_mail(text: str = "Hei, jeg finner ikke kursbeviset mitt.", **fields: object):
    """A MessageDraft of a learner's inbound mail (override any field)."""
    values: dict[str, object] = {
        "direction": "inbound",
        "text": text,
        "author_kind": "learner",
        "author_name": "Kari Nordmann",
        "author_email": "kari@example.no",
        "thread_reason": "new",
    }
    values.update(fields)
    return tickets.MessageDraft(**values)  # type: ignore[arg-type]


async def add_ticket(
    runtime: Runtime,
    *,
    subject: str = "Kursbevis mangler",
    requester: str = "kari@example.no",
    text: str = "Hei, jeg finner ikke kursbeviset mitt.",
    now: datetime = T0,
    channel: str = "email",
    status: str | None = None,
    assignee_id: int | None = None,
    order_ids: tuple[int, ...] = (),
) -> Ticket:
    """Create a ticket from a learner's first message, optionally forced into a status."""
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session,
            subject=subject,
            channel=channel,
            requester=requester,
            requester_name="Kari Nordmann",
            first_message=learner_mail(text, author_email=requester),
            now=now,
        )
        if status is not None:
            ticket.status = status
        ticket.assignee_id = assignee_id
        for order_id in order_ids:
            session.add(TicketOrder(ticket_id=ticket.id, order_id=order_id))
    return ticket


async def add_learner_with_history(
    runtime: Runtime,
    *,
    external_id: str = "L-1001",
    email: str = "Kari@Example.no",
    name: str = "Kari Nordmann",
    organisation: str | None = "Nordmann Bygg AS",
) -> tuple[int, list[int]]:
    """A learner with an HMS course enrolment and two orders; returns (learner id, order ids)."""
    async with transaction(runtime.sessions) as session:
        learner = Learner(
            external_id=external_id,
            email=email,
            email_key=email.lower(),
            name=name,
            locale="nb",
            organisation=organisation,
        )
        session.add(learner)
        await session.flush()
        session.add(
            Enrolment(
                learner_id=learner.id,
                course="hms-grunnkurs",
                progress_percent=100,
                completed_at=datetime(2026, 10, 2, 14, 30, tzinfo=UTC),
                certificate_number="HMS-2026-0042",
            )
        )
        orders = [
            Order(
                number=f"{external_id}-{n}",
                learner_id=learner.id,
                course=course,
                amount_minor=amount,
                currency="NOK",
                status="paid",
                purchased_at=datetime(2026, month, 1, 9, 0, tzinfo=UTC),
                buyer_org_number="912345678",
            )
            for n, (course, amount, month) in enumerate(
                [("hms-grunnkurs", 249000, 9), ("arbeid-i-hoyden", 189000, 10)]
            )
        ]
        session.add_all(orders)
        await session.flush()
        assert learner.id is not None
        return learner.id, [o.id for o in orders if o.id is not None]
