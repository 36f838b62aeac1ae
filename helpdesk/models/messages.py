"""Messages of a ticket (inbound mail, operator replies, internal notes) and attachments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

DIRECTIONS = ("inbound", "outbound", "note")
AUTHOR_KINDS = ("learner", "operator", "system", "unknown")
MACHINE_MARKS = ("auto-reply", "bounce", "list", "loop", "rate-limit")


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Message-IDs are unique per sender, not globally (DESIGN §7).
        Index("ux_messages_sender_message_id", "sender", "rfc_message_id", unique=True),
        Index("ix_messages_rfc_message_id", "rfc_message_id"),
        Index("ix_messages_ticket_created", "ticket_id", "created_at"),
        # The machine-mail queue and its count (migration 0010).
        Index(
            "ix_messages_machine_ticket",
            "ticket_id",
            sqlite_where=text("machine IS NOT NULL"),
            postgresql_where=text("machine IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE")
    direction: str = Field(max_length=10)
    author_kind: str = Field(default="unknown", max_length=10)
    author_name: str | None = Field(default=None, max_length=300)
    author_email: str | None = Field(default=None, max_length=320)
    operator_id: int | None = Field(default=None, foreign_key="operators.id", ondelete="SET NULL")
    text: str = Field(default="", sa_type=Text)
    reply_text: str = Field(default="", sa_type=Text)
    html: str | None = Field(default=None, sa_type=Text)
    # RFC 5322 Message-ID without angle brackets, and the lower-cased sender it is unique for.
    rfc_message_id: str | None = Field(default=None, max_length=998)
    sender: str | None = Field(default=None, max_length=320)
    in_reply_to: str | None = Field(default=None, sa_type=Text)
    references: str | None = Field(default=None, sa_type=Text)
    thread_reason: str | None = Field(default=None, max_length=500)
    machine: str | None = Field(default=None, max_length=20)
    # False when our MTA's Authentication-Results said dmarc=fail: the From may be forged.
    sender_verified: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Attachment(SQLModel, table=True):
    """A file of a message, stored once by SHA-256 under the data dir."""

    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", ondelete="CASCADE", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64, index=True)
    storage_path: str = Field(max_length=500)
    content_id: str | None = Field(default=None, max_length=500)
    inline: bool = Field(default=False)
