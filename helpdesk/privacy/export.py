"""Access and portability (GDPR art. 15 and 20): everything we hold about the learner.

A ZIP with `data.json` (machine-readable, documented in `README.txt`), `summary.html`
(readable, in the learner's language) and the learner's attachments under `attachments/`.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import resources
from helpdesk.adapters.storage import FileStorage
from helpdesk.models import (
    Attachment,
    Enrolment,
    Learner,
    Message,
    Order,
    OutboundEmail,
    PrivacyRequest,
    Ticket,
)
from helpdesk.models.outbound import DeliveryAttempt
from helpdesk.outbound.headers import safe_filename
from helpdesk.outbound.templates import mail_locale

FORMAT_VERSION = 1
README = """Your data from our support service
===================================

data.json (UTF-8 JSON, format_version {version}) holds:

- generated_at: when this export was made (RFC 3339, UTC).
- scope: "learner" (everything linked to your learner account or registered address)
  or "ticket" (we could not link you to an account; we hold only this ticket).
- profile: external_id, name, email, locale, organisation, created_at (null for scope "ticket").
- restriction: restricted (true/false) and since: whether processing of your data is
  restricted, and from when.
- enrolments: course, progress_percent, completed_at, certificate_number.
- orders: number, course, amount_minor (in øre/cents), currency, status, purchased_at,
  buyer_org_number.
- tickets: number, subject, status, channel, created_at, last_message_at, and messages:
  id, direction (inbound = from you, outbound = from us, note = our internal note),
  author_kind, author_name, author_email, created_at, text, attachments (filename,
  content_type, size, file = the path inside this ZIP).
- outgoing_mail: the log of mail we sent you: ticket, kind, created_at, sent_at, status,
  recipients, delivery_attempts (attempted_at, recipient, status).
- privacy_requests: id, ticket, kind, status, received_at, due_at, extended_until,
  verified_at, completed_at, outcome.

summary.html is the same in readable form. attachments/ holds the files of your messages.
"""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


async def collect(
    session: AsyncSession, request: PrivacyRequest, own_ticket: Ticket, now: datetime
) -> dict[str, Any]:
    """The export document (without file contents)."""
    learner = await session.get(Learner, request.learner_id) if request.learner_id else None
    if learner is None:
        tickets = [own_ticket]
    else:
        tickets = list(
            await session.scalars(
                select(Ticket)
                .where(
                    or_(
                        col(Ticket.learner_id) == learner.id,
                        col(Ticket.requester) == learner.email_key,
                    )
                )
                .order_by(col(Ticket.number))
            )
        )
    ticket_ids = [t.id for t in tickets]
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": _iso(now),
        "scope": "learner" if learner else "ticket",
        "profile": _profile(learner),
        "restriction": {
            "restricted": bool(learner and learner.restricted_at),
            "since": _iso(learner.restricted_at) if learner else None,
        },
        "enrolments": await _enrolments(session, learner),
        "orders": await _orders(session, learner),
        # A requester we could not tie to a learner gets what they and we wrote, not our
        # internal notes about it (they may name others; the identity is unproven).
        "tickets": [await _ticket(session, t, notes=learner is not None) for t in tickets],
        "outgoing_mail": await _outgoing(session, ticket_ids),
        "privacy_requests": await _requests(session, learner, own_ticket, tickets),
    }


def _profile(learner: Learner | None) -> dict[str, Any] | None:
    if learner is None:
        return None
    return {
        "external_id": learner.external_id,
        "name": learner.name,
        "email": learner.email,
        "locale": learner.locale,
        "organisation": learner.organisation,
        "created_at": _iso(learner.created_at),
    }


async def _enrolments(session: AsyncSession, learner: Learner | None) -> list[dict[str, Any]]:
    if learner is None:
        return []
    rows = await session.scalars(
        select(Enrolment)
        .where(col(Enrolment.learner_id) == learner.id)
        .order_by(col(Enrolment.course))
    )
    return [
        {
            "course": e.course,
            "progress_percent": e.progress_percent,
            "completed_at": _iso(e.completed_at),
            "certificate_number": e.certificate_number,
        }
        for e in rows
    ]


async def _orders(session: AsyncSession, learner: Learner | None) -> list[dict[str, Any]]:
    if learner is None:
        return []
    rows = await session.scalars(
        select(Order).where(col(Order.learner_id) == learner.id).order_by(col(Order.purchased_at))
    )
    return [
        {
            "number": o.number,
            "course": o.course,
            "amount_minor": o.amount_minor,
            "currency": o.currency,
            "status": o.status,
            "purchased_at": _iso(o.purchased_at),
            "buyer_org_number": o.buyer_org_number,
        }
        for o in rows
    ]


async def _ticket(session: AsyncSession, ticket: Ticket, *, notes: bool) -> dict[str, Any]:
    query = select(Message).where(col(Message.ticket_id) == ticket.id)
    if not notes:
        query = query.where(col(Message.direction) != "note")
    messages = list(await session.scalars(query.order_by(col(Message.created_at), col(Message.id))))
    attachments: dict[int, list[Attachment]] = {}
    for a in await session.scalars(
        select(Attachment)
        .where(col(Attachment.message_id).in_([m.id for m in messages]))
        .order_by(col(Attachment.id))
    ):
        attachments.setdefault(a.message_id, []).append(a)
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status,
        "channel": ticket.channel,
        "created_at": _iso(ticket.created_at),
        "last_message_at": _iso(ticket.last_message_at),
        "messages": [
            {
                "id": m.id,
                "direction": m.direction,
                "author_kind": m.author_kind,
                "author_name": m.author_name,
                "author_email": m.author_email,
                "created_at": _iso(m.created_at),
                "text": m.text,
                "attachments": [_attachment(a) for a in attachments.get(m.id or 0, [])],
            }
            for m in messages
        ],
    }


def _attachment(a: Attachment) -> dict[str, Any]:
    return {
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "file": f"attachments/{a.id}-{safe_filename(a.filename)}",
        "storage_path": a.storage_path,
    }


async def _outgoing(session: AsyncSession, ticket_ids: list[int | None]) -> list[dict[str, Any]]:
    rows = list(
        await session.execute(
            select(
                col(OutboundEmail.id),
                col(OutboundEmail.ticket_id),
                col(OutboundEmail.kind),
                col(OutboundEmail.created_at),
                col(OutboundEmail.sent_at),
                col(OutboundEmail.status),
                col(OutboundEmail.recipients),
            )
            .where(col(OutboundEmail.ticket_id).in_(ticket_ids))
            .order_by(col(OutboundEmail.id))
        )
    )
    numbers = dict(
        (
            await session.execute(
                select(col(Ticket.id), col(Ticket.number)).where(col(Ticket.id).in_(ticket_ids))
            )
        )
        .tuples()
        .all()
    )
    attempts: dict[int | None, list[dict[str, Any]]] = {}
    for a in await session.scalars(
        select(DeliveryAttempt)
        .where(col(DeliveryAttempt.outbound_email_id).in_([r[0] for r in rows]))
        .order_by(col(DeliveryAttempt.id))
    ):
        attempts.setdefault(a.outbound_email_id, []).append(
            {"attempted_at": _iso(a.attempted_at), "recipient": a.recipient, "status": a.status}
        )
    return [
        {
            "ticket": numbers.get(ticket_id),
            "kind": kind,
            "created_at": _iso(created),
            "sent_at": _iso(sent),
            "status": status,
            "recipients": recipients,
            "delivery_attempts": attempts.get(row_id, []),
        }
        for row_id, ticket_id, kind, created, sent, status, recipients in rows
    ]


async def _requests(
    session: AsyncSession, learner: Learner | None, own_ticket: Ticket, tickets: list[Ticket]
) -> list[dict[str, Any]]:
    numbers = {t.id: t.number for t in tickets}
    condition: ColumnElement[bool] = col(PrivacyRequest.ticket_id).in_(list(numbers))
    if learner is not None:
        condition = or_(condition, col(PrivacyRequest.learner_id) == learner.id)
    rows = await session.scalars(
        select(PrivacyRequest).where(condition).order_by(col(PrivacyRequest.id))
    )
    return [
        {
            "id": r.id,
            "ticket": numbers.get(
                r.ticket_id, own_ticket.number if r.ticket_id == own_ticket.id else None
            ),
            "kind": r.kind,
            "status": r.status,
            "received_at": _iso(r.received_at),
            "due_at": _iso(r.due_at),
            "extended_until": _iso(r.extended_until),
            "verified_at": _iso(r.verified_at),
            "completed_at": _iso(r.completed_at),
            "outcome": r.outcome,
        }
        for r in rows
    ]


@cache
def _summary_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(resources.templates_dir()),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_zip(document: dict[str, Any], storage: FileStorage, locale: str | None) -> bytes:
    """The export ZIP: data.json, README.txt, summary.html and the attachment files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for ticket in document["tickets"]:
            for message in ticket["messages"]:
                for attachment in message["attachments"]:
                    path = attachment.pop("storage_path")
                    if storage.exists(path):
                        archive.writestr(attachment["file"], storage.read(path))
        archive.writestr("data.json", json.dumps(document, ensure_ascii=False, indent=2))
        archive.writestr("README.txt", README.format(version=FORMAT_VERSION))
        summary = _summary_environment().get_template("privacy/export_summary.html")
        archive.writestr("summary.html", summary.render(data=document, locale=mail_locale(locale)))
    return buffer.getvalue()
