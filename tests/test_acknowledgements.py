"""Automatic mail follows RFC 3834: acknowledgements and notices never feed a mail loop.

An acknowledgement goes out once per ticket and at most once per address in four hours,
never to machine mail, robots, lists, suppressed or forged senders, and carries
Auto-Submitted; an operator's reply carries none of those headers.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from mail_factory import make_mail
from sqlalchemy import select

from helpdesk.adapters.smtp import InMemoryTransport
from helpdesk.bootstrap import build_runtime
from helpdesk.db import transaction
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import Message, OutboundEmail, Ticket
from helpdesk.outbound.acknowledgements import write_acknowledgements
from helpdesk.outbound.automatic import maybe_acknowledge, queue_notice
from helpdesk.outbound.delivery import deliver_due
from helpdesk.outbound.suppression import suppress_address
from tests.factories import T0
from tests.outbound_factory import (
    add_mail_ticket,
    add_operator_row,
    html_part,
    outbound_rows,
    parse,
    reply,
    text_part,
)

RFC_3834_HEADERS = ("Auto-Submitted", "X-Auto-Response-Suppress")


async def acknowledge(
    runtime, ticket: Ticket, message: Message, now=T0, *, enabled=True, **writing
) -> OutboundEmail | None:
    """Queue the acknowledgement as ingest does, then let the outbox worker write it.

    The row as written, or None when no acknowledgement was queued or the worker refused it.
    """
    async with transaction(runtime.sessions) as session:
        found_ticket = await session.get(Ticket, ticket.id)
        found_message = await session.get(Message, message.id)
        assert found_ticket is not None and found_message is not None
        queued = await maybe_acknowledge(
            session, runtime.settings, found_ticket, found_message, now, enabled=enabled
        )
    if not queued:
        return None
    async with transaction(runtime.sessions) as session:
        row = await acknowledgement_of(session, ticket)
        assert row is not None and row.raw is None, "ingest only queues; the worker writes"
    await write_acknowledgements(runtime, now, **writing)
    async with transaction(runtime.sessions) as session:
        return await session.get(OutboundEmail, row.id)


async def acknowledgement_of(session, ticket: Ticket) -> OutboundEmail | None:
    """The ticket's acknowledgement queued last."""
    query = (
        select(OutboundEmail)
        .where(OutboundEmail.ticket_id == ticket.id, OutboundEmail.kind == "acknowledgement")
        .order_by(OutboundEmail.id.desc())
    )
    return (await session.scalars(query)).first()


async def new_ticket_acknowledged(runtime, now=T0, **fields):
    ticket, message = await add_mail_ticket(runtime, now=now, **fields)
    return ticket, await acknowledge(runtime, ticket, message, now)


async def test_acknowledgement_tells_the_ticket_number_and_response_time(runtime) -> None:
    ticket, message = await add_mail_ticket(runtime, locale="nb", name="Åse Ødegård")

    row = await acknowledge(runtime, ticket, message, response_hours=8)

    assert row is not None
    assert (row.kind, row.status, row.recipients) == (
        "acknowledgement",
        "queued",
        ["kari@example.no"],
    )
    mail = parse(row.raw)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["Subject"] == f"Auto: Spørsmål om kursbevis [#{ticket.number}]"
    assert mail["To"] == "Åse Ødegård <kari@example.no>"
    assert "Cc" not in mail
    assert mail["In-Reply-To"] == "<first.1@mail.example.no>"
    text = text_part(mail)
    assert "Hei Åse Ødegård" in text
    assert f"saksnummer #{ticket.number}" in text
    assert "innen 8 timer" in text
    assert f"<strong>#{ticket.number}</strong>" in html_part(mail)
    assert "innen 8 timer" in html_part(mail)


async def test_acknowledgement_is_in_english_when_the_locale_is_unknown(runtime) -> None:
    ticket, row = await new_ticket_acknowledged(runtime)

    assert row is not None
    assert f"ticket number #{ticket.number}" in text_part(parse(row.raw))
    assert "within 8 hours" in text_part(parse(row.raw))


async def test_acknowledgement_shows_on_the_ticket_without_moving_it(runtime) -> None:
    ticket, row = await new_ticket_acknowledged(runtime, now=T0)

    async with transaction(runtime.sessions) as session:
        stored = await session.get(Ticket, ticket.id)
        message = await session.get(Message, row.message_id)
    assert stored is not None and message is not None
    assert (stored.status, stored.last_message_at) == ("new", T0)
    assert (message.direction, message.author_kind) == ("outbound", "system")
    assert message.rfc_message_id == row.rfc_message_id


async def test_at_most_one_acknowledgement_per_ticket(runtime) -> None:
    ticket, message = await add_mail_ticket(runtime)

    first = await acknowledge(runtime, ticket, message)
    second = await acknowledge(runtime, ticket, message, now=T0 + timedelta(days=1))

    assert first is not None
    assert second is None
    assert len(await outbound_rows(runtime)) == 1


async def test_at_most_one_automatic_mail_per_address_in_four_hours(runtime) -> None:
    _, first = await new_ticket_acknowledged(runtime, now=T0, message_id="a@x.no")
    _, soon = await new_ticket_acknowledged(
        runtime,
        now=T0 + timedelta(hours=3, minutes=59),
        message_id="b@x.no",
        requester="KARI@example.no",
    )
    _, other = await new_ticket_acknowledged(
        runtime, now=T0 + timedelta(hours=1), message_id="c@x.no", requester="per@firma.no"
    )
    _, later = await new_ticket_acknowledged(
        runtime, now=T0 + timedelta(hours=4, minutes=1), message_id="d@x.no"
    )

    assert first is not None
    assert soon is None
    assert other is not None
    assert later is not None


@pytest.mark.parametrize("machine", ["auto-reply", "bounce", "list", "loop", "rate-limit"])
async def test_machine_mail_is_never_acknowledged(runtime, machine: str) -> None:
    _, row = await new_ticket_acknowledged(runtime, machine=machine)

    assert row is None
    assert await outbound_rows(runtime) == []


@pytest.mark.parametrize(
    "address",
    [
        "noreply@kurs-plattform.no",
        "no-reply@vipps.no",
        "No_Reply+faktura@firma.no",
        "donotreply@bank.no",
        "do-not-reply@bank.no",
        "MAILER-DAEMON@mx.example.no",
        "postmaster@firma.no",
        "hms-kurs-request@lists.example.no",
        "owner-hms@lists.example.no",
        "bounces@firma.no",
        "support@kurs.example",
        "support+1001.abcdefabcdef@kurs.example",
        "x@y.invalid",
    ],
)
async def test_robots_lists_and_our_own_addresses_are_never_acknowledged(
    runtime, address: str
) -> None:
    _, row = await new_ticket_acknowledged(runtime, requester=address)

    assert row is None


async def test_a_suppressed_address_gets_no_automatic_mail(runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await suppress_address(session, "kari@example.no", "550 user unknown", now=T0)

    _, row = await new_ticket_acknowledged(runtime)

    assert row is None


async def test_a_sender_that_failed_dmarc_is_not_acknowledged(runtime) -> None:
    _, row = await new_ticket_acknowledged(runtime, verified=False)

    assert row is None


async def test_acknowledgements_can_be_switched_off(runtime) -> None:
    ticket, message = await add_mail_ticket(runtime)

    assert await acknowledge(runtime, ticket, message, enabled=False) is None


async def test_human_replies_carry_no_automatic_headers(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, ack = await new_ticket_acknowledged(runtime)

    queued = await reply(runtime, ticket.number, operator, now=T0 + timedelta(minutes=5))

    assert ack is not None
    human = parse(queued.outbound.raw)
    for header in RFC_3834_HEADERS:
        assert header in parse(ack.raw)
        assert header not in human
    assert human["Subject"] == f"Re: Spørsmål om kursbevis [#{ticket.number}]"
    assert "takk for henvendelsen" not in text_part(human).lower()


async def test_too_large_notice_goes_to_the_sender_of_a_quarantined_message(runtime) -> None:
    ticket, message = await add_mail_ticket(runtime, verified=False, locale="nb")

    async with transaction(runtime.sessions) as session:
        found_ticket = await session.get(Ticket, ticket.id)
        found_message = await session.get(Message, message.id)
        row = await queue_notice(
            session,
            runtime.settings,
            found_ticket,
            found_message,
            T0,
            size_bytes=31 * 1024 * 1024 + 500_000,
            limit_bytes=25 * 1024 * 1024,
        )

    assert row is not None
    assert row.kind == "notice"
    mail = parse(row.raw)
    assert mail["Auto-Submitted"] == "auto-replied"
    text = text_part(mail)
    assert "31.5 MB" in text and "25 MB" in text
    assert f"#{ticket.number}" in text
    assert "«Spørsmål om kursbevis»" in text


async def test_notice_and_acknowledgement_share_the_four_hour_limit(runtime) -> None:
    ticket, message = await add_mail_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        await queue_notice(
            session,
            runtime.settings,
            await session.get(Ticket, ticket.id),
            await session.get(Message, message.id),
            T0,
            size_bytes=30 * 2**20,
            limit_bytes=25 * 2**20,
        )

    _, row = await new_ticket_acknowledged(
        runtime, now=T0 + timedelta(minutes=10), message_id="again@x.no"
    )

    assert row is None
    async with transaction(runtime.sessions) as session:
        kinds = list(await session.scalars(select(OutboundEmail.kind)))
    assert kinds == ["notice"]


async def test_ingest_only_queues_the_acknowledgement_and_delivery_writes_and_sends_it(
    runtime,
) -> None:
    result = await ingest_raw(runtime, make_mail(message_id="<ny.1@mail.example.no>"), "t")
    [queued] = await outbound_rows(runtime)
    assert (queued.kind, queued.status, queued.raw) == ("acknowledgement", "queued", None)
    assert queued.recipients == ["kari.nordmann@example.no"]

    transport = InMemoryTransport()
    report = await deliver_due(runtime, transport)

    assert report.sent == 1
    [sent] = transport.sent
    mail = parse(sent.raw)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["Message-ID"] == f"<{queued.rfc_message_id}>"  # fixed when it was queued
    assert mail["In-Reply-To"] == "<ny.1@mail.example.no>"
    assert f"[#{result.ticket}]" in mail["Subject"]
    [row] = await outbound_rows(runtime)
    assert (row.status, row.raw) == ("sent", sent.raw)
    async with transaction(runtime.sessions) as session:
        shown = await session.get(Message, row.message_id)
    assert shown is not None and (shown.direction, shown.author_kind) == ("outbound", "system")


async def test_two_workers_deciding_at_once_send_one_acknowledgement_per_address(
    runtime,
) -> None:
    for number in range(4):  # four new tickets from one learner within minutes
        mail = make_mail(subject=f"Spørsmål {number}", message_id=f"<q{number}@example.no>")
        assert (await ingest_raw(runtime, mail, "t")).status == "created"
    workers = [runtime, *(build_runtime(runtime.settings) for _ in range(3))]
    for worker in workers:  # connected before the race starts
        async with worker.engine.connect():
            pass
    try:
        written = await asyncio.gather(*(write_acknowledgements(w, batch=1) for w in workers))
    finally:
        for worker in workers[1:]:
            await worker.close()

    assert sum(written) == 1
    [row] = await outbound_rows(runtime)
    assert row.raw is not None and row.kind == "acknowledgement"


async def test_an_acknowledgement_is_refused_when_the_address_was_suppressed_after_ingest(
    runtime,
) -> None:
    await ingest_raw(runtime, make_mail(), "t")
    async with transaction(runtime.sessions) as session:
        await suppress_address(session, "kari.nordmann@example.no", "550 gone", now=T0)

    assert await write_acknowledgements(runtime) == 0
    assert await outbound_rows(runtime) == []
