"""The support mailbox over IMAP (RFC 3501): a small Protocol, aioimaplib, an in-memory twin.

`helpdesk fetch-mail` needs six operations; everything IMAP-specific (literals,
capabilities, STARTTLS, the MOVE fallback, IDLE) stays in this module. Everything is
addressed by UID, never by sequence number, so concurrent expunges cannot shift targets.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aioimaplib

from helpdesk.config import ImapSettings

T = TypeVar("T")


class MailboxUnavailable(Exception):
    """The server cannot be reached or used right now; reconnect later (with back-off)."""


class MessageUnavailable(Exception):
    """One message could not be fetched or marked; the other messages are unaffected."""


class MessageGone(MessageUnavailable):
    """The UID no longer exists (expunged by another client): there is nothing left to lose."""


class Mailbox(Protocol):
    """One connection to the configured mailbox; make a new one to reconnect."""

    @property
    def can_idle(self) -> bool:
        """Whether `wait_for_news` is woken by the server (IDLE) rather than a timer."""
        ...

    async def connect(self) -> int:
        """Connect, log in and select the mailbox; return its UIDVALIDITY."""
        ...

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending."""
        ...

    async def fetch(self, uid: int) -> bytes:
        """The raw message, without setting \\Seen."""
        ...

    async def mark_processed(self, uid: int) -> None:
        """Move the message to the processed folder if one is configured, else flag it \\Seen."""
        ...

    async def wait_for_news(self, max_wait: float) -> None:
        """Return when the server reports a change (IDLE) or after `max_wait` seconds."""
        ...

    async def close(self) -> None:
        """Log out if still possible and drop the connection; never raises."""
        ...


MailboxFactory = Callable[[ImapSettings], Mailbox]


def encode_mailbox_name(name: str) -> str:
    """A mailbox name as a quoted IMAP string in modified UTF-7 (RFC 3501 §5.1.3): "Søppel"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.decode().replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return aioimaplib.quoted("".join(out))


_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID_ITEM = re.compile(rb"\bUID (\d+)")
_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\}$")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_EXISTS = re.compile(rb"^\* \d+ EXISTS")


def parse_fetched_body(lines: Sequence[bytes | bytearray], uid: int) -> bytes | None:
    """The BODY[] literal of `uid` in an aioimaplib FETCH response; None if the UID is absent.

    aioimaplib returns text lines as `bytes` and each literal as one `bytearray`. Unsolicited
    FETCH responses about other messages (flag changes) may be mixed in, and the UID item may
    come before or after the body, so the response is split into items before matching.
    """
    items: list[tuple[bytearray, bytes | None]] = []
    for line in lines:
        if isinstance(line, bytearray):
            if items and _BODY_LITERAL.search(items[-1][0]) and items[-1][1] is None:
                items[-1] = (items[-1][0] + b" ", bytes(line))
            elif items:
                items[-1][0].extend(b'""')  # some other literal: keep the text parseable
        elif _FETCH_START.match(line):
            items.append((bytearray(line), None))
        elif items:
            items[-1][0].extend(line)
    for text, body in items:
        match = _UID_ITEM.search(text)
        if match and int(match.group(1)) == uid:
            if body is None:
                raise MessageUnavailable(f"UID {uid}: the server returned no message body")
            return body
    return None


class _NewsNotingProtocol(aioimaplib.IMAP4ClientProtocol):
    """Notes every untagged EXISTS: aioimaplib drops those that no pending command claims.

    A message that arrives while UID SEARCH runs is announced in that command's response
    (RFC 3501 §7.3.1) and never again, so IDLE started afterwards would not report it.
    """

    news = False

    def _untagged_response(self, line: bytes) -> Any:
        if _EXISTS.match(line):
            self.news = True
        return super()._untagged_response(line)


class _Client(aioimaplib.IMAP4):
    def create_client(  # same as aioimaplib's, with the protocol above
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = _NewsNotingProtocol(running, conn_lost_cb)
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


class AioImapMailbox:
    """`Mailbox` on aioimaplib; `security` is tls (implicit), starttls or off."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._client: _Client | None = None
        self._lost = asyncio.Event()

    @property
    def can_idle(self) -> bool:
        return self._client is not None and self._client.has_capability("IDLE")

    async def connect(self) -> int:
        settings = self._settings
        tls = self._tls_context() if settings.security == "tls" else None
        self._client = _Client(
            host=settings.host,
            port=settings.port,
            timeout=self._timeout,
            ssl_context=tls,
            conn_lost_cb=lambda _exc: self._lost.set(),
        )
        await self._run(lambda client: client.wait_hello_from_server())
        if settings.security == "starttls":
            await self._starttls()
        response = await self._run(
            lambda client: client.login(aioimaplib.quoted(settings.username), settings.password)
        )
        if response.result != "OK":
            raise MailboxUnavailable(f"login refused: {_text(response)}")
        # Capabilities may grow after login (RFC 3501 §7.2.1): Dovecot adds MOVE and UIDPLUS.
        await self._run(lambda client: client.protocol.capability())
        if settings.processed_folder:
            await self._ensure_folder(settings.processed_folder)
        return await self._select(settings.mailbox)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "N:*" always matches the highest UID, even below N (RFC 3501 §6.4.8): filter it.
        if self._client is not None:
            self._client.protocol.news = False  # this search covers everything announced
        response = await self._run(
            lambda client: client.uid_search("UID", f"{last_uid + 1}:*", charset=None)
        )
        if response.result != "OK":
            raise MailboxUnavailable(f"UID SEARCH failed: {_text(response)}")
        # aioimaplib strips "* SEARCH" from the untagged line; the last line is the tagged text.
        words = (word for line in response.lines[:-1] for word in line.split())
        uids = {int(word) for word in words if word.isdigit()}
        return sorted(uid for uid in uids if uid > last_uid)

    async def fetch(self, uid: int) -> bytes:
        # BODY.PEEK[] rather than RFC822 or BODY[]: fetching must not set \Seen.
        response = await self._run(
            lambda client: client.uid("fetch", str(uid), "(UID BODY.PEEK[])")
        )
        if response.result != "OK":
            raise MessageUnavailable(f"UID {uid}: FETCH answered {response.result}")
        body = parse_fetched_body(response.lines, uid)
        if body is None:
            raise MessageGone(f"UID {uid} no longer exists")
        return body

    async def mark_processed(self, uid: int) -> None:
        folder = self._settings.processed_folder
        if folder is None:
            await self._expect_ok(uid, "store", str(uid), "+FLAGS.SILENT", r"(\Seen)")
            return
        target = encode_mailbox_name(folder)
        assert self._client is not None
        if self._client.has_capability("MOVE"):  # RFC 6851
            await self._expect_ok(uid, "move", str(uid), target)
            return
        await self._expect_ok(uid, "copy", str(uid), target)
        await self._expect_ok(uid, "store", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
        # Without UIDPLUS a plain EXPUNGE would also remove what others flagged \Deleted;
        # the message then stays flagged in the mailbox and the cursor moves past it.
        if self._client.has_capability("UIDPLUS"):
            await self._expect_ok(uid, "expunge", str(uid))

    async def wait_for_news(self, max_wait: float) -> None:
        client = self._client
        if client is not None and client.protocol.news:
            return  # announced since the last search
        if not self.can_idle:
            await asyncio.sleep(max_wait)
            return
        assert client is not None
        while not client.protocol.idle_queue.empty():  # stale pushes of an earlier IDLE
            client.protocol.idle_queue.get_nowait()
        idle = await self._run(lambda c: c.idle_start(timeout=max_wait))
        try:
            await self._run(lambda c: c.wait_server_push(max_wait + self._timeout), max_wait + 1)
        finally:
            if client.has_pending_idle() and not self._lost.is_set():
                client.idle_done()
                with suppress(Exception):
                    await asyncio.wait_for(idle, self._timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if not self._lost.is_set():
            with suppress(Exception):
                await asyncio.wait_for(client.logout(), 2)
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    async def _run(
        self, command: Callable[[aioimaplib.IMAP4], Awaitable[T]], extra_time: float = 0
    ) -> T:
        """Run one client call with a deadline, failing fast when the connection drops.

        Any failure leaves the connection in an unknown state, so it becomes
        `MailboxUnavailable` and the caller reconnects.
        """
        client = self._client
        if client is None or self._lost.is_set():
            raise MailboxUnavailable("connection lost")
        call = asyncio.ensure_future(command(client))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {call, lost},
                timeout=self._timeout + extra_time,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
            if not call.done():
                call.cancel()
        if call not in done:
            raise MailboxUnavailable("connection lost" if lost in done else "server timed out")
        try:
            return call.result()
        except Exception as exc:
            raise MailboxUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _expect_ok(self, uid: int, command: str, *args: str) -> None:
        response = await self._run(lambda client: client.uid(command, *args))
        if response.result != "OK":
            raise MessageUnavailable(f"UID {uid}: {command.upper()} answered {_text(response)}")

    async def _starttls(self) -> None:
        # aioimaplib 2.0 knows the STARTTLS command but offers no method for it, so the
        # transport is upgraded here (RFC 3501 §6.2.1). Never fall back to plain text.
        client = self._client
        assert client is not None
        if not client.has_capability("STARTTLS"):
            raise MailboxUnavailable("server offers no STARTTLS; refusing to log in without TLS")
        protocol = client.protocol
        response = await self._run(
            lambda _c: protocol.execute(
                aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
            )
        )
        if response.result != "OK":
            raise MailboxUnavailable(f"STARTTLS refused: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await self._run(
            lambda _c: loop.start_tls(
                protocol.transport,
                protocol,
                self._tls_context(),
                server_hostname=self._settings.host,
            )
        )
        # Capabilities seen before TLS must be discarded (RFC 3501 §6.2.1).
        await self._run(lambda _c: protocol.capability())

    async def _ensure_folder(self, folder: str) -> None:
        name = encode_mailbox_name(folder)
        listing = await self._run(lambda client: client.list('""', name))
        if listing.result == "OK" and any(listing.lines[:-1]):  # one untagged LIST per match
            return
        created = await self._run(lambda client: client.create(name))
        if created.result != "OK":
            raise MailboxUnavailable(f"cannot create the processed folder: {_text(created)}")

    async def _select(self, mailbox: str) -> int:
        response = await self._run(lambda client: client.select(encode_mailbox_name(mailbox)))
        if response.result != "OK":
            raise MailboxUnavailable(f"cannot select the mailbox: {_text(response)}")
        for line in response.lines:
            match = _UIDVALIDITY.search(bytes(line))
            if match:
                return int(match.group(1))
        raise MailboxUnavailable("the server sent no UIDVALIDITY on SELECT")

    def _tls_context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()


def _text(response: Any) -> str:
    last = response.lines[-1] if response.lines else b""
    return f"{response.result} {bytes(last)[:200].decode('ascii', 'replace')}".strip()


# ---------------------------------------------------------------------------------------
# In-memory twin


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
