"""Driving privacy requests as a learner and an operator would: mail in, links, outbox."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default

import httpx
from sqlalchemy import select

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import AuditEvent, OutboundEmail, PrivacyRequest, Ticket
from tests.factories import T0
from tests.mail_factory import make_mail

NOW = T0 + timedelta(days=1)
KARI = "Kari Nordmann <kari@example.no>"


async def mail_in(
    runtime: Runtime, body: str, *, sender: str = KARI, subject: str = "Personvern", **kw
) -> int:
    """A learner's mail through the real ingest pipeline; the ticket number."""
    result = await ingest_raw(
        runtime, make_mail(sender=sender, subject=subject, body=body, **kw), "test"
    )
    assert result.status in ("created", "appended"), result
    assert result.ticket is not None
    return result.ticket


async def sent_mail(runtime: Runtime) -> list[tuple[list[str], EmailMessage]]:
    """Everything in the outbox, oldest first: (recipients, parsed message)."""
    async with transaction(runtime.sessions) as session:
        rows = list(await session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))
    return [
        (row.recipients, email.message_from_bytes(row.raw, policy=default))  # type: ignore[misc]
        for row in rows
        if row.raw is not None
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()  # type: ignore[no-any-return]


async def mail_to(runtime: Runtime, address: str) -> list[EmailMessage]:
    """The mail sent to this address, without acknowledgements (written when they fall due)."""
    return [
        m
        for recipients, m in await sent_mail(runtime)
        if address in recipients and not str(m["Subject"]).startswith("Auto:")
    ]


def link_in(message: EmailMessage, kind: str) -> str:
    """The path of the privacy link (`verify` or `exports`) in the mail's text."""
    found = re.search(rf"http://testserver(/privacy/{kind}/[A-Za-z0-9_-]+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


async def confirm_by_link(client: httpx.AsyncClient, path: str) -> None:
    """Open the link (GET changes nothing), then press the button (POST)."""
    page = await client.get(path)
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    confirmed = await client.post(path)
    assert confirmed.status_code == 200, confirmed.text


async def request_of(runtime: Runtime, number: int) -> PrivacyRequest | None:
    async with transaction(runtime.sessions) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        return await session.scalar(
            select(PrivacyRequest).where(PrivacyRequest.ticket_id == ticket.id)
        )


async def audit_actions(runtime: Runtime, prefix: str = "privacy.") -> list[str]:
    async with transaction(runtime.sessions) as session:
        events = await session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [e.action for e in events if e.action.startswith(prefix)]
