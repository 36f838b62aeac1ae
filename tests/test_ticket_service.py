"""Ticket lifecycle rules of DESIGN §7: last message, reopening, closed stays closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from helpdesk.db import transaction
from helpdesk.errors import Conflict
from helpdesk.models import AuditEvent, Message, Ticket
from helpdesk.models.tickets import STATUSES
from helpdesk.tickets import service as tickets
from helpdesk.tickets.lifecycle import check_transition
from tests.factories import T0, add_learner_with_history, add_ticket, learner_mail

LATER = T0 + timedelta(hours=3)


def operator_reply(text: str = "Hei Kari, her er kursbeviset.") -> tickets.MessageDraft:
    return tickets.MessageDraft(
        direction="outbound", text=text, author_kind="operator", author_name="Ola Agent",
        author_email="agent@kurs.example",
    )


async def append(runtime, number: int, draft, now=LATER, **options) -> Ticket:
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        await tickets.append_message(session, ticket, draft, now=now, **options)
    return ticket


async def test_first_ticket_number_looks_like_a_real_one_and_numbers_increase(runtime) -> None:
    first = await add_ticket(runtime)
    second = await add_ticket(runtime)
    assert first.number >= 1001
    assert second.number > first.number


async def test_ticket_from_a_known_address_is_linked_to_that_learner(runtime) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="Kari@Example.no")
    ticket = await add_ticket(runtime, requester="KARI@example.no")
    assert ticket.learner_id == learner_id
    assert ticket.requester == "kari@example.no"
    assert ticket.status == "new"


async def test_ticket_from_an_untrusted_sender_is_not_linked_to_the_learner(runtime) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session, subject="Send meg kvitteringene", channel="email",
            requester="kari@example.no", first_message=learner_mail(), now=T0,
            link_learner=False,
        )
    assert ticket.learner_id is None


async def test_an_unverified_sender_is_recorded_on_the_message(runtime) -> None:
    ticket = await add_ticket(runtime)
    await append(runtime, ticket.number, learner_mail("Hei", sender_verified=False))
    async with transaction(runtime.sessions) as session:
        flags = list(await session.scalars(
            select(Message.sender_verified).order_by(Message.id)))
    assert flags == [True, False]


async def test_first_message_has_reply_text_equal_to_text(runtime) -> None:
    ticket = await add_ticket(runtime, text="Hvor er kursbeviset?")
    async with transaction(runtime.sessions) as session:
        message = (await session.scalars(select(Message))).one()
    assert message.ticket_id == ticket.id
    assert message.reply_text == message.text == "Hvor er kursbeviset?"


async def test_cc_addresses_of_inbound_mail_become_participants_once(runtime) -> None:
    ticket = await add_ticket(runtime, requester="kari@example.no")
    updated = await append(
        runtime, ticket.number, learner_mail("Legger til sjefen min."),
        participants=["Per@Firma.no", "KARI@example.no", "per@firma.no", "leder@firma.no"],
    )
    assert updated.participants == ["per@firma.no", "leder@firma.no"]


async def test_learner_message_moves_last_message_at(runtime) -> None:
    ticket = await add_ticket(runtime)
    updated = await append(runtime, ticket.number, learner_mail("Har dere sett på saken?"))
    assert updated.last_message_at == LATER


@pytest.mark.parametrize(
    "draft",
    [
        pytest.param(
            tickets.MessageDraft(direction="note", text="Sjekket i Vipps.", author_kind="operator"),
            id="note",
        ),
        pytest.param(learner_mail("Jeg er på ferie.", machine="auto-reply"), id="auto-reply"),
        pytest.param(learner_mail("Delivery failed", machine="bounce"), id="bounce"),
        pytest.param(
            tickets.MessageDraft(direction="outbound", text="Vi har mottatt saken din.",
                                 author_kind="system"),
            id="automatic-mail",
        ),
    ],
)
async def test_notes_machine_and_automatic_mail_do_not_move_last_message_at(
    runtime, draft
) -> None:
    ticket = await add_ticket(runtime)
    updated = await append(runtime, ticket.number, draft)
    assert updated.last_message_at == T0


async def test_operator_reply_moves_last_message_at_and_opens_a_new_ticket(runtime) -> None:
    ticket = await add_ticket(runtime)
    updated = await append(runtime, ticket.number, operator_reply())
    assert updated.last_message_at == LATER
    assert updated.status == "open"


async def test_operator_may_choose_pending_when_replying(runtime) -> None:
    ticket = await add_ticket(runtime)
    updated = await append(runtime, ticket.number, operator_reply(), status_after="pending")
    assert updated.status == "pending"


@pytest.mark.parametrize("status", ["solved", "pending"])
async def test_learner_reply_reopens_a_waiting_ticket(runtime, status: str) -> None:
    ticket = await add_ticket(runtime, status=status)
    updated = await append(runtime, ticket.number, learner_mail("Det virker fortsatt ikke."))
    assert updated.status == "open"
    async with transaction(runtime.sessions) as session:
        events = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "ticket.status_changed"))).all()
    assert [(e.details["from"], e.details["to"]) for e in events] == [(status, "open")]


async def test_machine_mail_never_reopens_a_solved_ticket(runtime) -> None:
    ticket = await add_ticket(runtime, status="solved")
    auto_reply = learner_mail("Out of office", machine="auto-reply")
    updated = await append(runtime, ticket.number, auto_reply)
    assert updated.status == "solved"


async def test_learner_message_to_a_closed_ticket_is_refused(runtime) -> None:
    ticket = await add_ticket(runtime, status="closed")
    with pytest.raises(Conflict):
        await append(runtime, ticket.number, learner_mail("Hei igjen!"))


async def test_machine_mail_to_a_closed_ticket_is_kept_and_it_stays_closed(runtime) -> None:
    ticket = await add_ticket(runtime, status="closed")
    updated = await append(runtime, ticket.number, learner_mail("Undeliverable", machine="bounce"))
    assert updated.status == "closed"
    assert updated.last_message_at == T0


async def test_new_message_about_a_closed_ticket_opens_a_follow_up_that_refers_to_it(
    runtime,
) -> None:
    closed = await add_ticket(runtime, status="closed")
    async with transaction(runtime.sessions) as session:
        followup, message = await tickets.open_followup_ticket(
            session,
            refers_to=closed.number,
            matched_by="message-id",
            first_message=learner_mail("Nytt kursbevis?", thread_reason="message-id"),
            subject="Re: Kursbevis mangler",
            channel="email",
            requester="kari@example.no",
            now=LATER,
        )
    assert followup.number != closed.number
    assert followup.refers_to == closed.number
    assert followup.status == "new"
    assert message.thread_reason == (
        f"message-id; #{closed.number} is closed, follow-up #{followup.number}"
    )
    async with transaction(runtime.sessions) as session:
        old = await tickets.get_ticket(session, closed.number)
        old_messages = (await session.scalars(
            select(Message).where(Message.ticket_id == old.id))).all()
    assert old.status == "closed"
    assert len(old_messages) == 1


async def test_message_audit_events_carry_no_message_text(runtime) -> None:
    ticket = await add_ticket(runtime, text="Mitt personnummer er 01019912345")
    await append(runtime, ticket.number, learner_mail("Kontonummer 1234.56.78901"))
    async with transaction(runtime.sessions) as session:
        events = (await session.scalars(select(AuditEvent))).all()
    assert {e.action for e in events} >= {"ticket.created", "message.added"}
    dumped = repr([(e.actor, e.target, e.details) for e in events])
    assert "01019912345" not in dumped and "1234.56.78901" not in dumped


ALLOWED = {
    ("new", "open"), ("new", "pending"), ("new", "solved"), ("new", "closed"),
    ("open", "pending"), ("open", "solved"), ("open", "closed"),
    ("pending", "open"), ("pending", "solved"), ("pending", "closed"),
    ("solved", "open"), ("solved", "closed"),
}


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_status_transition_table(old: str, new: str) -> None:
    ticket = Ticket(number=1001, subject="s", requester="kari@example.no", status=old)
    if (old, new) in ALLOWED:
        check_transition(ticket, new)
    else:
        with pytest.raises(Conflict):
            check_transition(ticket, new)
