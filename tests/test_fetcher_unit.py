"""MailFetcher's cursor, retry and reconnect rules, on the in-memory IMAP twin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import sqlalchemy.exc
from sqlalchemy import select

from helpdesk import cli
from helpdesk.adapters.imap import (
    InMemoryImapServer,
    MessageUnavailable,
    encode_mailbox_name,
    parse_fetched_body,
)
from helpdesk.adapters.imap import client as imap_client
from helpdesk.bootstrap import Runtime
from helpdesk.config import ImapSettings
from helpdesk.inbound.fetcher import SUSPECT_PAUSE, Backoff, MailFetcher, StorageUnavailable
from helpdesk.models.inbound import MailboxCursor
from tests.peers.ingest import Sha256Ingest, support_mail

SETTINGS = ImapSettings(
    host="imap.kurs.example", port=993, security="tls", username="support", password="x"
)


@pytest.fixture
def server() -> InMemoryImapServer:
    return InMemoryImapServer()


@pytest.fixture
def ingest(tmp_path: Path) -> Sha256Ingest:
    return Sha256Ingest(tmp_path / "ingested.sqlite")


def fetcher_for(
    runtime: Runtime,
    server: InMemoryImapServer,
    ingest: Sha256Ingest,
    settings: ImapSettings = SETTINGS,
    **options: object,
) -> MailFetcher:
    return MailFetcher(settings, runtime.sessions, ingest, server.mailbox, **options)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], seconds: float = 2) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the condition is no event we could await
            await asyncio.sleep(0.01)


async def stored_cursor(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        cursor = (await session.execute(select(MailboxCursor))).scalar_one()
        return cursor.uidvalidity, cursor.last_uid


async def test_new_mail_is_ingested_once_marked_seen_and_the_cursor_stored(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(3):
        server.deliver(support_mail(number))

    assert await fetcher_for(runtime, server, ingest).run_once() == 3

    assert ingest.statuses == ["created"] * 3
    assert server.seen() == [1, 2, 3]
    assert await stored_cursor(runtime) == (1, 3)


async def test_a_later_run_fetches_only_mail_that_arrived_since(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    server.deliver(support_mail(1))
    await fetcher_for(runtime, server, ingest).run_once()
    server.deliver(support_mail(2))

    assert await fetcher_for(runtime, server, ingest).run_once() == 1

    assert ingest.statuses == ["created", "created"]
    assert await stored_cursor(runtime) == (1, 2)


async def test_processed_folder_receives_the_mail_instead_of_a_seen_flag(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    settings = msgspec.structs.replace(SETTINGS, processed_folder="Behandlet")
    server.deliver(support_mail(1))

    await fetcher_for(runtime, server, ingest, settings).run_once()

    assert server.messages == {}
    assert server.processed == [support_mail(1)]


async def test_batches_continue_until_the_mailbox_is_drained(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(7):
        server.deliver(support_mail(number))

    assert await fetcher_for(runtime, server, ingest, batch_size=2).run_once() == 7
    assert await stored_cursor(runtime) == (1, 7)


async def test_a_failing_fetch_skips_one_message_and_keeps_the_cursor_before_it(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(4):
        server.deliver(support_mail(number))
    server.failing_fetch.add(2)
    fetcher = fetcher_for(runtime, server, ingest)

    assert await fetcher.run_once() == 3
    assert server.seen() == [1, 3, 4]
    assert await stored_cursor(runtime) == (1, 1)

    server.failing_fetch.clear()
    assert await fetcher.run_once() == 1
    assert server.seen() == [1, 2, 3, 4]
    assert await stored_cursor(runtime) == (1, 4)
    assert ingest.statuses == ["created"] * 4  # 3 and 4 were not fetched again


async def test_after_a_restart_mail_behind_a_failure_comes_again_as_duplicates(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(3):
        server.deliver(support_mail(number))
    server.failing_fetch.add(1)
    await fetcher_for(runtime, server, ingest).run_once()
    server.failing_fetch.clear()

    assert await fetcher_for(runtime, server, ingest).run_once() == 3

    assert ingest.statuses == ["created", "created", "created", "duplicate", "duplicate"]
    assert len(ingest.stored()) == 3
    assert await stored_cursor(runtime) == (1, 3)


async def test_a_message_the_pipeline_rejects_does_not_block_the_next_ones(
    runtime: Runtime, server: InMemoryImapServer, tmp_path: Path
) -> None:
    ingest = Sha256Ingest(tmp_path / "ingested.sqlite", poison=b"POISON")
    server.deliver(support_mail(1))
    server.deliver(support_mail(2, body="POISON"))
    server.deliver(support_mail(3))

    assert await fetcher_for(runtime, server, ingest).run_once() == 2

    assert server.seen() == [1, 3]
    assert await stored_cursor(runtime) == (1, 1)


async def test_a_failed_marking_is_retried_and_the_second_delivery_is_a_duplicate(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    server.deliver(support_mail(1))
    server.failing_mark.add(1)
    fetcher = fetcher_for(runtime, server, ingest)
    assert await fetcher.run_once() == 0
    assert await stored_cursor(runtime) == (1, 0)

    server.failing_mark.clear()
    assert await fetcher.run_once() == 1

    assert ingest.statuses == ["created", "duplicate"]
    assert server.seen() == [1]


async def test_a_message_that_drops_the_connection_is_set_aside_then_retried_later(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(1, 4):
        server.deliver(support_mail(number))
    server.dropping_fetch.add(2)
    now = [0.0]
    fetcher = fetcher_for(runtime, server, ingest, monotonic=lambda: now[0])

    assert await fetcher.run_once() == 2
    assert server.connections == 3  # dropped twice at UID 2, then it was left aside
    assert server.seen() == [1, 3]
    assert await stored_cursor(runtime) == (1, 1)

    server.dropping_fetch.clear()
    assert await fetcher.run_once() == 0  # still set aside
    now[0] += SUSPECT_PAUSE
    assert await fetcher.run_once() == 1
    assert await stored_cursor(runtime) == (1, 3)


async def test_an_unavailable_database_stops_the_round_before_marking(
    runtime: Runtime, server: InMemoryImapServer, tmp_path: Path
) -> None:
    async def database_down_at_second(raw: bytes, source: str) -> None:
        if b"Kursbevis 2" in raw:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, OSError("connection refused"))

    ingest = Sha256Ingest(tmp_path / "ingested.sqlite", before_commit=database_down_at_second)
    for number in range(1, 4):
        server.deliver(support_mail(number))

    with pytest.raises(StorageUnavailable):
        await fetcher_for(runtime, server, ingest).run_once()

    assert server.seen() == [1]
    assert await stored_cursor(runtime) == (1, 1)


async def test_a_message_expunged_by_someone_else_is_passed_over(
    runtime: Runtime, server: InMemoryImapServer, tmp_path: Path
) -> None:
    async def expunge_the_next(raw: bytes, source: str) -> None:
        server.messages.pop(2, None)

    ingest = Sha256Ingest(tmp_path / "ingested.sqlite", before_commit=expunge_the_next)
    for number in range(1, 4):
        server.deliver(support_mail(number))

    assert await fetcher_for(runtime, server, ingest).run_once() == 2
    assert await stored_cursor(runtime) == (1, 3)


async def test_a_new_uidvalidity_rereads_the_mailbox_and_ingest_drops_the_repeats(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    for number in range(3):
        server.deliver(support_mail(number))
    await fetcher_for(runtime, server, ingest).run_once()

    server.recreate()
    server.deliver(support_mail(99))
    assert await fetcher_for(runtime, server, ingest).run_once() == 4

    assert ingest.statuses.count("duplicate") == 3
    assert len(ingest.stored()) == 4
    assert await stored_cursor(runtime) == (2, 4)


async def test_the_source_names_the_message_as_an_imap_url(
    runtime: Runtime, server: InMemoryImapServer, tmp_path: Path
) -> None:
    ingest = Sha256Ingest(tmp_path / "ingested.sqlite")
    settings = msgspec.structs.replace(SETTINGS, username="support@kurs.example")
    server.deliver(support_mail(1))
    await fetcher_for(runtime, server, ingest, settings).run_once()
    sources = []

    async def remember(raw: bytes, source: str) -> None:
        sources.append(source)

    ingest.before_commit = remember
    server.recreate()
    await fetcher_for(runtime, server, ingest, settings).run_once()
    assert sources == ["imap://support%40kurs.example@imap.kurs.example/INBOX;UIDVALIDITY=2/;UID=1"]


async def test_run_forever_picks_up_mail_that_arrives_while_it_waits(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(fetcher_for(runtime, server, ingest).run_forever(stop))
    await asyncio.sleep(0.05)
    server.deliver(support_mail(1))
    await until(lambda: server.seen() == [1])
    stop.set()
    await asyncio.wait_for(task, 1)

    assert server.seen() == [1]


async def test_run_forever_backs_off_while_the_server_is_down_then_recovers(
    runtime: Runtime, server: InMemoryImapServer, ingest: Sha256Ingest
) -> None:
    server.down = True
    server.deliver(support_mail(1))
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        server.down = len(delays) < 4
        await asyncio.sleep(0)

    stop = asyncio.Event()
    fetcher = fetcher_for(runtime, server, ingest, sleep=sleep, backoff=Backoff(rand=lambda: 1.0))
    task = asyncio.create_task(fetcher.run_forever(stop))
    await until(lambda: server.waits == 1)  # drained, now waiting for news
    server.disconnect()  # a dropped connection is the same story: back off, reconnect
    await until(lambda: server.waits == 2)
    stop.set()
    await asyncio.wait_for(task, 1)

    assert server.seen() == [1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 1.0]
    assert server.connections == 2


def test_backoff_doubles_to_a_cap_with_jitter_and_resets() -> None:
    top = Backoff(rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    bottom = Backoff(rand=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(3)] == [0.5, 1, 2]
    bottom.reset()
    assert bottom.next_delay() == 0.5


def test_fetched_body_is_found_whatever_the_order_of_items() -> None:
    body = bytearray(b"Subject: hei\r\n\r\n(uten parentes\r\n")
    assert parse_fetched_body([b"1 FETCH (UID 7 BODY[] {33}", body, b")", b"done"], 7) == body
    after: list[bytes | bytearray] = [b"2 FETCH (BODY[] {33}", body, b" UID 8)", b"done"]
    assert parse_fetched_body(after, 8) == body
    unsolicited: list[bytes | bytearray] = [
        b"1 FETCH (FLAGS (\\Seen) UID 7)",
        b"2 FETCH (UID 8 BODY[] {33}",
        body,
        b")",
    ]
    assert parse_fetched_body(unsolicited, 8) == body
    assert parse_fetched_body([b"Fetch completed"], 8) is None
    with pytest.raises(MessageUnavailable):
        parse_fetched_body([b"1 FETCH (UID 7 FLAGS ())", b"done"], 7)


def test_mailbox_names_are_quoted_in_modified_utf7() -> None:
    assert encode_mailbox_name("INBOX") == '"INBOX"'
    assert encode_mailbox_name("Søppel & spam") == '"S&APg-ppel &- spam"'
    assert encode_mailbox_name('Behandlet/2026 "ferdig"') == '"Behandlet/2026 \\"ferdig\\""'


def test_fetch_mail_without_an_imap_url_stops_with_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HELPDESK_IMAP_URL", raising=False)
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HELPDESK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")

    assert cli.main(["fetch-mail", "--once"]) == 78
    assert capsys.readouterr().err == "HELPDESK_IMAP_URL: not set\n"


async def test_an_exists_announced_outside_idle_is_not_lost() -> None:
    # Guards the one aioimaplib internal we override (`_untagged_response`).
    protocol = imap_client._NewsNotingProtocol(asyncio.get_running_loop())
    protocol.state = "SELECTED"
    protocol.data_received(b"* 4 EXISTS\r\n")
    assert protocol.news
