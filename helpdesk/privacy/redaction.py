"""Other people's tickets that mention an erased learner, and redacting them in one click.

At erasure time we record *where* the learner's name or address appears (positions, not
the text), so the list survives the erasure without keeping what was erased; an operator
then replaces each place with "[slettet]".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage, content_address
from helpdesk.audit.service import record_event
from helpdesk.errors import NotFound
from helpdesk.inbound.raw_mail import read_raw
from helpdesk.models import InboundMail, Message, PrivacyRedaction, PrivacyRequest, Ticket
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.purge import ERASED, delete_unreferenced_files

MESSAGE_FIELDS = ("text", "reply_text", "html", "author_name", "author_email")
TICKET_FIELDS = ("subject", "requester_name")
# `field` of a position in a stored raw message: "raw:<inbound_mail id>", byte offsets.
RAW_FIELD = "raw:"


def _pattern(needles: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(n) for n in needles if n.strip()), re.IGNORECASE)


def _spans(value: str | None, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(value or "")]


async def record_mentions(
    session: AsyncSession,
    storage: FileStorage,
    request: PrivacyRequest,
    needles: Sequence[str],
    *,
    exclude_ticket_ids: Collection[int],
) -> list[int]:
    """Record where `needles` appear in tickets outside `exclude_ticket_ids`; their ids."""
    needles = [n for n in needles if n and n.strip()]
    if not needles:
        return []
    assert request.id is not None
    pattern = _pattern(needles)
    lowered = [n.lower() for n in needles]
    found: set[int] = set()

    def like_any(column: Any) -> ColumnElement[bool]:
        return or_(*(func.lower(column).contains(n, autoescape=True) for n in lowered))

    messages = await session.scalars(
        select(Message).where(
            col(Message.ticket_id).not_in(exclude_ticket_ids),
            or_(*(like_any(getattr(Message, f)) for f in MESSAGE_FIELDS)),
        )
    )
    for message in messages:
        for field in MESSAGE_FIELDS:
            for start, stop in _spans(getattr(message, field), pattern):
                session.add(
                    PrivacyRedaction(
                        request_id=request.id,
                        ticket_id=message.ticket_id,
                        message_id=message.id,
                        field=field,
                        start=start,
                        stop=stop,
                    )
                )
                found.add(message.ticket_id)
    tickets = await session.scalars(
        select(Ticket).where(
            col(Ticket.id).not_in(exclude_ticket_ids),
            or_(
                like_any(Ticket.subject),
                like_any(Ticket.requester_name),
                like_any(cast(Ticket.participants, Text)),
            ),
        )
    )
    for ticket in tickets:
        assert ticket.id is not None
        for field in TICKET_FIELDS:
            for start, stop in _spans(getattr(ticket, field), pattern):
                session.add(
                    PrivacyRedaction(
                        request_id=request.id,
                        ticket_id=ticket.id,
                        field=field,
                        start=start,
                        stop=stop,
                    )
                )
                found.add(ticket.id)
        for index, address in enumerate(ticket.participants):
            if address.lower() in lowered:
                session.add(
                    PrivacyRedaction(
                        request_id=request.id,
                        ticket_id=ticket.id,
                        field="participants",
                        start=index,
                        stop=index,
                    )
                )
                found.add(ticket.id)
    await _record_raw_mentions(session, storage, request, needles, found)
    await session.flush()
    return sorted(found)


async def _record_raw_mentions(
    session: AsyncSession,
    storage: FileStorage,
    request: PrivacyRequest,
    needles: Sequence[str],
    ticket_ids: set[int],
) -> None:
    # The raw mail behind those tickets names the learner too (body, Cc, signature): its
    # byte positions, so redaction can rewrite the stored message as well.
    assert request.id is not None
    pattern = re.compile(b"|".join(re.escape(n.encode()) for n in needles), re.IGNORECASE)
    raw_mail = await session.scalars(
        select(InboundMail).where(col(InboundMail.ticket_id).in_(ticket_ids))
    )
    for inbound in raw_mail:
        raw = read_raw(storage, inbound)
        if inbound.ticket_id is None or raw is None:
            continue
        for match in pattern.finditer(raw):
            session.add(
                PrivacyRedaction(
                    request_id=request.id,
                    ticket_id=inbound.ticket_id,
                    field=f"{RAW_FIELD}{inbound.id}",
                    start=match.start(),
                    stop=match.end(),
                )
            )


async def pending_mentions(session: AsyncSession, request: PrivacyRequest) -> list[int]:
    """Ticket numbers that still mention the erased learner (not yet redacted)."""
    result = await session.scalars(
        select(col(Ticket.number))
        .join(PrivacyRedaction, col(PrivacyRedaction.ticket_id) == col(Ticket.id))
        .where(
            col(PrivacyRedaction.request_id) == request.id,
            col(PrivacyRedaction.redacted_at).is_(None),
        )
        .distinct()
        .order_by(col(Ticket.number))
    )
    return list(result)


async def redact_ticket(
    session: AsyncSession,
    storage: FileStorage,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    actor: str,
    now: datetime,
) -> int:
    """Replace every recorded mention in this ticket with "[slettet]"; how many."""
    rows = list(
        await session.scalars(
            select(PrivacyRedaction).where(
                col(PrivacyRedaction.request_id) == request.id,
                col(PrivacyRedaction.ticket_id) == ticket.id,
                col(PrivacyRedaction.redacted_at).is_(None),
            )
        )
    )
    if not rows:
        raise NotFound(f"Nothing to redact in ticket #{ticket.number}.")
    groups: dict[tuple[int | None, str], list[PrivacyRedaction]] = {}
    for row in rows:
        groups.setdefault((row.message_id, row.field), []).append(row)
    for (message_id, field), spans in groups.items():
        if field.startswith(RAW_FIELD):
            await _redact_raw(session, storage, int(field.removeprefix(RAW_FIELD)), spans)
        else:
            owner = ticket if message_id is None else await session.get(Message, message_id)
            if owner is not None:
                _apply(owner, field, spans)
        for row in spans:
            row.redacted_at = now
    ticket.updated_at = now
    await record_event(
        session,
        actor,
        "privacy.mentions_redacted",
        request_target(request),
        ticket=ticket.number,
        places=len(rows),
    )
    return len(rows)


def _apply(owner: Ticket | Message, field: str, spans: list[PrivacyRedaction]) -> None:
    value = getattr(owner, field)
    if field == "participants":
        drop = {row.start for row in spans}
        setattr(owner, field, [a for i, a in enumerate(value) if i not in drop])
        return
    # Right to left, so earlier positions stay valid.
    for row in sorted(spans, key=lambda r: r.start, reverse=True):
        value = value[: row.start] + ERASED + value[row.stop :]
    setattr(owner, field, value)


async def _redact_raw(
    session: AsyncSession, storage: FileStorage, inbound_id: int, spans: list[PrivacyRedaction]
) -> None:
    inbound = await session.get(InboundMail, inbound_id)
    raw = read_raw(storage, inbound) if inbound is not None else None
    if inbound is None or raw is None:
        return
    for row in sorted(spans, key=lambda r: r.start, reverse=True):
        raw = raw[: row.start] + ERASED.encode() + raw[row.stop :]
    if inbound.raw is not None:  # kept in the row: rewritten in place
        stored = content_address("raw", raw)
        inbound.raw, inbound.sha256, inbound.size = raw, stored.sha256, stored.size
        return
    old_path = inbound.storage_path
    stored = storage.put("raw", raw)
    inbound.storage_path, inbound.sha256, inbound.size = stored.path, stored.sha256, stored.size
    await session.flush()
    await delete_unreferenced_files(session, storage, {old_path})
