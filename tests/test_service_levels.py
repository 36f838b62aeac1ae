"""Service levels: business-time arithmetic (weekends, Norwegian holidays, DST), due times on
tickets, the breach queue and the acknowledgement's promise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from helpdesk.bootstrap import Runtime
from helpdesk.config import ConfigError, load_settings
from helpdesk.db import transaction
from helpdesk.inbox.queues import QueueFilters, list_queue, queue_counts
from helpdesk.inbox.service_level_display import service_level_views
from helpdesk.models import Message, Operator, OutboundEmail, Ticket
from helpdesk.outbound.acknowledgements import write_acknowledgements
from helpdesk.outbound.automatic import maybe_acknowledge
from helpdesk.tickets import service
from helpdesk.tickets.business_time import (
    BusinessHours,
    add_business_time,
    business_time_between,
    parse_business_hours,
)
from helpdesk.tickets.lifecycle import MessageDraft, append_message, change_status
from helpdesk.tickets.service_levels import (
    default_policy,
    parse_policy,
    promised_response_hours,
    session_info,
)
from tests.factories import T0, add_operator, add_ticket
from tests.outbound_factory import add_mail_ticket, parse, text_part

OSLO = ZoneInfo("Europe/Oslo")
HOURS = BusinessHours()


def oslo(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # Friday afternoon: the rest of the day, then Monday morning.
        (oslo(2026, 11, 20, 15, 0), 2, oslo(2026, 11, 23, 9, 0)),
        # Before opening: the clock starts at 08:00.
        (oslo(2026, 11, 23, 6, 30), 1, oslo(2026, 11, 23, 9, 0)),
        # Saturday night counts from Monday 08:00.
        (oslo(2026, 11, 21, 23, 0), 8, oslo(2026, 11, 23, 16, 0)),
        # Easter 2026: Maundy Thursday, Good Friday, the weekend and Easter Monday are closed.
        (oslo(2026, 4, 1, 15, 0), 2, oslo(2026, 4, 7, 9, 0)),
        # 17 May 2027 is a Monday.
        (oslo(2027, 5, 14, 15, 30), 1, oslo(2027, 5, 18, 8, 30)),
        # Christmas Eve is a working day in the calendar; 25 and 26 December are not.
        (oslo(2026, 12, 24, 15, 0), 2, oslo(2026, 12, 28, 9, 0)),
        # Ascension Day 2026 (Thursday 14 May).
        (oslo(2026, 5, 13, 15, 0), 2, oslo(2026, 5, 15, 9, 0)),
        # Three business days from the middle of one.
        (oslo(2026, 11, 24, 12, 0), 24, oslo(2026, 11, 27, 12, 0)),
    ],
)
def test_business_time_skips_nights_weekends_and_norwegian_holidays(
    start: datetime, hours: int, due: datetime
) -> None:
    assert add_business_time(start, timedelta(hours=hours), HOURS) == due


def test_spring_daylight_saving_change_keeps_opening_hours_on_the_wall_clock() -> None:
    # Friday 27 March 2026 15:00 CET (14:00 UTC); clocks go forward on Sunday.
    due = add_business_time(oslo(2026, 3, 27, 15, 0), timedelta(hours=2), HOURS)

    assert due.astimezone(OSLO) == oslo(2026, 3, 30, 9, 0)
    assert due == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # CEST is UTC+2


def test_autumn_daylight_saving_change_keeps_opening_hours_on_the_wall_clock() -> None:
    due = add_business_time(oslo(2026, 10, 23, 15, 0), timedelta(hours=2), HOURS)

    assert due == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)  # 09:00 CET
    elapsed = business_time_between(oslo(2026, 10, 23, 15, 0), due, HOURS)
    assert elapsed == timedelta(hours=2)


def test_business_time_between_counts_only_open_hours() -> None:
    friday_noon, tuesday_noon = oslo(2026, 11, 20, 12, 0), oslo(2026, 11, 24, 12, 0)

    assert business_time_between(friday_noon, tuesday_noon, HOURS) == timedelta(hours=16)
    assert business_time_between(tuesday_noon, friday_noon, HOURS) == timedelta(0)
    # Easter week: only Wednesday 1 April and Tuesday 7 April are open.
    easter = business_time_between(oslo(2026, 4, 1, 8, 0), oslo(2026, 4, 7, 16, 0), HOURS)
    assert easter == timedelta(hours=16)


def test_holiday_names_come_from_the_calendar_package() -> None:
    assert HOURS.holiday_name(oslo(2026, 5, 17).date()) is not None
    assert HOURS.holiday_name(oslo(2026, 11, 20).date()) is None


def test_other_business_hours_and_targets_can_be_configured() -> None:
    saturday_shop = parse_business_hours("mon-sat 09:00-15:00")
    due = add_business_time(oslo(2026, 11, 21, 14, 0), timedelta(hours=2), saturday_shop)
    assert due == oslo(2026, 11, 23, 10, 0)

    policy = parse_policy("urgent=30m/4h, low=1d/10d")
    assert policy.targets["urgent"].first_response == timedelta(minutes=30)
    assert policy.targets["low"].first_response == timedelta(hours=8)  # one business day
    assert policy.targets["normal"].first_response == timedelta(hours=8)  # the default

    settings = load_settings({"HELPDESK_SERVICE_LEVELS": "high=2h/1d"})
    assert settings.service_levels.targets["high"].first_response == timedelta(hours=2)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HELPDESK_SERVICE_LEVELS", "urgent=soon"),
        ("HELPDESK_SERVICE_LEVELS", "urgent=8h/1h"),
        ("HELPDESK_SERVICE_LEVELS", "critical=1h/2h"),
        ("HELPDESK_BUSINESS_HOURS", "16:00-08:00"),
        ("HELPDESK_BUSINESS_HOURS", "fri-mon 08:00-16:00"),
        ("HELPDESK_BUSINESS_TIMEZONE", "Europe/Nowhere"),
    ],
)
def test_bad_service_level_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        load_settings({variable: value})

    assert failure.value.variable == variable


# --- due times on tickets ---------------------------------------------------------------

FRIDAY_3PM = oslo(2026, 11, 20, 15, 0).astimezone(UTC)


async def _operator(runtime: Runtime) -> Operator:
    await add_operator(runtime)
    async with runtime.sessions() as session:
        found = await session.scalar(select(Operator))
        assert found is not None
        return found


async def _reload(runtime: Runtime, ticket: Ticket) -> Ticket:
    async with runtime.sessions() as session:
        found = await session.get(Ticket, ticket.id)
        assert found is not None
        return found


async def _reply(runtime: Runtime, ticket: Ticket, operator: Operator, now: datetime) -> None:
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        draft = MessageDraft(
            direction="outbound",
            text="Hei! Her er kursbeviset.",
            author_kind="operator",
            operator_id=operator.id,
        )
        await append_message(session, stored, draft, now=now, status_after="pending")


async def test_new_ticket_gets_due_times_in_business_hours(runtime: Runtime) -> None:
    ticket = await add_ticket(runtime, now=FRIDAY_3PM)

    stored = await _reload(runtime, ticket)

    # Normal priority: first response within 8 business hours, resolution within 3 days.
    assert stored.first_response_due_at == oslo(2026, 11, 23, 15, 0)
    assert stored.resolution_due_at == oslo(2026, 11, 25, 15, 0)
    assert stored.first_response_at is None and stored.resolved_at is None


async def test_first_reply_and_solving_are_recorded_and_reopening_resumes(
    runtime: Runtime,
) -> None:
    operator = await _operator(runtime)
    ticket = await add_ticket(runtime, now=FRIDAY_3PM)
    monday = oslo(2026, 11, 23, 9, 0).astimezone(UTC)

    await _reply(runtime, ticket, operator, monday)
    await _reply(runtime, ticket, operator, monday + timedelta(hours=2))
    assert (await _reload(runtime, ticket)).first_response_at == monday

    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        await change_status(session, stored, "solved", actor="test", now=monday)
    assert (await _reload(runtime, ticket)).resolved_at == monday

    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        await change_status(session, stored, "open", actor="test", now=monday)
    assert (await _reload(runtime, ticket)).resolved_at is None


async def test_raising_the_priority_brings_the_due_times_forward(runtime: Runtime) -> None:
    operator = await _operator(runtime)
    ticket = await add_ticket(runtime, now=FRIDAY_3PM)

    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        await service.update_ticket(
            session, stored, operator=operator, now=FRIDAY_3PM, priority="urgent"
        )

    stored = await _reload(runtime, ticket)
    assert stored.first_response_due_at == oslo(2026, 11, 20, 16, 0)
    assert stored.resolution_due_at == oslo(2026, 11, 23, 15, 0)


async def test_breach_queue_holds_active_tickets_past_their_due_time(runtime: Runtime) -> None:
    operator = await _operator(runtime)
    late = await add_ticket(runtime, subject="Ingen svar", now=FRIDAY_3PM)
    answered = await add_ticket(runtime, subject="Besvart", now=FRIDAY_3PM)
    fresh = await add_ticket(runtime, subject="Ny", now=oslo(2026, 11, 23, 14, 0))
    await _reply(runtime, answered, operator, oslo(2026, 11, 23, 9, 0))
    tuesday = oslo(2026, 11, 24, 8, 30).astimezone(UTC)

    async with runtime.sessions() as session:
        page = await list_queue(
            session, operator=operator, queue="breaches", filters=QueueFilters(), now=tuesday
        )
        counts = await queue_counts(session, operator, tuesday)

    assert [row.ticket.number for row in page.items] == [late.number]
    assert counts["breaches"] == 1
    views = service_level_views(page.items[0].ticket, tuesday)
    assert [(v.label, v.state) for v in views] == [
        ("First response", "overdue"),
        ("Resolution", "due"),
    ]
    assert fresh.number not in [row.ticket.number for row in page.items]


async def test_the_policy_of_the_runtime_sets_due_times(runtime: Runtime) -> None:
    policy = parse_policy("normal=1h/2h")
    runtime.sessions.kw["info"] = {**runtime.sessions.kw["info"], **session_info(policy)}

    ticket = await add_ticket(runtime, now=FRIDAY_3PM)

    stored = await _reload(runtime, ticket)
    assert stored.first_response_due_at == oslo(2026, 11, 20, 16, 0)
    assert stored.resolution_due_at == oslo(2026, 11, 23, 9, 0)


async def test_acknowledgement_promises_the_first_response_target(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        assert promised_response_hours(session, "normal") == 8
        assert promised_response_hours(session, "urgent") == 1
        assert promised_response_hours(session, "low") == 16
    assert default_policy().targets["high"].first_response == timedelta(hours=4)


async def test_acknowledgement_mail_states_the_configured_first_response_time(
    runtime: Runtime,
) -> None:
    runtime.sessions.kw["info"] = {
        **runtime.sessions.kw["info"],
        **session_info(parse_policy("normal=3h/2d")),
    }
    ticket, message = await add_mail_ticket(runtime, locale="nb")
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        first = await session.get(Message, message.id)
        assert stored is not None and first is not None
        assert await maybe_acknowledge(session, runtime.settings, stored, first, T0)

    await write_acknowledgements(runtime, T0)

    async with runtime.sessions() as session:
        written = await session.scalar(
            select(OutboundEmail).where(OutboundEmail.ticket_id == ticket.id)
        )
    assert written is not None and written.raw is not None
    assert "innen 3 timer i åpningstiden" in text_part(parse(written.raw))
