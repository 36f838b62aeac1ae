"""`Mailbox` on aioimaplib: STARTTLS, the MOVE fallback, IDLE, deadlines on every call."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import aioimaplib

from helpdesk.adapters.imap.mailbox import MailboxUnavailable, MessageGone, MessageUnavailable
from helpdesk.adapters.imap.wire import encode_mailbox_name, parse_fetched_body
from helpdesk.config import ImapSettings

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_EXISTS = re.compile(rb"^\* \d+ EXISTS")


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
