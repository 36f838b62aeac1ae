"""The whole email loop with real peers: a learner writes, an operator answers through the
API, the reply leaves over SMTP (aiosmtpd with STARTTLS and AUTH), the learner answers
that reply, and the answer comes back over IMAP (Dovecot) into the same ticket.
"""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING

import msgspec
import pytest
from factories import add_operator, bearer
from mail_factory import make_mail
from sqlalchemy import select

from helpdesk.adapters.imap import AioImapMailbox
from helpdesk.bootstrap import Runtime
from helpdesk.inbound.fetcher import MailFetcher
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import Message, Ticket
from helpdesk.signing import verify_reply_address

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.dovecot import DovecotAccount
    from tests.peers.smtp import Certificate, SmtpPeer

pytest_plugins = ["tests.peers.dovecot", "tests.peers.smtp"]

LEARNER = "kari.nordmann@example.no"


async def test_reply_goes_out_threaded_and_the_learners_answer_comes_back_to_the_ticket(
    runtime: Runtime,
    client,
    smtp_peer: SmtpPeer,
    smtp_certificate: Certificate,
    dovecot: DovecotAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The relay is HELPDESK_SMTP_URL's; its self-signed certificate is trusted the way an
    # operator would trust a private CA (SSL_CERT_FILE).
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_certificate.cert_path))
    runtime.settings = msgspec.structs.replace(
        runtime.settings, acknowledge_new_tickets=False, smtp=smtp_peer.settings()
    )
    first_id = make_msgid(domain="mail.example.no")
    question = make_mail(
        sender=f"Kari Nordmann <{LEARNER}>",
        subject="Spørsmål om kursbevis",
        message_id=first_id,
    )
    created = await ingest_raw(runtime, question, "test")
    number = created.ticket
    token = await add_operator(runtime, name="Ola Ås")

    answer = "Hei Kari!\n\nKursbeviset ligger nå på «Min side». Ha en fin dag – hilsen Ola Ås"
    response = await client.post(
        f"/api/v1/tickets/{number}/replies", json={"body": answer}, headers=bearer(token)
    )
    assert response.status_code == 201 and response.json()["status"] == "queued"

    # Nothing else runs delivery: the reply API kicks it right after its commit.
    async with asyncio.timeout(10):
        while not smtp_peer.received:  # noqa: ASYNC110 - the relay runs in its own thread
            await asyncio.sleep(0.05)
    [received] = smtp_peer.received
    async with asyncio.timeout(10):
        while True:  # the operator sees the delivery status change on the ticket
            detail = await client.get(f"/api/v1/tickets/{number}", headers=bearer(token))
            statuses = [
                m["status"] for m in detail.json()["messages"] if m["direction"] == "outbound"
            ]
            if statuses == ["sent"]:
                break
            await asyncio.sleep(0.05)
    assert received.rcpt_tos == (LEARNER,)
    assert received.mail_from == "support@kurs.example"
    sent = message_from_bytes(received.content, policy=policy.default)
    assert sent["Subject"] == f"Re: Spørsmål om kursbevis [#{number}]"
    assert sent["In-Reply-To"] == first_id
    assert first_id in sent["References"]
    assert sent["To"].addresses[0].addr_spec == LEARNER
    reply_address = sent["Reply-To"].addresses[0].addr_spec
    secret = runtime.settings.secret_key
    assert verify_reply_address(secret, "support@kurs.example", reply_address) == number
    assert sent.get_content_type() == "multipart/alternative"
    text = sent.get_body(("plain",)).get_content()
    assert "Kursbeviset ligger nå på «Min side»" in text
    assert "Ola Ås" in sent.get_body(("html",)).get_content()
    assert "Auto-Submitted" not in sent

    # The learner's mail program answers our mail: In-Reply-To our Message-ID, To Reply-To.
    learners_answer = EmailMessage(policy=policy.SMTP)
    learners_answer["From"] = f"Kari Nordmann <{LEARNER}>"
    learners_answer["To"] = reply_address
    learners_answer["Subject"] = "Re: " + sent["Subject"]
    learners_answer["Message-ID"] = make_msgid(domain="mail.example.no")
    learners_answer["In-Reply-To"] = sent["Message-ID"]
    learners_answer["References"] = f"{first_id} {sent['Message-ID']}"
    learners_answer.set_content(
        "Tusen takk, nå fant jeg det!\n\n" + "\n".join("> " + line for line in text.splitlines())
    )
    dovecot.append(learners_answer.as_bytes())

    async def ingest(raw: bytes, source: str):  # type: ignore[no-untyped-def]
        return await ingest_raw(runtime, raw, source)

    fetched = await MailFetcher(
        dovecot.imap_settings(), runtime.sessions, ingest, AioImapMailbox
    ).run_once()
    assert fetched == 1
    async with runtime.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        inbound = (
            await session.scalars(
                select(Message)
                .where(Message.ticket_id == ticket.id, Message.direction == "inbound")
                .order_by(Message.id)
            )
        ).all()
    assert ticket.status == "open"
    assert len(inbound) == 2
    assert inbound[-1].thread_reason.startswith("message-id")
    assert inbound[-1].reply_text.strip() == "Tusen takk, nå fant jeg det!"
