"""Inbound mail as received: the raw bytes' record, and the IMAP fetch position."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

INGEST_STATUSES = ("created", "appended", "quarantined", "ignored")


class InboundMail(SQLModel, table=True):
    """One received message, stored raw before (or with) anything parsed from it.

    Deduplication (DESIGN §7): the same Message-ID from the same sender, else the same
    SHA-256 of the raw bytes. The raw bytes are kept in the row (`raw`) when the message
    is small, as nearly all support mail is, else in file storage under `storage_path`
    (helpdesk/inbound/raw_mail.py); exactly one of the two is set.
    """

    __tablename__ = "inbound_mail"
    __table_args__ = (
        Index("ux_inbound_mail_sender_message_id", "sender", "rfc_message_id", unique=True),
        Index("ix_inbound_mail_status_received", "status", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    storage_path: str | None = Field(default=None, max_length=500)
    raw: bytes | None = Field(default=None, sa_type=LargeBinary)
    size: int
    source: str = Field(max_length=200)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    rfc_message_id: str | None = Field(default=None, max_length=998)
    sender: str | None = Field(default=None, max_length=320)
    status: str = Field(max_length=12)
    reason: str = Field(default="", max_length=1000)
    machine: str | None = Field(default=None, max_length=20)
    ticket_id: int | None = Field(
        default=None, foreign_key="tickets.id", ondelete="SET NULL", index=True
    )
    message_id: int | None = Field(
        default=None, foreign_key="messages.id", ondelete="SET NULL", index=True
    )


class MailboxCursor(SQLModel, table=True):
    """How far `helpdesk fetch-mail` has read a mailbox (RFC 3501 UIDVALIDITY + last UID)."""

    __tablename__ = "mailbox_cursors"
    __table_args__ = (UniqueConstraint("account", "mailbox"),)

    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(max_length=400)
    mailbox: str = Field(max_length=400)
    # RFC 3501: both are unsigned 32-bit numbers, beyond a signed INTEGER.
    uidvalidity: int = Field(sa_type=BigInteger)
    last_uid: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
