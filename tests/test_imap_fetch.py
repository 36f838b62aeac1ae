"""`helpdesk fetch-mail` against a real Dovecot on loopback (issue 3, item 9).

Most tests stand `Sha256Ingest` in for the pipeline: it commits each distinct message
once and reports repeats as duplicates, which is all the fetcher relies on, and lets a
test look inside the moment of ingest. The `real_pipeline` tests and the command-line
tests run the real `ingest_raw` and look for tickets.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import msgspec
import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from helpdesk.adapters.imap import AioImapMailbox, Mailbox, MailboxUnavailable
from helpdesk.bootstrap import Runtime
from helpdesk.config import ImapSettings
from helpdesk.db import create_engine
from helpdesk.inbound.fetcher import SUSPECT_PAUSE, MailFetcher
from helpdesk.inbound.outcome import IngestResult
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import InboundMail, Ticket
from helpdesk.models.inbound import MailboxCursor
from tests.peers.ingest import Sha256Ingest, support_mail

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.dovecot import DovecotAccount, DovecotServer

pytest_plugins = ["tests.peers.dovecot"]

# With the stand-in ingest the database only holds the fetcher's cursor, whose SQL runs on
# both databases in test_fetcher_unit.py; so those scenarios run on SQLite, and the tests
# with the real pipeline run on PostgreSQL as well.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def ingest(tmp_path: Path) -> Sha256Ingest:
    return Sha256Ingest(tmp_path / "ingested.sqlite")


def fetcher(
    runtime: Runtime,
    settings: ImapSettings,
    ingest: Sha256Ingest,
    factory: Callable[[ImapSettings], Mailbox] = AioImapMailbox,
    **options: object,
) -> MailFetcher:
    return MailFetcher(settings, runtime.sessions, ingest, factory, **options)  # type: ignore[arg-type]


async def stored_cursor(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        cursor = (await session.execute(select(MailboxCursor))).scalar_one()
        return cursor.uidvalidity, cursor.last_uid


async def until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling outside state, not an event
            await asyncio.sleep(0.02)


def uid_of(source: str) -> int:
    match = re.search(r";UID=(\d+)$", source)
    assert match, source
    return int(match.group(1))


class ObservedMailbox:
    """The real mailbox, letting the test see when the fetcher is waiting for news."""

    def __init__(self, inner: AioImapMailbox, waiting: asyncio.Event) -> None:
        self._inner = inner
        self.waiting = waiting
        self.connect = inner.connect
        self.uids_after = inner.uids_after
        self.fetch = inner.fetch
        self.mark_processed = inner.mark_processed
        self.close = inner.close

    @property
    def can_idle(self) -> bool:
        return self._inner.can_idle

    async def wait_for_news(self, max_wait: float) -> None:
        self.waiting.set()
        try:
            await self._inner.wait_for_news(max_wait)
        finally:
            self.waiting.clear()


@sqlite_only
@pytest.mark.parametrize("processed_folder", [None, "Behandlet"])
async def test_mail_is_ingested_once_and_marked_only_after_the_commit(
    runtime: Runtime, dovecot: DovecotAccount, tmp_path: Path, processed_folder: str | None
) -> None:
    untouched_while_ingesting: list[int] = []

    async def check_not_yet_marked(raw: bytes, source: str) -> None:
        uid = uid_of(source)
        flags = dovecot.flags()  # a second, independent IMAP connection
        if uid in flags and "\\Seen" not in flags[uid]:
            untouched_while_ingesting.append(uid)

    ingest = Sha256Ingest(tmp_path / "ingested.sqlite", before_commit=check_not_yet_marked)
    for number in range(3):
        dovecot.append(support_mail(number))
    settings = dovecot.imap_settings(processed_folder=processed_folder)

    assert await fetcher(runtime, settings, ingest).run_once() == 3
    assert await fetcher(runtime, settings, ingest).run_once() == 0

    assert untouched_while_ingesting == [1, 2, 3]
    assert ingest.statuses == ["created"] * 3
    assert ingest.stored() == [support_mail(number) for number in range(3)]
    if processed_folder is None:
        assert dovecot.seen() == [1, 2, 3]
    else:
        assert dovecot.flags() == {}
        assert len(dovecot.flags(processed_folder)) == 3
    assert (await stored_cursor(runtime))[1] == 3


@sqlite_only
async def test_a_recreated_mailbox_with_a_new_uidvalidity_yields_no_duplicates(
    runtime: Runtime, dovecot: DovecotAccount, ingest: Sha256Ingest
) -> None:
    dovecot.recreate_mailbox("Support")
    for number in range(3):
        dovecot.append(support_mail(number), "Support")
    mail = fetcher(runtime, dovecot.imap_settings(mailbox="Support"), ingest)
    assert await mail.run_once() == 3
    first_uidvalidity, _ = await stored_cursor(runtime)

    dovecot.recreate_mailbox("Support")
    for number in range(4):  # the same three again, and one new
        dovecot.append(support_mail(number), "Support")
    assert await mail.run_once() == 4

    assert ingest.statuses == ["created"] * 3 + ["duplicate"] * 3 + ["created"]
    assert len(ingest.stored()) == 4
    uidvalidity, last_uid = await stored_cursor(runtime)
    assert uidvalidity != first_uidvalidity and last_uid == 4
    assert dovecot.seen("Support") == [1, 2, 3, 4]


@sqlite_only
async def test_a_fetcher_killed_between_commit_and_marking_loses_and_duplicates_nothing(
    runtime: Runtime, dovecot: DovecotAccount, tmp_path: Path
) -> None:
    for number in range(3):
        dovecot.append(support_mail(number))
    settings = dovecot.imap_settings()
    ingest_file = tmp_path / "ingested.sqlite"

    killed = await asyncio.to_thread(
        subprocess.run,
        killed_fetcher("sha256", settings, runtime.settings.database_url, str(ingest_file)),
        cwd=REPOSITORY,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    ingest = Sha256Ingest(ingest_file)
    assert ingest.stored() == [support_mail(0)]  # committed ...
    assert dovecot.seen() == []  # ... but never marked

    assert await fetcher(runtime, settings, ingest).run_once() == 3

    assert ingest.statuses == ["duplicate", "created", "created"]
    assert ingest.stored() == [support_mail(number) for number in range(3)]
    assert dovecot.seen() == [1, 2, 3]


def killed_fetcher(mode: str, settings: ImapSettings, *args: str) -> list[str]:
    encoded = msgspec.json.encode(settings).decode()
    return [sys.executable, "-m", "tests.peers.killed_fetcher", mode, encoded, *args]


async def count(runtime: Runtime, table: type[SQLModel]) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_with_the_real_pipeline_a_killed_fetcher_leaves_one_ticket_per_message(
    runtime: Runtime, dovecot: DovecotAccount
) -> None:
    for number in range(3):
        dovecot.append(support_mail(number))
    settings = dovecot.imap_settings()
    runtime_settings = {
        "database_url": runtime.settings.database_url,
        "data_dir": str(runtime.settings.data_dir),
        "secret_key": runtime.settings.secret_key,
        "support_address": runtime.settings.support_address,
    }

    killed = await asyncio.to_thread(
        subprocess.run,
        killed_fetcher("pipeline", settings, json.dumps(runtime_settings)),
        cwd=REPOSITORY,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert await count(runtime, Ticket) == 1
    assert dovecot.seen() == []

    outcomes: list[IngestResult] = []

    async def ingest(raw: bytes, source: str) -> IngestResult:
        outcomes.append(await ingest_raw(runtime, raw, source))
        return outcomes[-1]

    assert await MailFetcher(settings, runtime.sessions, ingest, AioImapMailbox).run_once() == 3

    assert [outcome.status for outcome in outcomes] == ["duplicate", "created", "created"]
    assert await count(runtime, Ticket) == 3
    assert await count(runtime, InboundMail) == 3
    assert dovecot.seen() == [1, 2, 3]


async def test_with_the_real_pipeline_new_mail_is_a_ticket_within_five_seconds(
    runtime: Runtime, dovecot: DovecotAccount
) -> None:
    committed = asyncio.Event()

    async def ingest(raw: bytes, source: str) -> IngestResult:
        result = await ingest_raw(runtime, raw, source)
        committed.set()
        return result

    waiting = asyncio.Event()

    def observed(settings: ImapSettings) -> ObservedMailbox:
        return ObservedMailbox(AioImapMailbox(settings), waiting)

    settings = dovecot.imap_settings()
    mail = MailFetcher(
        settings, runtime.sessions, ingest, observed, idle_timeout=60, poll_interval=60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(mail.run_forever(stop))
    try:
        await asyncio.wait_for(waiting.wait(), 10)
        await asyncio.sleep(0.2)  # IDLE is under way
        started = time.monotonic()
        await asyncio.to_thread(dovecot.append, support_mail(1))
        await asyncio.wait_for(committed.wait(), 5)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    assert elapsed < 5
    async with runtime.sessions() as session:
        ticket = (await session.execute(select(Ticket))).scalar_one()
        inbound = (await session.execute(select(InboundMail))).scalar_one()
    assert ticket.subject == "Kursbevis 1"
    assert inbound.source.endswith(";UID=1")
    assert dovecot.seen() == [1]


@sqlite_only
async def test_unreadable_and_rejected_messages_do_not_hold_up_the_others(
    runtime: Runtime, dovecot: DovecotAccount, tmp_path: Path
) -> None:
    for number in range(1, 6):
        dovecot.append(support_mail(number, body="POISON" if number == 4 else "Hei"))
    # Dovecot cannot read UID 2's file: it drops the connection whenever UID 2 is fetched.
    dovecot.message_file(2).chmod(0)
    ingest = Sha256Ingest(tmp_path / "ingested.sqlite", poison=b"POISON")
    now = [0.0]
    mail = fetcher(runtime, dovecot.imap_settings(), ingest, monotonic=lambda: now[0])

    assert await mail.run_once() == 3

    assert dovecot.seen() == [1, 3, 5]
    assert (await stored_cursor(runtime))[1] == 1  # nothing after UID 1 is given up

    dovecot.message_file(2).chmod(0o600)
    ingest.poison = None
    now[0] += SUSPECT_PAUSE
    assert await mail.run_once() == 2

    assert dovecot.seen() == [1, 2, 3, 4, 5]
    assert (await stored_cursor(runtime))[1] == 5
    assert ingest.statuses == ["created"] * 5


@sqlite_only
async def test_the_fetcher_backs_off_until_the_server_is_up_and_reconnects_after_a_drop(
    runtime: Runtime,
    dovecot_factory: Callable[..., DovecotServer],
    ingest: Sha256Ingest,
) -> None:
    server = dovecot_factory()
    account = server.add_user()
    delays: list[float] = []

    async def quick_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(delay / 20)

    waiting = asyncio.Event()

    def observed(settings: ImapSettings) -> ObservedMailbox:
        return ObservedMailbox(AioImapMailbox(settings), waiting)

    settings = account.imap_settings()
    mail = fetcher(runtime, settings, ingest, observed, sleep=quick_sleep, idle_timeout=60)
    stop = asyncio.Event()
    task = asyncio.create_task(mail.run_forever(stop))
    try:
        await until(lambda: len(delays) >= 3, 10)  # connection refused, three times
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(account.append, support_mail(1))
        await until(lambda: len(ingest.statuses) == 1, 10)
        await asyncio.wait_for(waiting.wait(), 10)  # the round is over: idling
        refused = len(delays)

        await asyncio.to_thread(server.kick, account)  # drops the connection while it idles
        await until(lambda: len(delays) > refused, 10)
        await asyncio.to_thread(account.append, support_mail(2))
        await until(lambda: len(ingest.statuses) == 2, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    for attempt, delay in enumerate(delays[:refused]):
        assert 2**attempt / 2 <= delay <= min(2**attempt, 60)
    assert delays[refused] <= 1  # a good round resets the back-off
    assert ingest.statuses == ["created", "created"]
    assert account.seen() == [1, 2]


@sqlite_only
async def test_without_idle_or_move_the_fetcher_polls_and_copies_then_expunges(
    runtime: Runtime, dovecot_without_idle_or_move: DovecotServer, ingest: Sha256Ingest
) -> None:
    account = dovecot_without_idle_or_move.add_user()
    waiting = asyncio.Event()
    mailboxes: list[ObservedMailbox] = []

    def observed(settings: ImapSettings) -> ObservedMailbox:
        mailboxes.append(ObservedMailbox(AioImapMailbox(settings), waiting))
        return mailboxes[-1]

    settings = account.imap_settings(processed_folder="Behandlet")
    mail = fetcher(runtime, settings, ingest, observed, poll_interval=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(mail.run_forever(stop))
    try:
        await asyncio.wait_for(waiting.wait(), 10)
        await asyncio.to_thread(account.append, support_mail(1))
        await until(lambda: ingest.statuses == ["created"], 5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    assert not mailboxes[0].can_idle
    assert account.flags() == {}
    assert list(account.flags("Behandlet")) == [1]


@sqlite_only
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_is_fetched_over_starttls_and_implicit_tls(
    runtime: Runtime, dovecot_with_tls: DovecotServer, ingest: Sha256Ingest, security: str
) -> None:
    account = dovecot_with_tls.add_user()
    account.append(support_mail(1))
    port = dovecot_with_tls.tls_port if security == "tls" else dovecot_with_tls.port
    settings = msgspec.structs.replace(account.imap_settings(), security=security, port=port)
    trusted = ssl.create_default_context(cafile=str(dovecot_with_tls.certificate))

    def mailbox(settings: ImapSettings) -> AioImapMailbox:
        return AioImapMailbox(settings, ssl_context=trusted)

    assert await fetcher(runtime, settings, ingest, mailbox).run_once() == 1
    assert account.seen() == [1]


@sqlite_only
async def test_a_certificate_nobody_vouches_for_is_refused(
    runtime: Runtime, dovecot_with_tls: DovecotServer, ingest: Sha256Ingest
) -> None:
    account = dovecot_with_tls.add_user()
    settings = msgspec.structs.replace(account.imap_settings(), security="starttls")

    with pytest.raises(MailboxUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await fetcher(runtime, settings, ingest).run_once()


@sqlite_only
async def test_starttls_is_required_when_the_url_asks_for_it(
    runtime: Runtime, dovecot: DovecotAccount, ingest: Sha256Ingest
) -> None:
    dovecot.append(support_mail(1))
    settings = msgspec.structs.replace(dovecot.imap_settings(), security="starttls")

    with pytest.raises(MailboxUnavailable, match="refusing to log in without TLS"):
        await fetcher(runtime, settings, ingest).run_once()
    assert ingest.statuses == []


# --- the command line --------------------------------------------------------------------


def run_helpdesk(tmp_path: Path, imap_url: str, *args: str) -> subprocess.Popen[str]:
    """`python -m helpdesk ARGS` on a fresh SQLite database, with the real pipeline."""
    database = tmp_path / "helpdesk.db"
    if not database.exists():
        asyncio.run(_create_schema(f"sqlite+aiosqlite:///{database}"))
    env = {
        **os.environ,
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "HELPDESK_DATA_DIR": str(tmp_path / "var"),
        "HELPDESK_IMAP_URL": imap_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "helpdesk", *args],
        cwd=REPOSITORY,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def ticket_subjects(tmp_path: Path) -> list[str]:
    with closing(sqlite3.connect(tmp_path / "helpdesk.db")) as db:
        return [row[0] for row in db.execute("SELECT subject FROM tickets ORDER BY number")]


async def _create_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    await engine.dispose()


def imap_url(account: DovecotAccount, port: int | None = None) -> str:
    user, password = quote(account.user, safe=""), quote(account.password, safe="")
    return f"imap://{user}:{password}@{account.host}:{port or account.port}/INBOX?tls=off"


def test_fetch_mail_once_fetches_everything_and_exits(
    dovecot: DovecotAccount, tmp_path: Path
) -> None:
    dovecot.append(support_mail(1))
    dovecot.append(support_mail(2))

    process = run_helpdesk(tmp_path, imap_url(dovecot), "fetch-mail", "--once")
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "2 messages processed" in stderr
    assert ticket_subjects(tmp_path) == ["Kursbevis 1", "Kursbevis 2"]
    assert dovecot.seen() == [1, 2]


def test_fetch_mail_once_exits_75_when_the_server_is_unreachable(
    dovecot: DovecotAccount, tmp_path: Path
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    process = run_helpdesk(tmp_path, imap_url(dovecot, port), "fetch-mail", "--once")
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 75
    assert stderr.startswith("helpdesk: fetch-mail: ")
    assert dovecot.user not in stderr


def test_fetch_mail_runs_until_sigterm(dovecot: DovecotAccount, tmp_path: Path) -> None:
    dovecot.append(support_mail(1))
    process = run_helpdesk(tmp_path, imap_url(dovecot), "fetch-mail")
    deadline = time.monotonic() + 10
    while dovecot.seen() != [1] and time.monotonic() < deadline:
        time.sleep(0.05)

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert dovecot.seen() == [1]
    assert ticket_subjects(tmp_path) == ["Kursbevis 1"]
