"""Factories of the retention tests: old threads with everything a thread holds."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import SQLModel

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import (
    Message,
    OutboundEmail,
    PrivacyRequest,
    Ticket,
)
from helpdesk.models.outbound import DeliveryAttempt
from helpdesk.models.widget import WidgetConversation
from helpdesk.operators import service as operators
from helpdesk.outbound.service import queue_reply
from helpdesk.tickets import service as tickets
from tests.factories import learner_mail
from tests.mail_factory import make_mail

# The instant most tests apply the policy at.
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


async def old_ticket(runtime: Runtime, last_message_at: datetime, **fields: object) -> Ticket:
    """A one-message ticket whose last message was at `last_message_at`."""
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session,
            subject="Kursbevis mangler",
            channel="email",
            requester="kari@example.no",
            requester_name="Kari Nordmann",
            first_message=learner_mail(),
            now=last_message_at,
        )
        for name, value in fields.items():
            setattr(ticket, name, value)
    return ticket


@dataclass
class FullThread:
    """A ticket made the way production makes one, and the names of what it holds."""

    number: int
    ticket_id: int
    reply_message_id: str  # our signed Message-ID of the operator's reply
    files: list[str]  # storage paths of its raw mail and attachments
    export_file: str  # a privacy export under the data dir


async def full_thread(
    runtime: Runtime,
    at: datetime,
    *,
    attachment: bytes | None = None,
    sender: str = "kari",
    large: bool = False,
) -> FullThread:
    """An emailed ticket with an attachment, an operator reply with its delivery log,
    a widget conversation and a completed privacy request with an export file.

    `large` adds a scanned certificate, which makes the raw mail large enough to be kept
    in a file rather than in its row."""
    runtime.clock = FrozenClock(at)
    content = attachment or secrets.token_bytes(64)
    files = [("kvittering.pdf", "application/pdf", content, None)]
    if large:
        files.append(("skann.pdf", "application/pdf", secrets.token_bytes(300 * 1024), None))
    raw = make_mail(sender=f"Kari <{sender}@example.no>", attachments=files)
    result = await ingest_raw(runtime, raw, "test")
    assert result.status == "created" and result.ticket is not None
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, result.ticket)
        operator = await operators.create_operator(
            session, f"op-{secrets.token_hex(3)}@kurs.example", "Ola Agent", "agent", None
        )
        queued = await queue_reply(
            session, runtime.settings, runtime.storage, ticket, operator, "Her er beviset.", now=at
        )
        assert queued.outbound is not None and queued.outbound.id is not None
        session.add(
            DeliveryAttempt(
                outbound_email_id=queued.outbound.id,
                attempt=1,
                recipient=f"{sender}@example.no",
                status="accepted",
                reply="250 OK",
                attempted_at=at,
            )
        )
        session.add(
            WidgetConversation(
                public_id=secrets.token_hex(8),
                ticket_id=ticket.id,
                token_hash=secrets.token_hex(32),
                name="Kari",
                email=f"{sender}@example.no",
            )
        )
        request = PrivacyRequest(
            ticket_id=ticket.id, kind="access", status="completed", due_at=at + timedelta(days=30)
        )
        session.add(request)
        await session.flush()
        # Where the privacy export puts its ZIPs: the file storage's "exports" area.
        export = runtime.storage.put("exports", f"PK export {secrets.token_hex(8)}".encode()).path
        links = SQLModel.metadata.tables["privacy_links"]
        await session.execute(
            links.insert().values(
                request_id=request.id,
                purpose="export",
                token_hash=secrets.token_hex(32),
                created_at=at,
                expires_at=at + timedelta(days=7),
                downloads=0,
                max_downloads=1,
                file_path=export,
            )
        )
        files = await _storage_paths(session, ticket.id)
        assert ticket.id is not None
        return FullThread(ticket.number, ticket.id, queued.outbound.rfc_message_id, files, export)


async def _storage_paths(session, ticket_id):  # type: ignore[no-untyped-def]
    from helpdesk.models import Attachment, InboundMail

    attachment_paths = await session.scalars(
        select(Attachment.storage_path)
        .join(Message, Message.id == Attachment.message_id)
        .where(Message.ticket_id == ticket_id)
    )
    raw_paths = await session.scalars(
        select(InboundMail.storage_path).where(InboundMail.ticket_id == ticket_id)
    )
    return sorted({*attachment_paths, *raw_paths} - {None})  # small raw mail has no file


async def rows_of_ticket(runtime: Runtime, ticket_id: int) -> dict[str, int]:
    """How many rows of each table still belong to the ticket (directly or through a row)."""
    from helpdesk.models import Attachment, InboundMail

    message_ids = select(Message.id).where(Message.ticket_id == ticket_id)
    outbound_ids = select(OutboundEmail.id).where(OutboundEmail.ticket_id == ticket_id)
    checks = {
        "tickets": select(func.count()).select_from(Ticket).where(Ticket.id == ticket_id),
        "messages": select(func.count()).select_from(Message).where(Message.ticket_id == ticket_id),
        "attachments": select(func.count())
        .select_from(Attachment)
        .where(Attachment.message_id.in_(message_ids)),
        "inbound_mail": select(func.count())
        .select_from(InboundMail)
        .where(InboundMail.ticket_id == ticket_id),
        "outbound_emails": select(func.count())
        .select_from(OutboundEmail)
        .where(OutboundEmail.ticket_id == ticket_id),
        "delivery_attempts": select(func.count())
        .select_from(DeliveryAttempt)
        .where(DeliveryAttempt.outbound_email_id.in_(outbound_ids)),
        "widget_conversations": select(func.count())
        .select_from(WidgetConversation)
        .where(WidgetConversation.ticket_id == ticket_id),
        "privacy_requests": select(func.count())
        .select_from(PrivacyRequest)
        .where(PrivacyRequest.ticket_id == ticket_id),
    }
    async with runtime.sessions() as session:
        return {name: (await session.scalar(query)) or 0 for name, query in checks.items()}


async def count_rows(runtime: Runtime, model: type[SQLModel]) -> int:
    async with runtime.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model))) or 0


def tomorrow(now: datetime = NOW) -> date:
    return (now + timedelta(days=1)).date()
