"""The transactional outbox of outgoing mail and its delivery state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import JsonDocument, UtcDateTime, empty_list

DELIVERY_STATUSES = ("queued", "sent", "retrying", "failed", "bounced")


class OutboundEmail(SQLModel, table=True):
    __tablename__ = "outbound_emails"
    __table_args__ = (Index("ix_outbound_emails_status_next_attempt", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # The operator message this mail carries; null for notifications not tied to a message.
    message_id: int | None = Field(
        default=None, foreign_key="messages.id", ondelete="SET NULL", index=True
    )
    ticket_id: int | None = Field(
        default=None, foreign_key="tickets.id", ondelete="SET NULL", index=True
    )
    kind: str = Field(default="reply", max_length=30)
    recipients: list[str] = Field(default_factory=empty_list, sa_type=JsonDocument)
    # Our Message-ID, fixed when the row is written (without angle brackets).
    rfc_message_id: str = Field(max_length=998, unique=True)
    # The complete RFC 5322 message, so a resend is byte-identical.
    raw: bytes | None = Field(default=None, sa_type=LargeBinary)
    status: str = Field(default="queued", max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_type=UtcDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_reply: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class SuppressedAddress(SQLModel, table=True):
    """An address we stop mailing automatically after a hard bounce, until an operator lifts it."""

    __tablename__ = "suppressed_addresses"

    id: int | None = Field(default=None, primary_key=True)
    # Lower-cased, one row per address.
    address: str = Field(max_length=320, unique=True)
    reason: str = Field(max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # The outgoing mail whose hard bounce put the address here; null when added by hand.
    outbound_email_id: int | None = Field(
        default=None, foreign_key="outbound_emails.id", ondelete="SET NULL"
    )


DELIVERY_ATTEMPT_STATUSES = ("accepted", "deferred", "rejected")


class DeliveryAttempt(SQLModel, table=True):
    """One recipient's outcome of one delivery attempt: the delivery log (kept 12 months).

    `accepted` (the relay took it), `deferred` (temporary failure, tried again later) or
    `rejected` (permanent failure); `reply` is the relay's answer or what went wrong.
    """

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    outbound_email_id: int = Field(
        foreign_key="outbound_emails.id", ondelete="CASCADE", index=True
    )
    attempt: int
    recipient: str = Field(max_length=320)
    status: str = Field(max_length=10)
    reply: str | None = Field(default=None, sa_type=Text)
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
