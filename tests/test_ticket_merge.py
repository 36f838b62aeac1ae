"""Merge, split, move and spam as services, on SQLite and PostgreSQL.

What an operator would notice: where messages, participants and orders end up, what the
closed ticket says, what the audit log records (ids, never text), and that a learner's
later reply to a merged ticket lands in the ticket it was merged into.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from mail_factory import make_mail
from sqlalchemy import select
from sqlmodel import col

from helpdesk.adapters.pubsub import Event
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.errors import Conflict, NotFound
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.live import wait_for_published
from helpdesk.models import AuditEvent, Message, Operator, PrivacyRequest, Ticket, TicketOrder
from helpdesk.signing import make_message_id, make_reply_address
from helpdesk.tickets import service
from helpdesk.tickets.merge import merge_tickets
from helpdesk.tickets.moves import move_message
from helpdesk.tickets.spam import SPAM_TAG, mark_spam, restore_from_spam
from helpdesk.tickets.split import split_message
from tests.factories import T0, add_learner_with_history, add_ticket, learner_mail
from tests.inbox_helpers import add_inbox_operator

LATER = T0 + timedelta(hours=2)


@pytest.fixture
async def operator(runtime: Runtime) -> Operator:
    operator_id = await add_inbox_operator(runtime, name="Kari Agent")
    async with transaction(runtime.sessions) as session:
        found = await session.get(Operator, operator_id)
        assert found is not None
        return found


async def _messages(runtime: Runtime, number: int) -> list[Message]:
    async with transaction(runtime.sessions) as session:
        ticket = await service.get_ticket(session, number)
        query = select(Message).where(col(Message.ticket_id) == ticket.id).order_by(col(Message.id))
        return list(await session.scalars(query))


async def _ticket(runtime: Runtime, number: int) -> Ticket:
    async with transaction(runtime.sessions) as session:
        return await service.get_ticket(session, number)


async def _audit(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with transaction(runtime.sessions) as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list(await session.scalars(query))


async def _merge(runtime: Runtime, source: int, into: int, operator: Operator) -> None:
    async with transaction(runtime.sessions) as session:
        await merge_tickets(
            session,
            await service.get_ticket(session, source),
            await service.get_ticket(session, into),
            operator=operator,
            now=LATER,
        )


async def test_merge_moves_messages_participants_and_orders_and_closes_the_source(
    runtime: Runtime, operator: Operator
) -> None:
    _, order_ids = await add_learner_with_history(runtime, email="kari@example.no")
    source = await add_ticket(
        runtime,
        subject="Faktura",
        requester="leder@bygg.no",
        text="Send faktura til oss",
        order_ids=(order_ids[0],),
    )
    target = await add_ticket(runtime, subject="Kursbevis mangler")
    async with transaction(runtime.sessions) as session:
        ticket = await service.get_ticket(session, source.number)
        ticket.participants = ["regnskap@bygg.no"]
        ticket.tags = ["faktura"]

    await _merge(runtime, source.number, target.number, operator)

    merged = await _messages(runtime, target.number)
    texts = [m.text for m in merged]
    assert "Send faktura til oss" in texts and "Hei, jeg finner ikke kursbeviset mitt." in texts
    assert any(f"#{source.number} was merged into this ticket" in t for t in texts)
    reasons = {m.text: m.thread_reason for m in merged}
    assert reasons["Send faktura til oss"] == f"moved; started #{source.number}, merged here"
    assert reasons["Hei, jeg finner ikke kursbeviset mitt."] == "new"
    survivor = await _ticket(runtime, target.number)
    assert survivor.participants == ["leder@bygg.no", "regnskap@bygg.no"]
    assert survivor.tags == ["faktura"]
    async with transaction(runtime.sessions) as session:
        linked = await session.scalars(
            select(col(TicketOrder.order_id)).where(col(TicketOrder.ticket_id) == target.id)
        )
        assert list(linked) == [order_ids[0]]
    closed = await _ticket(runtime, source.number)
    assert closed.status == "closed"
    left = await _messages(runtime, source.number)
    assert [m.direction for m in left] == ["note"]
    assert f"Merged into #{target.number}" in left[0].text
    (event,) = await _audit(runtime, "ticket.merged")
    assert event.target == f"ticket:{source.number}"
    assert event.details == {"into": target.number, "messages": 1}
    assert event.actor == f"operator:{operator.id}"


async def test_merge_announces_both_tickets_live(runtime: Runtime, operator: Operator) -> None:
    source = await add_ticket(runtime, requester="ola@example.no")
    target = await add_ticket(runtime)
    async with runtime.pubsub.subscribe(f"ticket:{target.id}", "inbox") as subscription:
        await _merge(runtime, source.number, target.number, operator)
        await wait_for_published()
        seen: list[Event] = []
        while (event := await subscription.next_within(0.5)) is not None:
            seen.append(event)
    assert {"type": "ticket"} in [e.data for e in seen if e.channel == f"ticket:{target.id}"]
    assert {"type": "ticket", "ticket": source.number} in [e.data for e in seen]


async def test_later_replies_to_a_merged_ticket_land_in_the_ticket_it_was_merged_into(
    runtime: Runtime, operator: Operator
) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<first@mail.example.no>"), "t")
    other = await ingest_raw(
        runtime,
        make_mail(sender="Ola <ola@example.no>", subject="Annet", message_id="<o@x.no>"),
        "t",
    )
    assert first.ticket is not None and other.ticket is not None
    await _merge(runtime, first.ticket, other.ticket, operator)

    by_stored_id = await ingest_raw(
        runtime, make_mail(subject="Re: Spørsmål", in_reply_to="<first@mail.example.no>"), "t"
    )
    signed = make_message_id(runtime.settings.secret_key, "kurs.example", first.ticket)
    by_signed_id = await ingest_raw(
        runtime, make_mail(subject="Re: x", in_reply_to=f"<{signed}>"), "t"
    )
    address = make_reply_address(runtime.settings.secret_key, "support@kurs.example", first.ticket)
    by_address = await ingest_raw(runtime, make_mail(to=address, subject="Enda en"), "t")

    for result in (by_stored_id, by_signed_id, by_address):
        assert (result.status, result.ticket) == ("appended", other.ticket)
    assert (await _ticket(runtime, first.ticket)).status == "closed"


@pytest.mark.parametrize("case", ["itself", "closed target", "widget source", "privacy case"])
async def test_merge_refusals_change_nothing(
    runtime: Runtime, operator: Operator, case: str
) -> None:
    source = await add_ticket(runtime, channel="widget" if case == "widget source" else "email")
    target = await add_ticket(runtime, status="closed" if case == "closed target" else None)
    into = source.number if case == "itself" else target.number
    if case == "privacy case":
        async with transaction(runtime.sessions) as session:
            session.add(PrivacyRequest(ticket_id=source.id, kind="erasure", due_at=LATER))
    with pytest.raises(Conflict):
        await _merge(runtime, source.number, into, operator)
    assert len(await _messages(runtime, source.number)) == 1
    assert (await _ticket(runtime, source.number)).status == "new"
    assert await _audit(runtime, "ticket.merged") == []


async def test_split_opens_a_new_ticket_with_the_message(
    runtime: Runtime, operator: Operator
) -> None:
    ticket = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, ticket.number)
        second = await service.append_message(
            session,
            found,
            learner_mail("Og forresten: jeg vil bytte kurs.", author_email="kari@example.no"),
            now=T0 + timedelta(minutes=5),
        )
    async with transaction(runtime.sessions) as session:
        new_ticket = await split_message(
            session,
            await service.get_ticket(session, ticket.number),
            second.id or 0,
            operator=operator,
            now=LATER,
        )
        new_number = new_ticket.number

    moved = await _messages(runtime, new_number)
    assert moved[0].id == second.id and moved[0].text == "Og forresten: jeg vil bytte kurs."
    assert moved[0].thread_reason == f"split; from #{ticket.number} by an operator"
    assert f"Split from #{ticket.number}" in moved[1].text
    new = await _ticket(runtime, new_number)
    assert (new.requester, new.refers_to, new.subject) == (
        "kari@example.no",
        ticket.number,
        "Kursbevis mangler",
    )
    remaining = await _messages(runtime, ticket.number)
    assert [m.direction for m in remaining] == ["inbound", "note"]
    (event,) = await _audit(runtime, "message.split")
    assert event.details == {"message": second.id, "to": new_number}


async def test_split_refuses_the_only_message_and_notes(
    runtime: Runtime, operator: Operator
) -> None:
    ticket = await add_ticket(runtime)
    (only,) = await _messages(runtime, ticket.number)
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, ticket.number)
        with pytest.raises(Conflict, match="only message"):
            await split_message(session, found, only.id or 0, operator=operator, now=LATER)
        note = await service.add_note(session, found, operator=operator, body="Notat", now=LATER)
        with pytest.raises(Conflict, match="learner's side"):
            await split_message(session, found, note.id or 0, operator=operator, now=LATER)
        with pytest.raises(NotFound):
            await split_message(session, found, 999_999, operator=operator, now=LATER)


async def test_move_puts_a_misthreaded_message_on_the_right_ticket(
    runtime: Runtime, operator: Operator
) -> None:
    wrong = await add_ticket(runtime, subject="Kursbevis")
    right = await add_ticket(runtime, subject="Faktura", requester="ola@example.no")
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, wrong.number)
        stray = await service.append_message(
            session,
            found,
            learner_mail("Fakturaen er feil", author_email="ola@example.no"),
            now=T0 + timedelta(minutes=5),
        )
    async with transaction(runtime.sessions) as session:
        await move_message(
            session,
            await service.get_ticket(session, wrong.number),
            stray.id or 0,
            await service.get_ticket(session, right.number),
            operator=operator,
            now=LATER,
        )
    assert [m.text for m in await _messages(runtime, right.number)][-1] == "Fakturaen er feil"
    assert "moved to" in (await _messages(runtime, wrong.number))[-1].text
    (event,) = await _audit(runtime, "message.moved")
    assert event.details == {"message": stray.id, "to": right.number}


async def test_mark_spam_tags_closes_and_leaves_the_open_queues(
    runtime: Runtime, operator: Operator
) -> None:
    ticket = await add_ticket(runtime, subject="Billige klokker")
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, ticket.number)
        found.needs_review = True
        await mark_spam(session, found, operator=operator, now=LATER)
    spam = await _ticket(runtime, ticket.number)
    assert (spam.status, spam.tags, spam.needs_review) == ("closed", [SPAM_TAG], False)
    assert [e.target for e in await _audit(runtime, "ticket.marked_spam")] == [
        f"ticket:{ticket.number}"
    ]
    async with transaction(runtime.sessions) as session:
        with pytest.raises(Conflict):
            await mark_spam(
                session,
                await service.get_ticket(session, ticket.number),
                operator=operator,
                now=LATER,
            )


async def test_not_spam_opens_the_ticket_again_without_the_tag(
    runtime: Runtime, operator: Operator
) -> None:
    ticket = await add_ticket(runtime, subject="Spørsmål om faktura")
    plain_closed = await add_ticket(runtime, status="closed")
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, ticket.number)
        found.tags = ["faktura"]
        await mark_spam(session, found, operator=operator, now=LATER)
    async with transaction(runtime.sessions) as session:
        await restore_from_spam(
            session, await service.get_ticket(session, ticket.number), operator=operator, now=LATER
        )
    restored = await _ticket(runtime, ticket.number)
    assert (restored.status, restored.tags, restored.resolved_at) == ("open", ["faktura"], None)
    assert [e.target for e in await _audit(runtime, "ticket.unmarked_spam")] == [
        f"ticket:{ticket.number}"
    ]
    reopened = [e.details for e in await _audit(runtime, "ticket.status_changed")][-1]
    assert reopened == {"from": "closed", "to": "open", "cause": "not_spam"}
    # Only spam comes back: an open ticket, or one closed for any other reason, is a 409.
    for number in (ticket.number, plain_closed.number):
        async with transaction(runtime.sessions) as session:
            with pytest.raises(Conflict, match="not marked as spam"):
                await restore_from_spam(
                    session, await service.get_ticket(session, number), operator=operator, now=LATER
                )
    # A merged ticket stays closed even with the tag: its mail threads into the target now.
    source, survivor = await add_ticket(runtime), await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, source.number)
        found.tags = [SPAM_TAG]
        await merge_tickets(
            session,
            found,
            await service.get_ticket(session, survivor.number),
            operator=operator,
            now=LATER,
        )
    async with transaction(runtime.sessions) as session:
        with pytest.raises(Conflict, match=f"merged into #{survivor.number}"):
            await restore_from_spam(
                session,
                await service.get_ticket(session, source.number),
                operator=operator,
                now=LATER,
            )


async def test_merge_never_copies_robots_onto_the_surviving_ticket(
    runtime: Runtime, operator: Operator
) -> None:
    source = await add_ticket(runtime, requester="ola@example.no")
    target = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, source.number)
        bounce = learner_mail(
            "Delivery failed",
            author_email="mailer-daemon@mx.example.no",
            author_kind="unknown",
            machine="bounce",
        )
        await service.append_message(session, found, bounce, now=T0 + timedelta(minutes=1))
    await _merge(runtime, source.number, target.number, operator)
    assert (await _ticket(runtime, target.number)).participants == ["ola@example.no"]


async def test_merging_an_answered_ticket_opens_the_new_target_and_keeps_the_assignee(
    runtime: Runtime, operator: Operator
) -> None:
    source = await add_ticket(runtime, requester="ola@example.no", assignee_id=operator.id)
    target = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        found = await service.get_ticket(session, source.number)
        answer = service.MessageDraft(
            direction="outbound", text="Hei Ola!", author_kind="operator", operator_id=operator.id
        )
        await service.append_message(session, found, answer, now=T0 + timedelta(minutes=3))
    await _merge(runtime, source.number, target.number, operator)
    survivor = await _ticket(runtime, target.number)
    assert (survivor.status, survivor.assignee_id) == ("open", operator.id)
