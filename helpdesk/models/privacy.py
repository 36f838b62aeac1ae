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
    # Erasure: when the request's own ticket and confirmation mail were scrubbed to a record.
    scrubbed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


LINK_PURPOSES = ("verify", "export")


class PrivacyLink(SQLModel, table=True):
    """A single-purpose link mailed to the learner: confirm a request, or download an export.

    Only the SHA-256 of the token is stored; the token itself exists only in the mail.
    """

    __tablename__ = "privacy_links"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", ondelete="CASCADE", index=True)
    purpose: str = Field(max_length=10)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    downloads: int = Field(default=0)
    max_downloads: int = Field(default=1)
    # The export ZIP under the data dir (purpose "export"); deleted when the link expires.
    file_path: str | None = Field(default=None, max_length=500)


PLATFORM_EVENT_TYPES = ("learner.erasure_requested", "learner.rectified")


class PlatformEvent(SQLModel, table=True):
    """The outbox of signed webhook events to the course platform, retried until a 2xx."""

    __tablename__ = "platform_events"
    __table_args__ = (Index("ix_platform_events_status_next_attempt", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # The event's public id (the "id" of the JSON body), so the platform can deduplicate.
    event_id: str = Field(max_length=64, unique=True)
    type: str = Field(max_length=40)
    external_id: str = Field(max_length=200)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    # "pending" until acknowledged, then "delivered".
    status: str = Field(default="pending", max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class PrivacyRedaction(SQLModel, table=True):
    """Where an erased learner's name or address still appears in someone else's ticket.

    Positions only (content-free): `field` of the message (or of the ticket when
    `message_id` is null) from `start` to `stop`; a list field (participants) uses `start`
    as the index. An operator redacts them with one click, to "[slettet]".
    """

    __tablename__ = "privacy_redactions"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", ondelete="CASCADE", index=True)
    ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", index=True)
    # Indexed: deleting a message (retention, erasure) looks its redactions up by it.
    message_id: int | None = Field(
        default=None, foreign_key="messages.id", ondelete="CASCADE", index=True
    )
    field: str = Field(max_length=30)
    start: int
    stop: int
    redacted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
