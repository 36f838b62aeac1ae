"""Deleting a learner's records for good: tickets with everything hanging off them, raw
mail, outgoing mail with its delivery log and .eml copies, and the files behind them.

Files are content-addressed, so one file may back several rows: a file is only deleted
when no remaining row refers to it (e.g. the same PDF attached to another live ticket).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.smtp import eml_filename
from helpdesk.adapters.storage import FileStorage
from helpdesk.config import Settings
from helpdesk.models import (
    Attachment,
    InboundMail,
    Message,
    OutboundEmail,
    PrivacyLink,
    PrivacyRequest,
    Ticket,
)
from helpdesk.models.outbound import DeliveryAttempt

ERASED = "[slettet]"


async def delete_tickets(
    session: AsyncSession, settings: Settings, storage: FileStorage, ticket_ids: Collection[int]
) -> None:
    """Delete tickets with their messages, attachments, raw mail and outgoing mail."""
    if not ticket_ids:
        return
    await delete_export_files(session, storage, ticket_ids)
    await delete_message_content(session, settings, storage, ticket_ids)
    # Messages, attachments, widget conversations (and their codes), ticket–order links
    # and privacy cases go with the ticket (ON DELETE CASCADE).
    await session.execute(delete(Ticket).where(col(Ticket.id).in_(ticket_ids)))


async def export_files_of(session: AsyncSession, ticket_ids: Collection[int]) -> list[str]:
    """Export ZIPs (paths under the data dir) of these tickets' privacy requests.

    Whoever deletes tickets deletes these files too (erasure here, thread expiry in
    `helpdesk.retention.expiry`); the links themselves go with the tickets (ON DELETE
    CASCADE through the privacy request), so no file is left without its row.
    """
    if not ticket_ids:
        return []
    paths = await session.scalars(
        select(col(PrivacyLink.file_path))
        .join(PrivacyRequest, col(PrivacyRequest.id) == col(PrivacyLink.request_id))
        .where(
            col(PrivacyRequest.ticket_id).in_(ticket_ids), col(PrivacyLink.file_path).is_not(None)
        )
    )
    return [path for path in paths if path]


def remove_export_files(storage: FileStorage, paths: Iterable[str]) -> int:
    """Delete these export ZIPs from the file storage; how many were there."""
    removed = 0
    for path in paths:
        if storage.exists(path):
            storage.delete(path)
            removed += 1
    return removed


async def delete_export_files(
    session: AsyncSession, storage: FileStorage, ticket_ids: Collection[int]
) -> None:
    """Export ZIPs of the tickets' privacy requests (their links go with the tickets)."""
    remove_export_files(storage, await export_files_of(session, ticket_ids))


async def delete_message_content(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    ticket_ids: Collection[int],
    *,
    keep_outbound: bool = False,
) -> None:
    """Delete the tickets' messages, attachments, raw mail and outgoing mail (not the tickets);
    `keep_outbound` leaves the (already scrubbed) outbox rows as a record."""
    message_ids = list(
        await session.scalars(select(col(Message.id)).where(col(Message.ticket_id).in_(ticket_ids)))
    )
    attachment_paths: set[str | None] = set(
        await session.scalars(
            select(col(Attachment.storage_path)).where(col(Attachment.message_id).in_(message_ids))
        )
    )
    raw_paths = set(
        await session.scalars(
            select(col(InboundMail.storage_path)).where(col(InboundMail.ticket_id).in_(ticket_ids))
        )
    )
    await session.execute(delete(InboundMail).where(col(InboundMail.ticket_id).in_(ticket_ids)))
    if not keep_outbound:
        outbound_ids = list(
            await session.scalars(
                select(col(OutboundEmail.id)).where(col(OutboundEmail.ticket_id).in_(ticket_ids))
            )
        )
        await delete_outbound(session, settings, outbound_ids)
    await session.execute(delete(Message).where(col(Message.id).in_(message_ids)))
    await session.flush()
    await delete_unreferenced_files(session, storage, attachment_paths | raw_paths)


async def delete_inbound_mail(
    session: AsyncSession, storage: FileStorage, rows: Iterable[InboundMail]
) -> None:
    """Delete raw-mail rows (e.g. ignored machine mail from the learner) and their files."""
    rows = list(rows)
    for row in rows:
        await session.delete(row)
    await session.flush()
    await delete_unreferenced_files(session, storage, {row.storage_path for row in rows})


async def delete_outbound(
    session: AsyncSession, settings: Settings, ids: Collection[int | None]
) -> None:
    """Delete outgoing mail rows (the delivery log cascades) and their .eml copies."""
    if not ids:
        return
    for raw in await session.scalars(
        select(col(OutboundEmail.raw)).where(col(OutboundEmail.id).in_(ids))
    ):
        remove_eml_copy(settings, raw)
    await session.execute(delete(OutboundEmail).where(col(OutboundEmail.id).in_(ids)))


async def scrub_outbound(
    session: AsyncSession, settings: Settings, ids: Collection[int | None]
) -> None:
    """Reduce outgoing mail to a content-free record: kind, dates and delivery status."""
    if not ids:
        return
    for raw in await session.scalars(
        select(col(OutboundEmail.raw)).where(col(OutboundEmail.id).in_(ids))
    ):
        remove_eml_copy(settings, raw)
    await session.execute(
        update(OutboundEmail)
        .where(col(OutboundEmail.id).in_(ids))
        .values(raw=None, recipients=[], last_reply=None, message_id=None)
    )
    await session.execute(
        update(DeliveryAttempt)
        .where(col(DeliveryAttempt.outbound_email_id).in_(ids))
        .values(recipient=ERASED, reply=None)
    )


def remove_eml_copy(settings: Settings, raw: bytes | None) -> None:
    """Embedded mode delivers into `<data dir>/outbox/*.eml`: those copies go too."""
    if raw is None or settings.smtp is not None:
        return
    (Path(settings.data_dir) / "outbox" / f"{eml_filename(raw)}.eml").unlink(missing_ok=True)


async def delete_unreferenced_files(
    session: AsyncSession, storage: FileStorage, paths: set[str | None]
) -> None:
    """Delete the files no remaining attachment or raw-mail row refers to.

    None stands for a row without a file (raw mail kept in its row) and is skipped.
    """
    files = {path for path in paths if path}
    if not files:
        return
    still_used = set(
        await session.scalars(
            select(col(Attachment.storage_path)).where(col(Attachment.storage_path).in_(files))
        )
    ) | set(
        await session.scalars(
            select(col(InboundMail.storage_path)).where(col(InboundMail.storage_path).in_(files))
        )
    )
    for path in sorted(files - still_used):
        storage.delete(path)
