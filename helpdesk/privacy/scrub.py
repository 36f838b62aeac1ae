"""The last step of an erasure: once the confirmation mail has gone, the request's own
ticket and every mail of it are reduced to a content-free record, and the database files
are compacted so that erased text does not linger in free pages or the WAL.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import FileStorage
from helpdesk.audit.service import record_event
from helpdesk.bootstrap import Runtime
from helpdesk.config import Settings
from helpdesk.db import transaction
from helpdesk.models import OutboundEmail, PrivacyLink, PrivacyRequest, Ticket, WidgetConversation
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.purge import ERASED, delete_message_content, scrub_outbound

log = logging.getLogger(__name__)

# Mail that has reached a final state: sent, or given up on.
_SETTLED = ("sent", "failed", "bounced")
# Tables an erasure rewrites; PostgreSQL vacuums them afterwards.
ERASURE_TABLES = (
    "tickets",
    "messages",
    "attachments",
    "inbound_mail",
    "outbound_emails",
    "delivery_attempts",
    "learners",
    "enrolments",
    "orders",
    "widget_conversations",
    "verification_codes",
    "privacy_requests",
    "privacy_redactions",
    "suppressed_addresses",
)


async def finish_erasures(runtime: Runtime) -> int:
    """Scrub every completed erasure whose mail has settled; compacts the database once."""
    async with transaction(runtime.sessions) as session:
        waiting = list(
            await session.scalars(
                select(col(PrivacyRequest.id)).where(
                    col(PrivacyRequest.status) == "completed",
                    col(PrivacyRequest.scrubbed_at).is_(None),
                    col(PrivacyRequest.outcome).like("Erased%"),
                )
            )
        )
    done = 0
    for request_id in waiting:
        async with transaction(runtime.sessions) as session:
            request = await session.get(PrivacyRequest, request_id)
            if request is not None and await scrub_request(
                session, runtime.settings, runtime.storage, request, now=runtime.clock.now()
            ):
                done += 1
    if done:
        await compact_database(runtime.engine)
    return done


async def scrub_request(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    request: PrivacyRequest,
    *,
    now: datetime,
) -> bool:
    """Reduce the request's ticket to a record once its mail has settled; False if not yet."""
    unsettled = await session.scalar(
        select(col(OutboundEmail.id))
        .where(
            col(OutboundEmail.ticket_id) == request.ticket_id,
            col(OutboundEmail.status).not_in(_SETTLED),
        )
        .limit(1)
    )
    if unsettled is not None:
        return False
    ticket = await session.get(Ticket, request.ticket_id)
    assert ticket is not None
    outbound_ids = list(
        await session.scalars(
            select(col(OutboundEmail.id)).where(col(OutboundEmail.ticket_id) == ticket.id)
        )
    )
    # Keep the outbox rows (kind, dates, status) but nothing of their content.
    await scrub_outbound(session, settings, outbound_ids)
    await delete_message_content(session, settings, storage, [ticket.id or 0], keep_outbound=True)
    await session.execute(
        delete(WidgetConversation).where(col(WidgetConversation.ticket_id) == ticket.id)
    )
    await session.execute(delete(PrivacyLink).where(col(PrivacyLink.request_id) == request.id))
    ticket.subject = ticket.requester = ERASED
    ticket.requester_name, ticket.learner_id = None, None
    ticket.participants, ticket.tags = [], []
    ticket.updated_at = now
    request.learner_id, request.scrubbed_at, request.updated_at = None, now, now
    await record_event(session, "system", "privacy.request_scrubbed", request_target(request))
    return True


async def compact_database(engine: AsyncEngine) -> None:
    """Leave no erased text in the files: SQLite checkpoints its WAL (secure_delete is on
    for every connection) and optimises full-text indexes; PostgreSQL vacuums."""
    try:
        if engine.dialect.name == "sqlite":
            await _compact_sqlite(engine)
        else:
            await _vacuum_postgres(engine)
    except Exception:  # compaction is hygiene; the erasure itself has committed
        log.exception("database compaction after an erasure failed")


async def _compact_sqlite(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        names = list(
            await connection.scalars(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%USING fts%'"
                )
            )
        )
        for name in names:
            await connection.execute(text(f'INSERT INTO "{name}"("{name}") VALUES (\'optimize\')'))
        await connection.commit()
        await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        await connection.commit()


async def _vacuum_postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        existing = set(
            await autocommit.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        )
        for table in ERASURE_TABLES:
            if table in existing:
                await autocommit.execute(text(f'VACUUM "{table}"'))
