"""Thread expiry: exactly the tickets the policy names are deleted, with all they hold.

Every test runs on SQLite and PostgreSQL (the `runtime` fixture).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import PrivacyRequest, RetentionRun, Ticket, TicketTombstone
from helpdesk.retention import expiry
from helpdesk.retention.lease import JobBusy
from helpdesk.retention.service import run_retention
from helpdesk.tickets import service as tickets
from tests.factories import learner_mail
from tests.mail_factory import make_mail
from tests.retention_factory import (
    NOW,
    count_rows,
    full_thread,
    old_ticket,
    rows_of_ticket,
)


async def ticket_numbers(runtime: Runtime) -> set[int]:
    async with runtime.sessions() as session:
        return set(await session.scalars(select(Ticket.number)))


async def test_thread_expires_only_when_strictly_more_than_24_months_have_passed(
    runtime: Runtime,
) -> None:
    two_years_before = datetime(2024, 11, 21, 10, 0, tzinfo=UTC)
    younger = await old_ticket(runtime, two_years_before + timedelta(seconds=1))
    exactly = await old_ticket(runtime, two_years_before)
    older = await old_ticket(runtime, two_years_before - timedelta(seconds=1))

    dry = await run_retention(runtime, now=NOW, dry_run=True)
    assert dry.as_json()["categories"]["threads"] == {
        "count": 1,
        "oldest": "2024-11-21T09:59:59+00:00",
        "newest": "2024-11-21T09:59:59+00:00",
    }
    assert await ticket_numbers(runtime) == {younger.number, exactly.number, older.number}

    report = await run_retention(runtime, now=NOW)

    assert report.categories["threads"].count == 1
    assert await ticket_numbers(runtime) == {younger.number, exactly.number}


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (datetime(2026, 2, 28, 12, 0, 0, tzinfo=UTC), False),
        (datetime(2026, 2, 28, 12, 0, 1, tzinfo=UTC), True),
    ],
)
async def test_29_february_plus_24_months_is_28_february(
    runtime: Runtime, now: datetime, expired: bool
) -> None:
    leap_day = await old_ticket(runtime, datetime(2024, 2, 29, 12, 0, tzinfo=UTC))

    await run_retention(runtime, now=now)

    assert (leap_day.number not in await ticket_numbers(runtime)) is expired


async def test_month_end_clamping_with_a_one_month_window(runtime: Runtime) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings,
        retention=msgspec.structs.replace(runtime.settings.retention, threads_months=1),
    )
    now = datetime(2026, 2, 28, 15, 0, 1, tzinfo=UTC)
    # 31 January 15:00 + 1 month = 28 February 15:00 (clamped): past at 15:00:01.
    january_31 = await old_ticket(runtime, datetime(2026, 1, 31, 15, 0, tzinfo=UTC))
    # 31 January 15:00:02 + 1 month = 28 February 15:00:02: not yet.
    january_31_later = await old_ticket(runtime, datetime(2026, 1, 31, 15, 0, 2, tzinfo=UTC))
    # 28 January 16:00 + 1 month = 28 February 16:00: not yet, though earlier than 31 January.
    january_28 = await old_ticket(runtime, datetime(2026, 1, 28, 16, 0, tzinfo=UTC))

    dry = await run_retention(runtime, now=now, dry_run=True)
    report = await run_retention(runtime, now=now)

    assert dry.categories["threads"].count == report.categories["threads"].count == 1
    assert await ticket_numbers(runtime) == {january_31_later.number, january_28.number}
    assert january_31.number not in await ticket_numbers(runtime)


async def test_legal_hold_protects_through_its_end_date_and_not_after(runtime: Runtime) -> None:
    old = datetime(2023, 1, 5, tzinfo=UTC)
    held = await old_ticket(
        runtime, old, legal_hold_until=NOW.date(), legal_hold_reason="Klage til forbrukertilsynet"
    )
    ended = await old_ticket(
        runtime, old, legal_hold_until=NOW.date() - timedelta(days=1), legal_hold_reason="Krav"
    )

    dry = await run_retention(runtime, now=NOW, dry_run=True)
    report = await run_retention(runtime, now=NOW)

    assert dry.held == report.held == [held.number]
    assert report.as_json()["held"] == [held.number]
    assert await ticket_numbers(runtime) == {held.number}
    assert ended.number not in await ticket_numbers(runtime)


@pytest.mark.parametrize(("status", "kept"), [("awaiting_verification", True), ("refused", False)])
async def test_open_privacy_request_stops_expiry(runtime: Runtime, status: str, kept: bool) -> None:
    ticket = await old_ticket(runtime, datetime(2023, 1, 5, tzinfo=UTC))
    async with transaction(runtime.sessions) as session:
        session.add(PrivacyRequest(ticket_id=ticket.id, kind="erasure", status=status, due_at=NOW))

    report = await run_retention(runtime, now=NOW)

    assert (ticket.number in await ticket_numbers(runtime)) is kept
    assert report.held == ([ticket.number] if kept else [])


async def test_a_message_arriving_after_the_dry_run_keeps_the_ticket(runtime: Runtime) -> None:
    ticket = await old_ticket(runtime, datetime(2024, 1, 10, tzinfo=UTC))
    dry = await run_retention(runtime, now=NOW, dry_run=True)
    assert dry.categories["threads"].count == 1

    async with transaction(runtime.sessions) as session:
        stored = await tickets.get_ticket(session, ticket.number)
        await tickets.append_message(session, stored, learner_mail("Hallo?"), now=NOW)
    report = await run_retention(runtime, now=NOW)

    assert report.categories["threads"].count == 0
    assert ticket.number in await ticket_numbers(runtime)


async def test_a_second_run_deletes_nothing_more(runtime: Runtime) -> None:
    for day in range(1, 6):
        await old_ticket(runtime, datetime(2024, 1, day, tzinfo=UTC))
    await old_ticket(runtime, datetime(2026, 1, 1, tzinfo=UTC))

    first = await run_retention(runtime, now=NOW)
    second = await run_retention(runtime, now=NOW)

    assert first.categories["threads"].count == 5
    assert all(t.count == 0 for t in second.categories.values())
    assert await count_rows(runtime, TicketTombstone) == 5
    assert await count_rows(runtime, Ticket) == 1


async def test_an_interrupted_run_is_resumed_by_the_next_one(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(1, 8):
        await old_ticket(runtime, datetime(2024, 1, day, tzinfo=UTC))
    monkeypatch.setattr(expiry, "BATCH_SIZE", 2)
    real_expire = expiry.expire_tickets
    batches = 0

    async def crash_on_third_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal batches
        batches += 1
        if batches == 3:
            raise KeyboardInterrupt  # as if the operator pressed Ctrl-C
        return await real_expire(*args, **kwargs)

    monkeypatch.setattr(expiry, "expire_tickets", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        await run_retention(runtime, now=NOW)
    assert await count_rows(runtime, Ticket) == 3  # two batches of two went

    monkeypatch.setattr(expiry, "expire_tickets", real_expire)
    resumed = await run_retention(runtime, now=NOW)

    assert resumed.categories["threads"].count == 3
    assert await count_rows(runtime, Ticket) == 0
    async with runtime.sessions() as session:
        runs = list(await session.scalars(select(RetentionRun).order_by(RetentionRun.id)))
    assert [r.status for r in runs] == ["interrupted", "finished"]
    assert runs[0].categories["threads"]["count"] == 4
    assert runs[1].categories["threads"]["count"] == 3


async def test_two_concurrent_runs_only_one_does_the_work(runtime: Runtime) -> None:
    for day in range(1, 11):
        await old_ticket(runtime, datetime(2024, 1, day, tzinfo=UTC))

    results = await asyncio.gather(
        run_retention(runtime, now=NOW),
        run_retention(runtime, now=NOW),
        return_exceptions=True,
    )

    reports = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, JobBusy)]
    assert len(reports) == 1 and len(refused) == 1, results
    assert reports[0].categories["threads"].count == 10
    assert await count_rows(runtime, TicketTombstone) == 10
    assert await count_rows(runtime, RetentionRun) == 1


async def test_a_lease_left_by_a_dead_runner_is_taken_after_it_runs_out(runtime: Runtime) -> None:
    from helpdesk.retention.lease import LEASE_SECONDS, Lease

    runtime.clock = FrozenClock(NOW)
    dead = Lease(runtime.sessions, runtime.clock, "retention")
    await dead.acquire()  # and never released
    with pytest.raises(JobBusy):
        await run_retention(runtime, now=NOW)

    runtime.clock.advance(timedelta(seconds=LEASE_SECONDS + 1))
    report = await run_retention(runtime, now=NOW)

    assert report.dry_run is False


async def test_expiry_leaves_no_row_or_file_and_a_late_reply_opens_a_new_ticket(
    runtime: Runtime,
) -> None:
    shared_pdf = b"%PDF-1.4 the same receipt in two tickets"
    old = await full_thread(
        runtime, datetime(2024, 3, 1, 9, 0, tzinfo=UTC), attachment=shared_pdf, large=True
    )
    live = await full_thread(
        runtime, datetime(2026, 11, 19, 9, 0, tzinfo=UTC), attachment=shared_pdf, sender="ola"
    )
    storage = runtime.storage
    assert all(storage.exists(path) for path in old.files)

    report = await run_retention(runtime, now=NOW)

    assert report.categories["threads"].count == 1
    assert await rows_of_ticket(runtime, old.ticket_id) == dict.fromkeys(
        [
            "tickets",
            "messages",
            "attachments",
            "inbound_mail",
            "outbound_emails",
            "delivery_attempts",
            "widget_conversations",
            "privacy_requests",
        ],
        0,
    )
    only_old = set(old.files) - set(live.files)  # its raw mail's file and its scan
    assert len(only_old) == 2 and not any(storage.exists(path) for path in only_old)
    assert all(storage.exists(path) for path in live.files)  # the shared PDF stays
    assert not storage.exists(old.export_file)
    assert storage.exists(live.export_file)
    assert (await rows_of_ticket(runtime, live.ticket_id))["messages"] >= 2
    async with runtime.sessions() as session:
        [tombstone] = await session.scalars(select(TicketTombstone))
    assert (tombstone.number, tombstone.channel, tombstone.created_month) == (
        old.number,
        "email",
        "2024-03",
    )

    runtime.clock = FrozenClock(NOW)
    late = make_mail(subject="Re: Spørsmål om kursbevis", in_reply_to=f"<{old.reply_message_id}>")
    result = await ingest_raw(runtime, late, "test")

    assert result.status == "created"
    assert result.ticket not in (None, old.number, live.number)
    async with runtime.sessions() as session:
        followup = await tickets.get_ticket(session, result.ticket or 0)
    assert followup.refers_to == old.number
    assert f"#{old.number}" in result.reason
    assert (await rows_of_ticket(runtime, followup.id or 0))["messages"] == 1  # nothing restored
