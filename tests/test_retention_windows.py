"""The other retention windows: each category removes exactly the rows past its window."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import SQLModel

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import (
    AuditEvent,
    InboundMail,
    Order,
    OutboundEmail,
    PrivacyRequest,
    SignInFailure,
    Ticket,
)
from helpdesk.models.operators import OperatorSession
from helpdesk.models.outbound import DeliveryAttempt
from helpdesk.models.widget import VerificationCode, WidgetConversation
from helpdesk.operators import service as operators
from helpdesk.retention.closing import close_quiet_solved_tickets
from helpdesk.retention.service import purge_short_windows, run_retention
from helpdesk.tickets import service as tickets
from tests.factories import learner_mail
from tests.retention_factory import NOW, old_ticket


def table(name: str) -> Any:
    return SQLModel.metadata.tables[name]


def export_zip(days: int) -> bytes:
    """The content of the fake export ZIP whose link is `days` old."""
    return f"PK export {days}".encode()


def export_path(days: int) -> str:
    """Where the file storage keeps that ZIP (content-addressed, "exports" area)."""
    digest = hashlib.sha256(export_zip(days)).hexdigest()
    return f"exports/{digest[:2]}/{digest[2:4]}/{digest}"


async def seed_every_window(runtime: Runtime) -> None:
    """For each category one row just past its window and one just inside it."""
    storage = runtime.storage
    ticket = await old_ticket(runtime, NOW - timedelta(days=3))
    async with transaction(runtime.sessions) as session:
        operator = await operators.create_operator(
            session, "ola@kurs.example", "Ola", "agent", None
        )
        for at, suffix in ((NOW - timedelta(days=366), "old"), (NOW - timedelta(days=300), "new")):
            mail = OutboundEmail(
                ticket_id=ticket.id,
                rfc_message_id=f"{suffix}@kurs.example",
                status="sent",
                last_reply="250 2.0.0 queued as ABC",
                created_at=at,
            )
            session.add(mail)
            await session.flush()
            session.add(
                DeliveryAttempt(
                    outbound_email_id=mail.id,
                    attempt=1,
                    recipient="kari@example.no",
                    status="accepted",
                    attempted_at=at,
                )
            )
        session.add(
            AuditEvent(
                at=datetime(2024, 11, 21, 9, tzinfo=UTC), actor="system", action="x", target="t"
            )
        )
        session.add(
            AuditEvent(
                at=datetime(2024, 11, 21, 11, tzinfo=UTC), actor="system", action="x", target="t"
            )
        )
        conversation = WidgetConversation(
            public_id="c1", ticket_id=ticket.id, token_hash="f" * 64, name="Kari", email="k@e.no"
        )
        session.add(conversation)
        await session.flush()
        for minutes in (11, 9):
            issued = NOW - timedelta(minutes=minutes)
            session.add(
                VerificationCode(
                    conversation_id=conversation.id,
                    code_hash=secrets.token_hex(32),
                    created_at=issued,
                    expires_at=issued + timedelta(minutes=10),
                )
            )
        request = PrivacyRequest(ticket_id=ticket.id, kind="access", status="completed", due_at=NOW)
        session.add(request)
        await session.flush()
        for purpose, days in (("verify", 8), ("verify", 6), ("export", 8), ("export", 6)):
            path = None
            if purpose == "export":
                path = storage.put("exports", export_zip(days)).path
            await session.execute(
                table("privacy_links")
                .insert()
                .values(
                    request_id=request.id,
                    purpose=purpose,
                    token_hash=secrets.token_hex(32),
                    created_at=NOW - timedelta(days=days),
                    expires_at=NOW - timedelta(days=days) + timedelta(days=7),
                    downloads=0,
                    max_downloads=1,
                    file_path=path,
                )
            )
        for idle_days in (31, 29):
            seen = NOW - timedelta(days=idle_days)
            session.add(
                OperatorSession(
                    token_hash=secrets.token_hex(32),
                    operator_id=operator.id,
                    last_seen_at=seen,
                    expires_at=NOW + timedelta(days=1),
                )
            )
        session.add(SignInFailure(account_key="a", client_key="b", at=NOW - timedelta(hours=1)))
        for days in (31, 29):
            raw = storage.put("raw", f"Auto-Submitted: auto-replied {days}".encode())
            session.add(
                InboundMail(
                    sha256=raw.sha256,
                    storage_path=raw.path,
                    size=raw.size,
                    source="test",
                    received_at=NOW - timedelta(days=days),
                    status="ignored",
                    machine="auto-reply",
                )
            )
        for number, purchased in (
            ("2020-12", datetime(2020, 12, 31, 22, 59, tzinfo=UTC)),  # 23:59 in Oslo: 2020
            ("2021-01", datetime(2020, 12, 31, 23, 0, tzinfo=UTC)),  # 00:00 in Oslo: 2021
        ):
            session.add(
                Order(
                    number=number,
                    amount_minor=249000,
                    currency="NOK",
                    status="paid",
                    purchased_at=purchased,
                )
            )


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model))) or 0


async def test_each_window_removes_only_what_is_past_it(runtime: Runtime) -> None:
    await seed_every_window(runtime)

    dry = (await run_retention(runtime, now=NOW, dry_run=True)).as_json()
    report = (await run_retention(runtime, now=NOW)).as_json()

    expected = {
        "threads": 0,
        "delivery_logs": 2,  # the old attempt, and the old mail's relay answer
        "audit_events": 1,
        "one_time_codes": 1,
        "privacy_links": 1,
        "exports": 1,
        "sessions": 1,
        "ignored_mail": 1,
        "order_bookkeeping": 1,
    }
    assert {name: c["count"] for name, c in dry["categories"].items()} == expected
    assert {name: c["count"] for name, c in report["categories"].items()} == expected
    assert dry["categories"]["order_bookkeeping"]["oldest"] == "2020-12-31T22:59:00+00:00"
    assert await count(runtime, DeliveryAttempt) == 1
    async with runtime.sessions() as session:
        answers = dict(
            (
                await session.execute(
                    select(OutboundEmail.rfc_message_id, OutboundEmail.last_reply)
                )
            ).all()
        )
        order_numbers = list(await session.scalars(select(Order.number)))
        [kept_mail] = await session.scalars(select(InboundMail))
    # The body of a kept thread's mail stays; only the delivery details go.
    assert answers == {"old@kurs.example": None, "new@kurs.example": "250 2.0.0 queued as ABC"}
    async with runtime.sessions() as session:
        seeded = list(await session.scalars(select(AuditEvent.at).where(AuditEvent.action == "x")))
        [run_event] = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.run")
        )
    assert seeded == [datetime(2024, 11, 21, 11, tzinfo=UTC)]  # the older one went
    assert run_event.details["counts"]["ignored_mail"] == 1
    assert await count(runtime, VerificationCode) == 1
    assert await count(runtime, table("privacy_links")) == 2
    assert not runtime.storage.exists(export_path(8))
    assert runtime.storage.exists(export_path(6))
    assert await count(runtime, OperatorSession) == 1
    assert await count(runtime, SignInFailure) == 0
    assert runtime.storage.exists(kept_mail.storage_path)
    assert order_numbers == ["2021-01"]

    again = (await run_retention(runtime, now=NOW)).as_json()
    assert all(c["count"] == 0 for c in again["categories"].values())


async def test_solved_ticket_closes_after_seven_quiet_days(runtime: Runtime) -> None:
    quiet = await old_ticket(runtime, NOW - timedelta(days=9), status="solved")
    recent = await old_ticket(runtime, NOW - timedelta(days=9), status="solved")
    async with transaction(runtime.sessions) as session:
        for ticket, at in ((quiet, NOW - timedelta(days=8)), (recent, NOW - timedelta(days=8))):
            stored = await tickets.get_ticket(session, ticket.number)
            stored.updated_at = at
        stored = await tickets.get_ticket(session, recent.number)
        await tickets.append_message(
            session, stored, learner_mail("Takk!"), now=NOW - timedelta(days=6)
        )
        stored.status, stored.updated_at = "solved", NOW - timedelta(days=8)

    closed = await close_quiet_solved_tickets(runtime.sessions, now=NOW, days=7)

    assert closed == 1
    async with runtime.sessions() as session:
        rows = await session.execute(select(Ticket.number, Ticket.status))
        statuses = dict(rows.all())
    assert statuses == {quiet.number: "closed", recent.number: "solved"}


async def test_hourly_clean_up_takes_only_the_short_windows(runtime: Runtime) -> None:
    await seed_every_window(runtime)

    counts = await purge_short_windows(runtime, now=NOW)

    assert counts == {"one_time_codes": 1, "privacy_links": 1, "exports": 1, "sessions": 1}
    assert not runtime.storage.exists(export_path(8))
    assert await count(runtime, DeliveryAttempt) == 2  # the nightly run's business
    assert await count(runtime, Order) == 2
