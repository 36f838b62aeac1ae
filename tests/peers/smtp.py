"""aiosmtpd on loopback as a real SMTP peer, offered as pytest fixtures.

Register with `pytest_plugins = ["tests.peers.smtp"]` in the test module. The server runs
in its own thread (aiosmtpd's `Controller`) on 127.0.0.1 at a free port, requires AUTH
(PLAIN or LOGIN) and offers STARTTLS with a self-signed certificate made for the test
session with `cryptography`; AUTH is only offered after STARTTLS, as a real submission
server does. Every accepted message is recorded with its envelope and exact bytes.

Fixtures: `smtp_certificate` (the session's certificate; `client_context()` trusts it),
`smtp_peer` (STARTTLS + AUTH), `smtp_peer_tls` (implicit TLS, as on port 465, + AUTH),
`smtp_peer_factory` (servers of the test's own, e.g. on a port chosen before it starts).
Faults: `peer.rcpt_replies[address] = "550 …"` answers RCPT for that address,
`peer.data_replies` answers the next DATA commands, and `peer.stop()` takes it down.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpdesk.config import SmtpSettings

SMTP_USER = "relay-user"
SMTP_PASSWORD = "relay-s3cret"


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def make_self_signed_certificate(directory: Path) -> Certificate:
    """A certificate for localhost and 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes  # exactly the bytes after DATA, dot-stuffing undone
    user: str | None  # who authenticated


@dataclass
class SmtpPeer:
    """One aiosmtpd server and what it received; restartable on the same port."""

    port: int
    certificate: Certificate
    implicit_tls: bool = False
    received: list[ReceivedMail] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    connections: int = 0
    # Called (in a thread) after the message data arrived and before the relay answers;
    # a client that went away meanwhile gets no acceptance: the mail is not recorded.
    data_hook: Callable[[], object] | None = None
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def settings(self) -> SmtpSettings:
        """How the helpdesk reaches this server (what HELPDESK_SMTP_URL would say)."""
        return SmtpSettings(
            host="127.0.0.1",
            port=self.port,
            security="tls" if self.implicit_tls else "starttls",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
        )

    def start(self) -> None:
        tls = self.certificate.server_context()
        controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=tls if self.implicit_tls else None,
            tls_context=None if self.implicit_tls else tls,
            require_starttls=not self.implicit_tls,
            authenticator=self._authenticate,
            auth_required=True,
            # Under implicit TLS aiosmtpd does not know the session is encrypted.
            auth_require_tls=not self.implicit_tls,
            ready_timeout=5.0,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_USER.encode()
            and data.password == SMTP_PASSWORD.encode()
        )
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=SMTP_USER if ok else None)

    def record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.received.append(mail)


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if session.ssl is None:  # count connections, not the second EHLO after STARTTLS
            self.peer.connections += 1
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.peer.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.peer.data_replies:
            return self.peer.data_replies.pop(0)
        if self.peer.data_hook is not None:
            await asyncio.to_thread(self.peer.data_hook)
            if server.transport is None or server.transport.is_closing():
                return "451 4.3.0 client went away before the answer"
        assert envelope.original_content is not None and envelope.mail_from is not None
        self.peer.record(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=envelope.original_content,
                user=session.auth_data if session.authenticated else None,
            )
        )
        return f"250 2.0.0 Ok: queued as {len(self.peer.received)}"


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_peer_factory(smtp_certificate: Certificate) -> Iterator[Any]:
    """`make(implicit_tls=False, start=True)` → an `SmtpPeer`; all are stopped afterwards."""
    peers: list[SmtpPeer] = []

    def make(*, implicit_tls: bool = False, start: bool = True) -> SmtpPeer:
        peer = SmtpPeer(port=free_port(), certificate=smtp_certificate, implicit_tls=implicit_tls)
        peers.append(peer)
        if start:
            peer.start()
        return peer

    yield make
    for peer in peers:
        peer.stop()


@pytest.fixture
def smtp_peer(smtp_peer_factory: Any) -> SmtpPeer:
    """A running server with STARTTLS (required) and AUTH PLAIN/LOGIN."""
    peer: SmtpPeer = smtp_peer_factory()
    return peer


@pytest.fixture
def smtp_peer_tls(smtp_peer_factory: Any) -> SmtpPeer:
    """A running server speaking TLS from the first byte (port 465 style) with AUTH."""
    peer: SmtpPeer = smtp_peer_factory(implicit_tls=True)
    return peer
