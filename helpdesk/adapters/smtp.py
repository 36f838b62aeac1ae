"""Outgoing mail transports: SMTP relay (aiosmtplib), .eml files, and an in-memory twin.

A transport hands one stored message (its exact bytes) to the next hop and says what the
server answered. Failures come in two kinds, because the outbox treats them differently:
`TemporaryDeliveryError` (connection refused, timeouts, 4xx — try again later) and
`PermanentDeliveryError` (5xx — the server will never take it; show the operator why).
When a relay refuses some recipients but takes the message for others, `send` succeeds
and the receipt lists the refused ones with their replies.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from hashlib import sha256
from pathlib import Path
from typing import Protocol

import aiosmtplib

from helpdesk.adapters.storage import write_atomically
from helpdesk.config import Settings, SmtpSettings

DEFAULT_TIMEOUT_SECONDS = 30.0
# A connection unused this long may have been dropped by the server (RFC 5321 §4.5.3.2.7
# lets servers time out idle clients); probe it with NOOP before trusting it.
_IDLE_PROBE_SECONDS = 20.0


class DeliveryError(Exception):
    """The message was not accepted; `reply` is the server's answer or what went wrong.

    `refused` maps each recipient the server refused to its reply (`"550 5.1.1 …"`), when
    the failure came recipient by recipient.
    """

    def __init__(self, reply: str, refused: Mapping[str, str] | None = None) -> None:
        super().__init__(reply)
        self.reply = reply
        self.refused = dict(refused or {})


class TemporaryDeliveryError(DeliveryError):
    """Try again later: the relay was unreachable, timed out or answered 4xx."""


class ServerUnavailableError(TemporaryDeliveryError):
    """No usable connection at all (refused, TLS or AUTH failed): the whole batch waits."""


class PermanentDeliveryError(DeliveryError):
    """The relay answered 5xx: sending the same message again cannot succeed."""


@dataclass(frozen=True)
class DeliveryReceipt:
    """The relay took the message; `reply` is its answer to DATA."""

    reply: str
    refused: Mapping[str, str] = field(default_factory=dict)


class MailTransport(Protocol):
    async def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes
    ) -> DeliveryReceipt: ...

    async def close(self) -> None: ...


def build_transport(
    settings: Settings, *, tls_context: ssl.SSLContext | None = None
) -> MailTransport:
    """SMTP to `HELPDESK_SMTP_URL` when it is set, else .eml files in `<data dir>/outbox/`."""
    if settings.smtp is None:
        return FileTransport(settings.data_dir / "outbox")
    return SmtpTransport(settings.smtp, tls_context=tls_context)


def tls_context_trusting(cafile: str | os.PathLike[str]) -> ssl.SSLContext:
    """A verifying client context that trusts the CA (or self-signed certificate) in `cafile`."""
    return ssl.create_default_context(cafile=os.fspath(cafile))


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def is_permanent(reply: str) -> bool:
    """RFC 5321 §4.2.1: a reply starting with 5 is a permanent negative completion."""
    return reply[:1] == "5"


class SmtpTransport:
    """aiosmtplib against one relay; one connection is reused for many messages.

    Connects on the first `send`, reconnects after a failure, and never sends credentials
    in the clear: `security="starttls"` insists on STARTTLS before AUTH.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.settings = settings
        self._client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            tls_context=tls_context,
            timeout=timeout,
        )
        self._last_used = 0.0
        self.connections_opened = 0

    async def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes
    ) -> DeliveryReceipt:
        """Deliver `raw` unchanged to `recipients`, with `envelope_from` as MAIL FROM."""
        await self._ensure_connected()
        try:
            refused, message = await self._client.sendmail(
                envelope_from,
                list(recipients),
                raw,
                mail_options=self._mail_options(raw, recipients),
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _recipients_refused(exc) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the connection (RFC 5321 §3.8)
                self._client.close()
            error = PermanentDeliveryError if exc.code >= 500 else TemporaryDeliveryError
            raise error(_reply(exc.code, exc.message)) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentDeliveryError(f"554 {exc.message}") from exc
        except ValueError as exc:  # aiosmtplib refuses an address it cannot send safely
            raise PermanentDeliveryError(f"553 {exc}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._client.close()
            raise TemporaryDeliveryError(f"connection lost: {exc}") from exc
        finally:
            self._last_used = time.monotonic()
        return DeliveryReceipt(
            reply=_reply(250, message),
            refused={address: _reply(r.code, r.message) for address, r in refused.items()},
        )

    async def close(self) -> None:
        """QUIT politely; a dead connection is simply dropped."""
        if not self._client.is_connected:
            return
        try:
            await asyncio.wait_for(self._client.quit(), timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._client.close()

    async def _ensure_connected(self) -> None:
        if self._client.is_connected and time.monotonic() - self._last_used > _IDLE_PROBE_SECONDS:
            try:
                await self._client.noop()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
        if self._client.is_connected:
            return
        try:
            await self._client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Refused, timed out, TLS or AUTH failed: all ours to fix, none the recipient's,
            # so they retry (an AUTH 535 is a wrong password in our settings).
            self._client.close()
            raise ServerUnavailableError(
                f"cannot use {self.settings.host}:{self.settings.port}: {_describe(exc)}"
            ) from exc
        self.connections_opened += 1

    def _mail_options(self, raw: bytes, recipients: Sequence[str]) -> list[str]:
        options = []
        if not raw.isascii() and self._client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152
        if not all(address.isascii() for address in recipients):
            options.append("SMTPUTF8")  # RFC 6531; refused as unsupported by an old relay
        return options


def _describe(exc: Exception) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply(exc.code, exc.message)
    return str(exc) or type(exc).__name__


def _recipients_refused(exc: aiosmtplib.SMTPRecipientsRefused) -> DeliveryError:
    """Every recipient was refused: permanent only if every refusal was a 5xx."""
    refused = {r.recipient: _reply(r.code, r.message) for r in exc.recipients}
    reply = "; ".join(refused.values())
    if all(is_permanent(r) for r in refused.values()):
        return PermanentDeliveryError(reply, refused)
    return TemporaryDeliveryError(reply, refused)


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+=-]")


class FileTransport:
    """The embedded mode's relay: each message becomes `<directory>/<Message-ID>.eml`.

    Written atomically (temporary file, fsync, rename), so a reader never sees half a
    message; a resend of the same message replaces its file, as a deduplicating receiver
    would.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes
    ) -> DeliveryReceipt:
        target = self.directory / f"{eml_filename(raw)}.eml"
        try:
            await asyncio.to_thread(_write_eml, target, raw)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write {target}: {exc.strerror}") from exc
        return DeliveryReceipt(reply=f"250 written to {target.name}")

    async def close(self) -> None:
        return None


def eml_filename(raw: bytes) -> str:
    """The message's Message-ID made safe as a file name (its SHA-256 if it has none)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
    if not message_id:
        return sha256(raw).hexdigest()
    return _UNSAFE_FILENAME.sub("_", message_id)[:200].lstrip(".") or sha256(raw).hexdigest()


@dataclass(frozen=True)
class SentMail:
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes


class InMemoryTransport:
    """Unit-test twin: records what was sent; `failures` are raised by the next sends.

    `refuse` maps recipient addresses to the reply a relay would give them (`"550 …"`):
    if every recipient of a message is refused, `send` raises as the real transport does.
    """

    def __init__(self) -> None:
        self.sent: list[SentMail] = []
        self.failures: list[DeliveryError] = []
        self.refuse: dict[str, str] = {}
        self.closed = 0

    async def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes
    ) -> DeliveryReceipt:
        if self.failures:
            raise self.failures.pop(0)
        refused = {a: self.refuse[a] for a in recipients if a in self.refuse}
        if refused and len(refused) == len(recipients):
            permanent = all(is_permanent(reply) for reply in refused.values())
            error = PermanentDeliveryError if permanent else TemporaryDeliveryError
            raise error("; ".join(refused.values()), refused)
        accepted = tuple(a for a in recipients if a not in refused)
        self.sent.append(SentMail(envelope_from, accepted, raw))
        return DeliveryReceipt(reply=f"250 accepted ({len(self.sent)})", refused=refused)

    async def close(self) -> None:
        self.closed += 1


def _write_eml(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, content)
