"""Many messages at once (`helpdesk ingest` with an mbox): concurrent where unrelated, and
exactly the outcome of ingesting them one by one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mail_factory import make_mail
from sqlalchemy import select

from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.config import Settings
from helpdesk.db import transaction
from helpdesk.inbound.bulk import concurrency_for, ingest_many, relation_keys
from helpdesk.inbound.outcome import IngestResult, IngestUnavailable
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import InboundMail, Message, Ticket
from tests.conftest import reset_database


def test_relation_keys_tie_a_reply_to_its_parent_and_a_sender_to_itself() -> None:
    parent = make_mail(sender="Kari <KARI@example.no>", message_id="<p1@mail.example.no>")
    reply = make_mail(
        sender="Ola <ola@example.no>",
        message_id="<r1@mail.example.no>",
        in_reply_to="<P1@mail.example.no>",
    )
    again = make_mail(sender="kari@example.no", message_id="<other@mail.example.no>")
    stranger = make_mail(sender="per@example.no", message_id="<x@mail.example.no>")
    assert relation_keys(parent) & relation_keys(reply) == {b"id:p1@mail.example.no"}
    assert relation_keys(parent) & relation_keys(again) == {b"from:kari@example.no"}
    assert not relation_keys(parent) & relation_keys(stranger)


def test_relation_keys_read_folded_references_and_relate_all_unreadable_senders() -> None:
    folded = (
        b"From: ola@example.no\r\nReferences: <a@x.no>\r\n <b@x.no>\r\n\tc@not-an-id\r\n"
        b"Subject: hei\r\n\r\nReferences: <body@x.no>\r\n"
    )
    assert relation_keys(folded) == {b"from:ola@example.no", b"id:a@x.no", b"id:b@x.no"}
    garbage = b"\x00garbage without headers"
    assert relation_keys(garbage) & relation_keys(b"Subject: no sender\r\n\r\nhi") == {b"from:"}


def _corpus() -> list[bytes]:
    """Conversations as they arrive in a busy mailbox: replies right behind the message
    they answer, bursts from one sender, a duplicate, unrelated mail in between."""
    corpus: list[bytes] = []
    for i in range(12):
        sender = f"elev{i}@example.no"
        first = f"<first{i}@mail.example.no>"
        corpus.append(make_mail(sender=sender, message_id=first, subject=f"Kurs {i}"))
        corpus.append(
            make_mail(
                sender="Lærer <laerer@example.no>",
                message_id=f"<cc{i}@mail.example.no>",
                in_reply_to=first,
                references=first,
                subject=f"Re: Kurs {i}",
            )
        )
        corpus.append(
            make_mail(sender=sender, message_id=f"<more{i}@mail.example.no>", subject="Mer")
        )
        if i % 4 == 0:
            corpus.append(corpus[-3])  # the same message delivered twice
    corpus.append(b"\x00garbage " * 20)
    return corpus


async def _threads(runtime: Runtime) -> tuple[list[tuple[str, ...]], list[str]]:
    """The Message-IDs of each ticket's inbound messages, and every recorded outcome."""
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(
            select(Message.rfc_message_id, Message.ticket_id).where(Message.direction == "inbound")
        )
        by_ticket: dict[int, list[str]] = {}
        for message_id, ticket_id in rows:
            by_ticket.setdefault(ticket_id, []).append(message_id or "")
        statuses = (await session.scalars(select(InboundMail.status))).all()
    return sorted(tuple(sorted(ids)) for ids in by_ticket.values()), sorted(statuses)


@pytest.mark.postgres
async def test_concurrent_ingest_files_every_message_as_one_by_one_would(
    postgres_database_url: str, tmp_path: Path
) -> None:
    corpus = _corpus()
    outcomes: dict[str, list[IngestResult]] = {}
    threads: dict[str, tuple[list[tuple[str, ...]], list[str]]] = {}
    for label in ("one by one", "concurrently"):
        runtime = build_runtime(
            Settings(
                database_url=postgres_database_url,
                data_dir=tmp_path / label,
                secret_key="k" * 40,
                support_address="support@kurs.example",
            )
        )
        await reset_database(runtime)
        assert concurrency_for(runtime) > 1
        width = 1 if label == "one by one" else concurrency_for(runtime)
        messages = ((raw, "test") for raw in corpus)
        outcomes[label] = [r async for r in ingest_many(runtime, messages, concurrency=width)]
        threads[label] = await _threads(runtime)
        await runtime.close()

    def shape(results: list[IngestResult]) -> list[tuple[str, str]]:
        return [(r.status, r.reason.split(";")[0]) for r in results]

    assert shape(outcomes["concurrently"]) == shape(outcomes["one by one"])
    assert [r.status for r in outcomes["one by one"]].count("duplicate") == 3
    assert threads["concurrently"] == threads["one by one"]


async def test_outcomes_come_in_input_order_and_a_failure_stops_at_its_message(
    runtime: Runtime,
) -> None:
    corpus = [make_mail(sender=f"elev{i}@example.no", subject=f"Sak {i}") for i in range(8)]
    # Large enough to be kept in a file (small mail keeps its bytes in its row).
    scan = ("kursbevis.pdf", "application/pdf", bytes(range(256)) * 1200, None)
    corpus[3] = failing = make_mail(sender="elev3@example.no", subject="Sak 3", attachments=[scan])

    class FullDiskFor:
        """Storage whose write of one message fails, as on a disk that just filled up."""

        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner = inner

        def put(self, area: str, content: bytes):  # type: ignore[no-untyped-def]
            if content == failing:
                raise OSError(28, "No space left on device")
            return self.inner.put(area, content)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.inner, name)

    healthy, runtime.storage = runtime.storage, FullDiskFor(runtime.storage)
    seen: list[IngestResult] = []
    with pytest.raises(IngestUnavailable, match="storage unavailable"):
        async for result in ingest_many(runtime, ((raw, "test") for raw in corpus), concurrency=4):
            seen.append(result)
    assert [r.status for r in seen] == ["created"] * 3
    async with transaction(runtime.sessions) as session:
        subjects = [
            await session.scalar(select(Ticket.subject).where(Ticket.number == r.ticket))
            for r in seen
        ]
    assert subjects == ["Sak 0", "Sak 1", "Sak 2"]  # each outcome is its own message's
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    # The next run takes in the rest; what was already in is reported as a duplicate.
    runtime.storage = healthy
    again = [r async for r in ingest_many(runtime, ((raw, "t") for raw in corpus), concurrency=4)]
    statuses = [r.status for r in again]
    assert statuses[:3] == ["duplicate"] * 3 and statuses[3] == "created"
    assert set(statuses[4:]) <= {"created", "duplicate"}
    async with transaction(runtime.sessions) as session:
        tickets = (await session.scalars(select(Ticket.subject))).all()
    assert sorted(tickets) == sorted(f"Sak {i}" for i in range(8))


async def test_one_by_one_and_bulk_agree_with_ingest_raw(runtime: Runtime) -> None:
    first = make_mail(subject="Først")
    single = await ingest_raw(runtime, first, "test")
    [bulk] = [r async for r in ingest_many(runtime, [(first, "test")], concurrency=4)]
    assert (single.status, bulk.status) == ("created", "duplicate")
    assert bulk.ticket == single.ticket
