"""Writing the audit log: actions on records, never personal content."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models import AuditEvent


async def record_event(
    session: AsyncSession, actor: str, action: str, target: str, **details: Any
) -> AuditEvent:
    """Add an audit event in the caller's transaction; `details` must be content-free."""
    event = AuditEvent(actor=actor, action=action, target=target, details=details)
    session.add(event)
    return event
