"""Writing the audit log: actions on records, never personal content."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models import AuditEvent
from helpdesk.models.rows import defers_inserts, insert_later


async def record_event(
    session: AsyncSession, actor: str, action: str, target: str, **details: Any
) -> None:
    """Add an audit event in the caller's transaction; `details` must be content-free.

    In a session that defers its inserts (`helpdesk.models.rows.defer_inserts`: ingest,
    widget posts) the event is written at the commit with the other deferred rows.
    """
    if defers_inserts(session):
        values = {"actor": actor, "action": action, "target": target, "details": details}
        await insert_later(session, AuditEvent, values)
    else:
        session.add(AuditEvent(actor=actor, action=action, target=target, details=details))
