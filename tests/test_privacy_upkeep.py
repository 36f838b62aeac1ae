"""Scheduled privacy work: links for requests started without one, operators reminded 7
and 2 days before the deadline (once each, content-free), expired links and exports gone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import PlatformEvent, PrivacyLink, PrivacyRequest, Ticket
from helpdesk.privacy import tasks
from helpdesk.privacy.deadlines import due_date
from helpdesk.privacy.verification import issue_link
from helpdesk.privacy.webhook import queue_platform_event
from tests.factories import add_learner_with_history, add_operator, add_ticket
from tests.privacy_flow import NOW, mail_to, sent_mail, text_of


async def _request(runtime, status: str, kind: str = "access") -> PrivacyRequest:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    ticket = await add_ticket(runtime, requester="kari@example.no", text="Hei", now=NOW)
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        stored.learner_id = learner_id
        request = PrivacyRequest(
            ticket_id=ticket.id,
            learner_id=learner_id,
            kind=kind,
            status=status,
            received_at=NOW,
            due_at=due_date(NOW),
        )
        session.add(request)
    return request


async def test_request_started_without_a_link_gets_one_mailed(runtime) -> None:
    runtime.clock = FrozenClock(NOW)
    await _request(runtime, "awaiting_verification")
    assert await tasks.send_verifications(runtime) == 1
    (mail,) = await mail_to(runtime, "kari@example.no")
    assert "/privacy/verify/" in text_of(mail)
    assert await tasks.send_verifications(runtime) == 0  # one link is enough


async def test_operators_are_reminded_seven_and_two_days_before_the_deadline(runtime) -> None:
    await add_operator(runtime, "admin@kurs.example", "Ada Admin", "admin")
    request = await _request(runtime, "verified")
    due = request.due_at
    outbox_before = len(await sent_mail(runtime))
    for days_before, expected in [(8, 0), (7, 1), (7, 0), (6, 0), (2, 1), (1, 0)]:
        runtime.clock = FrozenClock(due - timedelta(days=days_before))
        assert await tasks.remind_deadlines(runtime) == expected, days_before
    reminders = (await sent_mail(runtime))[outbox_before:]
    assert [recipients for recipients, _ in reminders] == [["admin@kurs.example"]] * 2
    body = text_of(reminders[0][1])
    assert "7 dager" in body and "/inbox/privacy/" in body
    assert "Kari" not in body and "kari@example.no" not in body  # content-free


async def test_expired_export_links_and_their_files_are_removed(runtime) -> None:
    runtime.clock = FrozenClock(NOW)
    request = await _request(runtime, "completed")
    stored = runtime.storage.put("exports", b"PK fake export")
    async with transaction(runtime.sessions) as session:
        await issue_link(
            session, request, "export", now=NOW, max_downloads=3, file_path=stored.path
        )
    runtime.clock = FrozenClock(NOW + timedelta(days=6))
    assert await tasks.clean_expired_links(runtime) == 0
    assert runtime.storage.exists(stored.path)
    runtime.clock = FrozenClock(NOW + timedelta(days=7, seconds=1))
    assert await tasks.clean_expired_links(runtime) == 1
    assert not runtime.storage.exists(stored.path)
    async with transaction(runtime.sessions) as session:
        assert list(await session.scalars(select(PrivacyLink))) == []


async def test_delivered_platform_events_go_after_thirty_days_undelivered_stay(runtime) -> None:
    old = NOW - timedelta(days=400)
    async with transaction(runtime.sessions) as session:
        for name, status, delivered in [
            ("delivered-31-days", "delivered", NOW - timedelta(days=31)),
            ("delivered-29-days", "delivered", NOW - timedelta(days=29)),
            ("pending-a-year", "pending", None),
        ]:
            event = await queue_platform_event(session, "learner.erasure_requested", name, now=old)
            event.status, event.delivered_at = status, delivered
    runtime.clock = FrozenClock(NOW)
    assert await tasks.clean_expired_links(runtime) == 1
    async with transaction(runtime.sessions) as session:
        left = {e.external_id for e in await session.scalars(select(PlatformEvent))}
    assert left == {"delivered-29-days", "pending-a-year"}
    runtime.clock = FrozenClock(NOW + timedelta(days=2))
    assert await tasks.clean_expired_links(runtime) == 1
    async with transaction(runtime.sessions) as session:
        left = {e.external_id for e in await session.scalars(select(PlatformEvent))}
    assert left == {"pending-a-year"}  # kept until the platform acknowledges it
