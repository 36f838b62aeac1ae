"""Thread expiry: tickets past the threads window are deleted, leaving a tombstone.

A ticket expires when its `last_message_at` is strictly more than N calendar months
before `now`, no legal hold is in force (a hold protects through its end date) and it has
no open privacy request. It goes with everything that holds its content: messages,
attachments and their files (unless another live row uses the same file), raw inbound
mail, outgoing mail (bodies and delivery logs), widget conversation, privacy case and
links, order links. A `TicketTombstone` keeps only number, channel and month opened.

Work happens in small batches: each batch re-checks the condition on locked rows inside
its own short transaction (a message that arrived after the dry run keeps its ticket),
so a run can stop anywhere, be resumed, and a second run finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.models import (
    Attachment,
    InboundMail,
    Message,
    OutboundEmail,
    PrivacyRequest,
    Ticket,
    TicketTombstone,
)
from helpdesk.models.privacy import OPEN_STATUSES
from helpdesk.privacy.purge import export_files_of, remove_export_files
from helpdesk.retention.policy import MonthsCutoff

BATCH_SIZE = 50


def protected(today: date) -> ColumnElement[bool]:
    """A legal hold in force (through its end date) or an open privacy request."""
    hold = and_(col(Ticket.legal_hold_until).is_not(None), col(Ticket.legal_hold_until) >= today)
    open_request = exists().where(
        col(PrivacyRequest.ticket_id) == col(Ticket.id),
        col(PrivacyRequest.status).in_(OPEN_STATUSES),
    )
    return or_(hold, open_request)


@dataclass
class ThreadSurvey:
    """What expiry would delete: the tickets' count and last-message range, and who is held."""

    count: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    held: list[int] = field(default_factory=list)


async def survey_threads(session: AsyncSession, cutoff: MonthsCutoff, today: date) -> ThreadSurvey:
    """Count the expirable tickets without changing anything (the dry run)."""
    certain = col(Ticket.last_message_at) < cutoff.before
    row = (
        await session.execute(
            select(
                func.count(), func.min(Ticket.last_message_at), func.max(Ticket.last_message_at)
            ).where(certain, ~protected(today))
        )
    ).one()
    survey = ThreadSurvey(count=row[0], oldest=row[1], newest=row[2])
    for at in await _clamped_days(session, cutoff, today):
        survey.count += 1
        survey.oldest = at if survey.oldest is None else min(survey.oldest, at)
        survey.newest = at if survey.newest is None else max(survey.newest, at)
    survey.held = await held_tickets(session, cutoff, today)
    return survey


async def _clamped_days(session: AsyncSession, cutoff: MonthsCutoff, today: date) -> list[datetime]:
    """Last-message times in the few month-end days that clamping may also expire."""
    if cutoff.maybe_until <= cutoff.before:
        return []
    rows = await session.scalars(
        select(col(Ticket.last_message_at)).where(
            col(Ticket.last_message_at) >= cutoff.before,
            col(Ticket.last_message_at) < cutoff.maybe_until,
            ~protected(today),
        )
    )
    return [at for at in rows if cutoff.includes(at)]


async def held_tickets(session: AsyncSession, cutoff: MonthsCutoff, today: date) -> list[int]:
    """Numbers of tickets past the window that a legal hold or open privacy request keeps."""
    rows = await session.execute(
        select(col(Ticket.number), col(Ticket.last_message_at))
        .where(col(Ticket.last_message_at) < cutoff.maybe_until, protected(today))
        .order_by(col(Ticket.number))
    )
    return [number for number, at in rows if cutoff.includes(at)]


async def next_expirable(
    session: AsyncSession,
    cutoff: MonthsCutoff,
    today: date,
    after: tuple[datetime, int] | None,
    limit: int = BATCH_SIZE,
) -> tuple[list[int], tuple[datetime, int] | None]:
    """Up to `limit` expirable ticket ids after the keyset position, and the next position."""
    query = select(col(Ticket.id), col(Ticket.last_message_at)).where(
        col(Ticket.last_message_at) < cutoff.maybe_until, ~protected(today)
    )
    if after is not None:
        at, ticket_id = after
        query = query.where(
            or_(
                col(Ticket.last_message_at) > at,
                and_(col(Ticket.last_message_at) == at, col(Ticket.id) > ticket_id),
            )
        )
    rows = (
        await session.execute(
            query.order_by(col(Ticket.last_message_at), col(Ticket.id)).limit(limit)
        )
    ).all()
    position = (rows[-1][1], rows[-1][0] or 0) if rows else None
    return [ticket_id or 0 for ticket_id, at in rows if cutoff.includes(at)], position


@dataclass
class ExpiredBatch:
    """What one batch deleted."""

    tickets: int = 0
    messages: int = 0
    files: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None


async def expire_tickets(
    session: AsyncSession,
    storage: FileStorage,
    ticket_ids: Sequence[int],
    *,
    data_dir: Path,
    cutoff: MonthsCutoff,
    today: date,
    now: datetime,
) -> ExpiredBatch:
    """Delete these tickets if they are (still) expirable, inside the caller's transaction.

    The rows are locked (PostgreSQL) and the condition checked again, so a ticket that got
    a message or a hold since it was picked stays. Files are removed last, after the rows.
    """
    tickets = await _lock_still_expirable(session, ticket_ids, cutoff, today)
    batch = ExpiredBatch()
    if not tickets:
        return batch
    ids = [t.id for t in tickets if t.id is not None]
    message_ids = select(col(Message.id)).where(col(Message.ticket_id).in_(ids))
    batch.messages = (
        await session.scalar(
            select(func.count()).select_from(Message).where(col(Message.ticket_id).in_(ids))
        )
    ) or 0
    files = await _files_of(session, ids, message_ids)
    exports = await export_files_of(session, ids)
    await session.execute(
        delete(InboundMail).where(
            or_(col(InboundMail.ticket_id).in_(ids), col(InboundMail.message_id).in_(message_ids))
        )
    )
    await session.execute(
        delete(OutboundEmail).where(
            or_(
                col(OutboundEmail.ticket_id).in_(ids),
                col(OutboundEmail.message_id).in_(message_ids),
            )
        )
    )
    # Messages, attachments, order links, privacy case and links, widget conversation and
    # its codes go by ON DELETE CASCADE.
    await session.execute(delete(Ticket).where(col(Ticket.id).in_(ids)))
    await session.execute(
        insert(TicketTombstone),
        [
            {
                "number": t.number,
                "channel": t.channel,
                "created_month": f"{t.created_at:%Y-%m}",
                "expired_at": now,
            }
            for t in tickets
        ],
    )
    batch.files = await delete_unused_files(session, storage, files)
    # Export ZIPs live in the file storage (data dir/files), like attachments.
    batch.files += remove_export_files(storage, exports)
    batch.tickets = len(tickets)
    batch.oldest = min(t.last_message_at for t in tickets)
    batch.newest = max(t.last_message_at for t in tickets)
    return batch


async def _lock_still_expirable(
    session: AsyncSession, ticket_ids: Sequence[int], cutoff: MonthsCutoff, today: date
) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket)
        .where(
            col(Ticket.id).in_(ticket_ids),
            col(Ticket.last_message_at) < cutoff.maybe_until,
            ~protected(today),
        )
        .order_by(col(Ticket.id))
        .with_for_update(of=Ticket)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    return [t for t in rows if cutoff.includes(t.last_message_at)]


async def _files_of(
    session: AsyncSession, ids: list[int], message_ids: Select[int | None]
) -> set[str]:
    """Storage paths of the tickets' attachments and raw mail (kept in a file)."""
    paths: set[str | None] = set()
    attachment_paths = await session.scalars(
        select(col(Attachment.storage_path)).where(col(Attachment.message_id).in_(message_ids))
    )
    paths.update(attachment_paths)
    raw_paths = await session.scalars(
        select(col(InboundMail.storage_path)).where(
            or_(col(InboundMail.ticket_id).in_(ids), col(InboundMail.message_id).in_(message_ids))
        )
    )
    paths.update(raw_paths)
    return {p for p in paths if p}


def remove_data_file(data_dir: Path, path: str) -> int:
    """Delete a file given relative to (or inside) the data dir; 1 if it was there."""
    root = data_dir.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ValueError("path escapes the data dir")
    try:
        target.unlink()
    except FileNotFoundError:
        return 0
    return 1


async def delete_unused_files(session: AsyncSession, storage: FileStorage, paths: set[str]) -> int:
    """Remove the files no remaining attachment or raw mail still points at; how many."""
    if not paths:
        return 0
    digests = {p.rsplit("/", 1)[-1] for p in paths}
    still_used: set[str] = set()
    still_used.update(
        await session.scalars(
            select(col(Attachment.storage_path)).where(col(Attachment.sha256).in_(digests))
        )
    )
    still_used.update(
        await session.scalars(
            select(col(InboundMail.storage_path)).where(col(InboundMail.sha256).in_(digests))
        )
    )
    removed = 0
    for path in sorted(paths - still_used):
        storage.delete(path)
        removed += 1
    return removed
