"""Writing the audit log: actions on records, never personal content."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from helpdesk.models import AuditEvent
from helpdesk.models.rows import Row, insert_statement, row_values

_DEFERRED = "helpdesk.audit.deferred"


async def record_event(
    session: AsyncSession, actor: str, action: str, target: str, **details: Any
) -> None:
    """Add an audit event in the caller's transaction; `details` must be content-free."""
    deferred: list[Row] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        values = {"actor": actor, "action": action, "target": target, "details": details}
        deferred.append(row_values(AuditEvent, values))
    else:
        session.add(AuditEvent(actor=actor, action=action, target=target, details=details))


def defer_until_commit(session: AsyncSession) -> None:
    """Write this session's audit events together, in one INSERT when it commits.

    For hot paths (ingest) that record several events per transaction and never read
    them back before the commit; a rolled-back transaction writes none of them.
    """
    session.info.setdefault(_DEFERRED, [])


@event.listens_for(Session, "before_commit")
def _add_deferred(session: Session) -> None:
    deferred = session.info.get(_DEFERRED)
    if deferred:
        # As plain rows on the connection: nothing reads them back, so neither the ORM's
        # unit of work nor its execution layer is needed (the commit flushes the rest).
        session.connection().execute(insert_statement(AuditEvent), list(deferred))
        deferred.clear()


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    deferred = session.info.get(_DEFERRED)
    if deferred:
        deferred.clear()
