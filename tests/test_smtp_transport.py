"""The SMTP transport against a real aiosmtpd on loopback, and the file transport."""

from __future__ import annotations

import email
import email.policy
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from msgspec.structs import replace

from helpdesk.adapters.smtp import (
    FileTransport,
    InMemoryTransport,
    PermanentDeliveryError,
    ServerUnavailableError,
    SmtpTransport,
    TemporaryDeliveryError,
    build_transport,
    eml_filename,
    tls_context_trusting,
)
from helpdesk.config import Settings, SmtpSettings

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.smtp import Certificate, SmtpPeer

pytest_plugins = ["tests.peers.smtp"]
# aiosmtpd warns about AUTH without STARTTLS; under implicit TLS the session is encrypted.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SUPPORT = "support@kurs.example"


def make_message(message_id: str = "reply-1@kurs.example", to: str = "kari@example.no") -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Kurs support <{SUPPORT}>"
    message["To"] = to
    message["Subject"] = "Re: Kursbevis [#1042]"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content(
        "Hei Kari,\n\nkursbeviset ditt for HMS-kurset er vedlagt.\n\nHilsen støtte\n"
    )
    return message.as_bytes()


def transport_for(peer: SmtpPeer, certificate: Certificate, **changes: object) -> SmtpTransport:
    settings = replace(peer.settings(), **changes) if changes else peer.settings()
    return SmtpTransport(settings, tls_context=certificate.client_context(), timeout=5)


async def test_message_arrives_byte_identical_over_starttls_with_auth(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    raw = make_message()
    transport = transport_for(smtp_peer, smtp_certificate)
    receipt = await transport.send(SUPPORT, ["kari@example.no", "ola@example.no"], raw)
    await transport.close()

    [mail] = smtp_peer.received
    assert mail.content == raw
    assert mail.mail_from == SUPPORT
    assert mail.rcpt_tos == ("kari@example.no", "ola@example.no")
    assert mail.user == smtp_peer.settings().username
    assert receipt.reply.startswith("250 2.0.0 Ok: queued as 1")
    assert receipt.refused == {}


async def test_message_arrives_over_implicit_tls(
    smtp_peer_tls: SmtpPeer, smtp_certificate: Certificate
) -> None:
    raw = make_message()
    transport = transport_for(smtp_peer_tls, smtp_certificate)
    await transport.send(SUPPORT, ["kari@example.no"], raw)
    await transport.close()

    assert [m.content for m in smtp_peer_tls.received] == [raw]
    assert smtp_peer_tls.received[0].user == smtp_peer_tls.settings().username


async def test_one_connection_carries_a_whole_batch(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    transport = transport_for(smtp_peer, smtp_certificate)
    for number in range(5):
        await transport.send(SUPPORT, ["kari@example.no"], make_message(f"m{number}@kurs.example"))
    await transport.close()

    assert len(smtp_peer.received) == 5
    assert smtp_peer.connections == 1
    assert transport.connections_opened == 1


async def test_transport_reconnects_after_the_relay_restarts(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    transport = transport_for(smtp_peer, smtp_certificate)
    await transport.send(SUPPORT, ["kari@example.no"], make_message("before@kurs.example"))
    smtp_peer.stop()

    with pytest.raises(TemporaryDeliveryError):
        await transport.send(SUPPORT, ["kari@example.no"], make_message("during@kurs.example"))
    smtp_peer.start()
    await transport.send(SUPPORT, ["kari@example.no"], make_message("after@kurs.example"))
    await transport.close()

    assert len(smtp_peer.received) == 2
    assert b"after@kurs.example" in smtp_peer.received[1].content


async def test_relay_down_is_a_temporary_server_failure(
    smtp_peer_factory: object, smtp_certificate: Certificate
) -> None:
    peer: SmtpPeer = smtp_peer_factory(start=False)  # type: ignore[operator]
    transport = transport_for(peer, smtp_certificate)
    with pytest.raises(ServerUnavailableError) as failure:
        await transport.send(SUPPORT, ["kari@example.no"], make_message())
    assert f"127.0.0.1:{peer.port}" in failure.value.reply


async def test_550_on_rcpt_is_permanent_with_the_servers_reply(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    smtp_peer.rcpt_replies["gone@example.no"] = "550 5.1.1 <gone@example.no>: mailbox unknown"
    transport = transport_for(smtp_peer, smtp_certificate)
    with pytest.raises(PermanentDeliveryError) as failure:
        await transport.send(SUPPORT, ["gone@example.no"], make_message())
    await transport.close()

    assert failure.value.reply == "550 5.1.1 <gone@example.no>: mailbox unknown"
    assert smtp_peer.received == []


async def test_451_on_rcpt_is_temporary(smtp_peer: SmtpPeer, smtp_certificate: Certificate) -> None:
    smtp_peer.rcpt_replies["busy@example.no"] = "451 4.7.1 greylisted, try again later"
    transport = transport_for(smtp_peer, smtp_certificate)
    with pytest.raises(TemporaryDeliveryError) as failure:
        await transport.send(SUPPORT, ["busy@example.no"], make_message())
    await transport.close()

    assert not isinstance(failure.value, PermanentDeliveryError)
    assert failure.value.reply.startswith("451 4.7.1 greylisted")


async def test_some_recipients_refused_still_delivers_to_the_rest(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    smtp_peer.rcpt_replies["gone@example.no"] = "550 5.1.1 mailbox unknown"
    transport = transport_for(smtp_peer, smtp_certificate)
    receipt = await transport.send(SUPPORT, ["kari@example.no", "gone@example.no"], make_message())
    await transport.close()

    assert smtp_peer.received[0].rcpt_tos == ("kari@example.no",)
    assert receipt.refused == {"gone@example.no": "550 5.1.1 mailbox unknown"}


async def test_rejected_data_is_permanent_and_the_connection_stays_usable(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    smtp_peer.data_replies.append("554 5.6.0 message content rejected")
    transport = transport_for(smtp_peer, smtp_certificate)
    with pytest.raises(PermanentDeliveryError, match="554 5.6.0 message content rejected"):
        await transport.send(SUPPORT, ["kari@example.no"], make_message("bad@kurs.example"))
    await transport.send(SUPPORT, ["kari@example.no"], make_message("good@kurs.example"))
    await transport.close()

    assert len(smtp_peer.received) == 1
    assert smtp_peer.connections == 1


async def test_wrong_password_is_ours_to_fix_so_mail_waits(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    transport = transport_for(smtp_peer, smtp_certificate, password="wrong")
    with pytest.raises(ServerUnavailableError, match="535"):
        await transport.send(SUPPORT, ["kari@example.no"], make_message())
    assert smtp_peer.received == []


async def test_an_untrusted_certificate_is_refused(smtp_peer: SmtpPeer) -> None:
    transport = SmtpTransport(smtp_peer.settings(), tls_context=ssl.create_default_context())
    with pytest.raises(ServerUnavailableError, match="(?i)certificate"):
        await transport.send(SUPPORT, ["kari@example.no"], make_message())
    assert smtp_peer.received == []


async def test_a_ca_file_makes_the_relay_trusted(
    smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    context = tls_context_trusting(smtp_certificate.cert_path)
    transport = SmtpTransport(smtp_peer.settings(), tls_context=context)
    await transport.send(SUPPORT, ["kari@example.no"], make_message())
    await transport.close()
    assert len(smtp_peer.received) == 1


async def test_file_transport_writes_a_readable_eml_named_by_message_id(tmp_path: Path) -> None:
    raw = make_message("odd/../id+1@kurs.example")
    transport = FileTransport(tmp_path / "outbox")
    receipt = await transport.send(SUPPORT, ["kari@example.no"], raw)
    await transport.send(SUPPORT, ["kari@example.no"], raw)  # a resend replaces the file

    [written] = list((tmp_path / "outbox").iterdir())
    assert written.name == f"{eml_filename(raw)}.eml"
    assert "/" not in eml_filename(raw) and not written.name.startswith(".")
    assert written.read_bytes() == raw
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Re: Kursbevis [#1042]"
    assert "støtte" in parsed.get_content()
    assert receipt.reply == f"250 written to {written.name}"


def test_without_smtp_url_mail_is_written_to_the_data_dirs_outbox(tmp_path: Path) -> None:
    transport = build_transport(Settings(data_dir=tmp_path / "var"))
    assert isinstance(transport, FileTransport)
    assert transport.directory == tmp_path / "var" / "outbox"
    relay = build_transport(
        Settings(smtp=SmtpSettings(host="smtp.example", port=587, security="starttls"))
    )
    assert isinstance(relay, SmtpTransport)


async def test_in_memory_twin_behaves_like_a_relay() -> None:
    transport = InMemoryTransport()
    transport.refuse["gone@example.no"] = "550 5.1.1 unknown"
    receipt = await transport.send(SUPPORT, ["kari@example.no", "gone@example.no"], b"x")
    with pytest.raises(PermanentDeliveryError):
        await transport.send(SUPPORT, ["gone@example.no"], b"x")

    assert transport.sent[0].recipients == ("kari@example.no",)
    assert receipt.refused == {"gone@example.no": "550 5.1.1 unknown"}
