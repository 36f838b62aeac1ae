"""`helpdesk demo-data`: realistic learners, orders and tickets for a first look.

Runs only on an empty database (no operators, learners or tickets), so it can never mix
demo rows into real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import Enrolment, Learner, Operator, Order, Ticket
from helpdesk.operators.service import create_operator
from helpdesk.tickets.lifecycle import MessageDraft, append_message, change_status, create_ticket

DEMO_OPERATOR = ("demo@helpdesk.local", "Demo Operatør", "demo")


@dataclass(frozen=True)
class DemoLearner:
    external_id: str
    email: str
    name: str
    locale: str
    organisation: str | None
    course: str
    progress: int


LEARNERS = [
    DemoLearner("u-1001", "kari.nordmann@example.no", "Kari Nordmann", "nb", "Byggmester AS",
                "HMS for ledere (40 t)", 100),
    DemoLearner("u-1002", "ola.hansen@example.no", "Ola Hansen", "nb", None,
                "Teorikurs klasse B", 64),
    DemoLearner("u-1003", "aase.odegard@example.no", "Åse Ødegård", "nn", "Vestland Elektro",
                "Verneombudskurs", 100),
    DemoLearner("u-1004", "jonas.berg@example.com", "Jonas Berg", "en", "North Sea Logistics",
                "Working at height", 30),
    DemoLearner("u-1005", "sofie.lie@example.no", "Sofie Lie", "nb", None,
                "Teorikurs klasse A", 12),
    DemoLearner("u-1006", "emma.wilson@example.com", "Emma Wilson", "en", None,
                "Fire safety basics", 100),
]

# (learner index or None for a stranger, channel, subject, status, messages, days ago)
# Each message: (direction, author, text) with author "learner" or "operator".
TICKETS: list[tuple[int | None, str, str, str, list[tuple[str, str]], int]] = [
    (0, "email", "Kursbevis mangler etter fullført HMS-kurs", "new", [
        ("learner", "Hei!\n\nJeg fullførte HMS for ledere i går, men har ikke fått kursbeviset. "
                    "Kan dere sende det til meg?\n\nMvh Kari"),
    ], 0),
    (1, "widget", "Får ikke startet prøveeksamen", "open", [
        ("learner", "Hei, prøveeksamen henger på spørsmål 12. Jeg har prøvd to nettlesere."),
        ("operator", "Hei Ola! Takk for beskjed. Vi ser på det nå – kan du si hvilken "
                     "nettleser og versjon du bruker?"),
        ("learner", "Chrome 131 på Windows, og Safari på iPhone."),
    ], 1),
    (2, "email", "Faktura til arbeidsgiver", "pending", [
        ("learner", "Hei. Kan fakturaen for verneombudskurset sendast til Vestland Elektro, "
                    "org.nr. 987 654 321?\n\nHelsing Åse"),
        ("operator", "Hei Åse, det ordnar vi. Vi treng berre fakturaadressa til firmaet."),
    ], 3),
    (3, "email", "Refund for cancelled course date", "solved", [
        ("learner", "Hello, the classroom session on 12 March was cancelled. "
                    "I would like a refund for order 20261042."),
        ("operator", "Hi Jonas, sorry about that. The refund has been issued and should "
                     "reach your card within 5 working days."),
    ], 9),
    (4, "form", "Spørsmål om rabatt for studenter", "new", [
        ("learner", "Gir dere studentrabatt på teorikurs for motorsykkel?"),
    ], 0),
    (5, "email", "Certificate name is misspelled", "closed", [
        ("learner", "My certificate says 'Emma Wilsen'. Could you correct it?"),
        ("operator", "Fixed – a corrected certificate is attached to your account."),
        ("learner", "Perfect, thank you!"),
    ], 40),
    (None, "email", "Samarbeid om kurs for 30 ansatte?", "open", [
        ("learner", "Hei, vi er et entreprenørfirma som vil kurse 30 ansatte i HMS. "
                    "Har dere bedriftspriser?"),
    ], 2),
    (0, "email", "Slette mine opplysninger", "new", [
        ("learner", "Hei, jeg ønsker at dere sletter mine opplysninger etter at kurset er "
                    "ferdig. Hva må jeg gjøre?"),
    ], 0),
]


async def _is_empty(session: AsyncSession) -> bool:
    for model in (Operator, Learner, Ticket):
        if await session.scalar(select(func.count()).select_from(model)):
            return False
    return True


async def load_demo_data(runtime: Runtime) -> bool:
    """Fill an empty database; return False (changing nothing) if it holds anything."""
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        if not await _is_empty(session):
            return False
        email, name, password = DEMO_OPERATOR
        demo = await create_operator(session, email, name, "admin", password)
        await create_operator(session, "siri@helpdesk.local", "Siri Support", "agent", "demo")
        learners = [await _add_learner(session, spec, now) for spec in LEARNERS]
        for index, spec in enumerate(TICKETS):
            await _add_ticket(session, spec, learners, demo, now - timedelta(days=spec[5]), index)
    return True


async def _add_learner(session: AsyncSession, spec: DemoLearner, now: datetime) -> Learner:
    learner = Learner(
        external_id=spec.external_id, email=spec.email, email_key=spec.email.lower(),
        name=spec.name, locale=spec.locale, organisation=spec.organisation,
    )
    session.add(learner)
    await session.flush()
    assert learner.id is not None, "a flushed learner has an id"
    completed = now - timedelta(days=2) if spec.progress == 100 else None
    session.add(Enrolment(
        learner_id=learner.id, course=spec.course, progress_percent=spec.progress,
        completed_at=completed,
        certificate_number=f"KB-{learner.external_id[2:]}-2026" if completed else None,
    ))
    session.add(Order(
        number=f"2026{1000 + int(spec.external_id[2:]) % 1000:04d}", learner_id=learner.id,
        course=spec.course, amount_minor=249_000 if spec.organisation else 89_000,
        currency="NOK", status="paid", purchased_at=now - timedelta(days=30),
    ))
    return learner


async def _add_ticket(
    session: AsyncSession, spec: tuple, learners: list[Learner], operator: Operator,
    started: datetime, index: int,
) -> None:
    learner_index, channel, subject, status, messages, _ = spec
    learner = learners[learner_index] if learner_index is not None else None
    requester = learner.email if learner else "post@entreprenor-demo.no"
    requester_name = learner.name if learner else "Per Entreprenør"
    drafts = [
        _draft(author, text, requester, requester_name, operator, learner, first=i == 0)
        for i, (author, text) in enumerate(messages)
    ]
    ticket, _ = await create_ticket(
        session, subject=subject, channel=channel, requester=requester,
        requester_name=requester_name, first_message=drafts[0], now=started,
        learner_id=learner.id if learner else None,
    )
    for offset, draft in enumerate(drafts[1:], start=1):
        await append_message(session, ticket, draft, now=started + timedelta(hours=offset))
    if ticket.status != status:
        if status == "closed" and ticket.status != "solved":
            await change_status(session, ticket, "solved", actor="system", now=started)
        await change_status(session, ticket, status, actor="system", now=started)
    if index % 3 == 1:
        ticket.assignee_id = operator.id


def _draft(
    author: str, text: str, requester: str, requester_name: str, operator: Operator,
    learner: Learner | None, *, first: bool,
) -> MessageDraft:
    if author == "operator":
        return MessageDraft(
            direction="outbound", text=text, author_kind="operator",
            author_name=operator.name, author_email=operator.email, operator_id=operator.id,
        )
    return MessageDraft(
        direction="inbound", text=text, author_kind="learner" if learner else "unknown",
        author_name=requester_name, author_email=requester, sender=requester,
        thread_reason="new" if first else "message-id; demo conversation",
    )
