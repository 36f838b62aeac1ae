"""Privacy (GDPR) requests: the typed case attached to a ticket (DESIGN §7)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

KINDS = ("access", "rectification", "erasure", "restriction", "objection", "portability")
STATUSES = ("suggested", "awaiting_verification", "verified", "completed", "refused")
# "Open" means neither completed nor refused (DESIGN §7); open requests stop thread expiry.
OPEN_STATUSES = ("suggested", "awaiting_verification", "verified")


class PrivacyRequest(SQLModel, table=True):
    """One privacy request: which right, where it stands, and its legal deadline."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_status_due_at", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", unique=True)
    learner_id: int | None = Field(
        default=None, foreign_key="learners.id", ondelete="SET NULL", index=True
    )
    kind: str = Field(max_length=20)
    status: str = Field(default="suggested", max_length=25)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # One calendar month after receipt (GDPR art. 12(3)); an extension sets extended_until.
    due_at: datetime = Field(sa_type=UtcDateTime)
    extended_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    extension_reason: str | None = Field(default=None, sa_type=Text)
    verified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # "widget-identity", "email-link", "operator" or "unknown-requester".
    verification_method: str | None = Field(default=None, max_length=30)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
