"""The audit log: who did what to which record, without personal content."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import JsonDocument, UtcDateTime, empty_dict


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    # "operator:12", "platform", "system", "learner:34" — an id, never an address.
    actor: str = Field(max_length=100)
    action: str = Field(max_length=100)
    # "ticket:1042", "learner:34", …
    target: str = Field(max_length=100)
    details: dict[str, Any] = Field(default_factory=empty_dict, sa_type=JsonDocument)
