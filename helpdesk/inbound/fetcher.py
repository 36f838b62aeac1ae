"""`helpdesk fetch-mail`: hand new mail in the support mailbox to the ingest pipeline.

Per message the order is fixed (DESIGN §7, "nothing inbound is ever lost"):
fetch → ingest (committed) → mark processed on the server → advance the stored cursor.
A crash anywhere in between delivers the message again on the next run, and ingest's
deduplication makes that second delivery a no-op.

The stored cursor (`MailboxCursor.last_uid`) only moves over UIDs that are done, so it
never passes a message that failed. Messages after a failed one still flow: their UIDs
are remembered in memory (`_done_above_cursor`) so they are not fetched again. After a
restart that memory is gone and they are delivered once more, which deduplication
absorbs; storing them instead would buy little and add a table.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any, Literal
from urllib.parse import quote

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.adapters.clock import utcnow
from helpdesk.adapters.imap import (
    Mailbox,
    MailboxFactory,
    MailboxUnavailable,
    MessageGone,
    MessageUnavailable,
)
from helpdesk.config import ImapSettings
from helpdesk.db import transaction
from helpdesk.inbound.outcome import IngestUnavailable
from helpdesk.models.inbound import MailboxCursor
from helpdesk.redaction import redact_addresses

log = logging.getLogger(__name__)

Ingest = Callable[[bytes, str], Awaitable[object]]
Sleep = Callable[[float], Awaitable[None]]
Outcome = Literal["processed", "gone", "retry"]

BATCH_SIZE = 50
IDLE_TIMEOUT = 300.0  # re-issue IDLE well inside the 29 minutes of RFC 2177
POLL_INTERVAL = 60.0
ONCE_RECONNECTS = 3
# A message the server cannot deliver may make it drop the connection (Dovecot does, on an
# unreadable Maildir file). After this many drops while fetching one UID it is left aside
# for SUSPECT_PAUSE seconds so the mail behind it keeps flowing; the cursor stays before it.
SUSPECT_DROPS = 2
SUSPECT_PAUSE = 900.0


class StorageUnavailable(Exception):
    """The database or file storage behind ingest or the cursor is down: pause, retry later."""


def is_infrastructure_failure(exc: BaseException) -> bool:
    """True for failures of ours that every message would hit (database, disk, network)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        IngestUnavailable
        | OSError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.TimeoutError,
    )


class Backoff:
    """Reconnect delays: 1 s doubling to a 60 s cap, each with equal jitter (half random)."""

    def __init__(
        self, first: float = 1.0, cap: float = 60.0, rand: Callable[[], float] = random.random
    ) -> None:
        self._first, self._cap, self._rand = first, cap, rand
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self._cap, self._first * 2**self._attempt)
        self._attempt += 1
        return base / 2 + self._rand() * base / 2

    def reset(self) -> None:
        self._attempt = 0


class MailFetcher:
    """Reads one IMAP mailbox into `ingest`, tracking UIDVALIDITY and the last UID done."""

    def __init__(
        self,
        settings: ImapSettings,
        sessions: async_sessionmaker[AsyncSession],
        ingest: Ingest,
        mailbox_factory: MailboxFactory,
        *,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        batch_size: int = BATCH_SIZE,
        idle_timeout: float = IDLE_TIMEOUT,
        poll_interval: float = POLL_INTERVAL,
        is_infrastructure_failure: Callable[[BaseException], bool] = is_infrastructure_failure,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._ingest = ingest
        self._mailbox_factory = mailbox_factory
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._idle_timeout = idle_timeout
        self._poll_interval = poll_interval
        self._is_infrastructure_failure = is_infrastructure_failure
        self._monotonic = monotonic
        self.account = f"{settings.username}@{settings.host}"
        self.processed = 0  # messages ingested and marked by this fetcher
        self._uidvalidity: int | None = None
        self._last_uid = 0
        self._done_above_cursor: set[int] = set()
        self._suspects: dict[int, tuple[int, float]] = {}  # UID → (drops, when the last was)

    async def run_once(self) -> int:
        """Process everything now in the mailbox and return how many messages were processed.

        A connection dropped halfway is reopened a few times (without back-off) before
        `MailboxUnavailable` is raised.
        """
        before = self.processed
        for attempt in range(ONCE_RECONNECTS + 1):
            mailbox = await self._open()
            try:
                await self._drain(mailbox)
                break
            except MailboxUnavailable as exc:
                if attempt == ONCE_RECONNECTS:
                    raise
                log.warning("fetch-mail: %s; reconnecting", _describe(exc))
            finally:
                await mailbox.close()
        return self.processed - before

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Fetch until `stop` is set: drain, then IDLE or poll; reconnect with back-off."""
        while not stop.is_set():
            try:
                await self._serve(stop)
            except (MailboxUnavailable, StorageUnavailable) as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "fetch-mail: %s; retrying in %.1f s", redact_addresses(str(exc)), delay
                )
                await _until_stopped(self._sleep(delay), stop)

    async def _serve(self, stop: asyncio.Event) -> None:
        mailbox = await self._open()
        try:
            while not stop.is_set():
                await self._drain(mailbox)
                self._backoff.reset()
                wait = self._idle_timeout if mailbox.can_idle else self._poll_interval
                await _until_stopped(mailbox.wait_for_news(wait), stop)
        finally:
            await mailbox.close()

    async def _open(self) -> Mailbox:
        mailbox = self._mailbox_factory(self._settings)
        try:
            uidvalidity = await mailbox.connect()
            await self._storing(self._load_cursor(uidvalidity))
        except BaseException:
            await mailbox.close()
            raise
        return mailbox

    async def _drain(self, mailbox: Mailbox) -> None:
        """Process new messages batch by batch; a UID that fails waits for the next drain."""
        attempted: set[int] = set()
        while True:
            listing = await mailbox.uids_after(self._last_uid)
            skip = attempted | self._done_above_cursor
            pending = [uid for uid in listing if uid not in skip and not self._set_aside(uid)]
            if not pending:
                return
            for uid in pending[: self._batch_size]:
                attempted.add(uid)
                outcome = await self._process(mailbox, uid)
                if outcome == "retry":
                    continue
                self.processed += outcome == "processed"
                self._done_above_cursor.add(uid)
                await self._advance(listing)

    async def _process(self, mailbox: Mailbox, uid: int) -> Outcome:
        """fetch → ingest (committed) → mark processed, for one UID."""
        try:
            raw = await mailbox.fetch(uid)
        except MessageGone:
            log.info("fetch-mail: UID %d was expunged by someone else before fetching", uid)
            return "gone"
        except MessageUnavailable as exc:
            return self._retry_later(uid, "fetch", _describe(exc))
        except MailboxUnavailable:
            self._note_drop(uid)
            raise
        self._suspects.pop(uid, None)
        try:
            await self._ingest(raw, self._source(uid))
        except Exception as exc:
            if self._is_infrastructure_failure(exc):
                raise StorageUnavailable(f"ingest failed at UID {uid}: {_describe(exc)}") from exc
            return self._retry_later(uid, "ingest", _where(exc))
        try:
            await mailbox.mark_processed(uid)
        except MessageUnavailable as exc:
            return self._retry_later(uid, "marking", _describe(exc))
        return "processed"

    def _note_drop(self, uid: int) -> None:
        drops = self._suspects.get(uid, (0, 0.0))[0] + 1
        self._suspects[uid] = (drops, self._monotonic())
        if drops >= SUSPECT_DROPS:
            log.error(
                "fetch-mail: UID %d: the connection dropped %d times while fetching it; "
                "leaving it aside for %.0f s (the cursor stays before it)",
                uid,
                drops,
                SUSPECT_PAUSE,
            )

    def _set_aside(self, uid: int) -> bool:
        drops, when = self._suspects.get(uid, (0, 0.0))
        return drops >= SUSPECT_DROPS and self._monotonic() - when < SUSPECT_PAUSE

    def _retry_later(self, uid: int, step: str, reason: str) -> Outcome:
        log.error("fetch-mail: UID %d: %s failed (%s); retrying next round", uid, step, reason)
        return "retry"

    def _source(self, uid: int) -> str:
        """An RFC 5092 IMAP URL naming exactly this message."""
        user = quote(self._settings.username, safe="")
        mailbox = quote(self._settings.mailbox, safe="")
        return (
            f"imap://{user}@{self._settings.host}/{mailbox}"
            f";UIDVALIDITY={self._uidvalidity}/;UID={uid}"
        )

    async def _advance(self, listing: list[int]) -> None:
        """Move the cursor over the UIDs of `listing` that are done, up to the first that is not.

        New mail always gets a higher UID than any existing one (RFC 3501 §2.3.1.1), so a
        gap in a listing never fills later and only listed UIDs need to be done.
        """
        last = self._last_uid
        for uid in listing:
            if uid <= last:
                continue
            if uid not in self._done_above_cursor:
                break
            last = uid
        if last == self._last_uid:
            return
        await self._storing(self._store_last_uid(last))
        self._last_uid = last
        self._done_above_cursor = {uid for uid in self._done_above_cursor if uid > last}

    async def _load_cursor(self, uidvalidity: int) -> None:
        """Read the stored position; a new UIDVALIDITY (RFC 3501 §2.3.1.1) restarts at UID 0."""
        async with transaction(self._sessions) as session:
            cursor = (
                await session.execute(
                    select(MailboxCursor).where(
                        col(MailboxCursor.account) == self.account,
                        col(MailboxCursor.mailbox) == self._settings.mailbox,
                    )
                )
            ).scalar_one_or_none()
            if cursor is None:
                cursor = MailboxCursor(
                    account=self.account, mailbox=self._settings.mailbox, uidvalidity=uidvalidity
                )
                session.add(cursor)
            elif cursor.uidvalidity != uidvalidity:
                log.warning(
                    "fetch-mail: UIDVALIDITY changed from %d to %d; reading the mailbox again "
                    "from the start (ingest drops what it already has)",
                    cursor.uidvalidity,
                    uidvalidity,
                )
                cursor.uidvalidity, cursor.last_uid, cursor.updated_at = uidvalidity, 0, utcnow()
            last_uid = cursor.last_uid
        if uidvalidity != self._uidvalidity or last_uid != self._last_uid:
            self._done_above_cursor = set()
        self._uidvalidity, self._last_uid = uidvalidity, last_uid

    async def _store_last_uid(self, last_uid: int) -> None:
        async with transaction(self._sessions) as session:
            await session.execute(
                update(MailboxCursor)
                .where(
                    col(MailboxCursor.account) == self.account,
                    col(MailboxCursor.mailbox) == self._settings.mailbox,
                    col(MailboxCursor.uidvalidity) == self._uidvalidity,
                    col(MailboxCursor.last_uid) < last_uid,  # never backwards
                )
                .values(last_uid=last_uid, updated_at=utcnow())
            )

    async def _storing(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a cursor update, turning an unavailable database into `StorageUnavailable`."""
        try:
            await work
        except Exception as exc:
            if self._is_infrastructure_failure(exc):
                raise StorageUnavailable(f"cursor not stored: {_describe(exc)}") from exc
            raise


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Await `work` unless `stop` is set first, in which case `work` is cancelled."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()


def _describe(exc: BaseException) -> str:
    """Type and message of an error of ours (IMAP, database), addresses redacted, cut short."""
    return redact_addresses(f"{type(exc).__name__}: {exc}")[:300]


def _where(exc: BaseException) -> str:
    """Type and origin of an ingest error, without its message: that may quote the mail."""
    frames = traceback.extract_tb(exc.__traceback__)
    origin = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{origin}"
