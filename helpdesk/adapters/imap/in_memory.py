"""The in-memory twin of the support mailbox, with a switch for each failure the fetcher handles."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

from helpdesk.adapters.imap.mailbox import MailboxUnavailable, MessageGone, MessageUnavailable
from helpdesk.config import ImapSettings


@dataclass
class StoredMessage:
    raw: bytes
    flags: set[str] = field(default_factory=set)


class InMemoryImapServer:
    """The twin's server: one mailbox and its processed folder, which tests fill and inspect.

    `mailbox(settings)` is the `MailboxFactory`. Failure switches: `down` refuses
    connections, `disconnect()` drops open ones, `failing_fetch` and `failing_mark` hold
    UIDs whose fetch or marking fails, `dropping_fetch` UIDs whose fetch drops the connection.
    """

    def __init__(self, *, can_idle: bool = True, uidvalidity: int = 1) -> None:
        self.can_idle = can_idle
        self.uidvalidity = uidvalidity
        self.messages: dict[int, StoredMessage] = {}
        self.processed: list[bytes] = []
        self.failing_fetch: set[int] = set()
        self.failing_mark: set[int] = set()
        self.dropping_fetch: set[int] = set()
        self.down = False
        self.connections = 0
        self.waits = 0
        self.generation = 0
        self._next_uid = 1
        self._news = asyncio.Event()

    def deliver(self, raw: bytes) -> int:
        uid, self._next_uid = self._next_uid, self._next_uid + 1
        self.messages[uid] = StoredMessage(raw)
        self._news.set()
        return uid

    def recreate(self) -> None:
        """Delete and re-create the mailbox: new UIDVALIDITY, UIDs numbered afresh."""
        kept = [message.raw for message in self.messages.values()]
        self.uidvalidity += 1
        self.messages.clear()
        self._next_uid = 1
        for raw in kept:
            self.deliver(raw)

    def disconnect(self) -> None:
        self.generation += 1
        self._news.set()

    async def wait_for_news(self, max_wait: float) -> None:
        self.waits += 1
        self._news.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), max_wait)

    def seen(self) -> list[int]:
        return sorted(uid for uid, m in self.messages.items() if "\\Seen" in m.flags)

    def mailbox(self, settings: ImapSettings) -> InMemoryMailbox:
        return InMemoryMailbox(self, settings)


class InMemoryMailbox:
    """`Mailbox` over an `InMemoryImapServer`."""

    def __init__(self, server: InMemoryImapServer, settings: ImapSettings) -> None:
        self._server = server
        self._settings = settings
        self._generation: int | None = None

    @property
    def can_idle(self) -> bool:
        return self._server.can_idle

    async def connect(self) -> int:
        if self._server.down:
            raise MailboxUnavailable("connection refused")
        self._server.connections += 1
        self._generation = self._server.generation
        return self._server.uidvalidity

    async def uids_after(self, last_uid: int) -> list[int]:
        self._check()
        return sorted(uid for uid in self._server.messages if uid > last_uid)

    async def fetch(self, uid: int) -> bytes:
        self._check()
        if uid in self._server.dropping_fetch:
            self._server.disconnect()
            raise MailboxUnavailable("connection lost")
        if uid in self._server.failing_fetch:
            raise MessageUnavailable(f"UID {uid}: FETCH answered NO")
        if uid not in self._server.messages:
            raise MessageGone(f"UID {uid} no longer exists")
        return self._server.messages[uid].raw

    async def mark_processed(self, uid: int) -> None:
        self._check()
        if uid in self._server.failing_mark or uid not in self._server.messages:
            raise MessageUnavailable(f"UID {uid}: STORE answered NO")
        if self._settings.processed_folder:
            self._server.processed.append(self._server.messages.pop(uid).raw)
        else:
            self._server.messages[uid].flags.add("\\Seen")

    async def wait_for_news(self, max_wait: float) -> None:
        self._check()
        if not self._server.can_idle:
            await asyncio.sleep(max_wait)
            return
        await self._server.wait_for_news(max_wait)
        self._check()

    async def close(self) -> None:
        self._generation = None

    def _check(self) -> None:
        if self._generation != self._server.generation:
            raise MailboxUnavailable("connection lost")
