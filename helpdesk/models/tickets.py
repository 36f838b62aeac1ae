"""Tickets: the support threads, their public numbers and the orders they concern."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import JsonDocument, UtcDateTime, empty_list

STATUSES = ("new", "open", "pending", "solved", "closed")
CHANNELS = ("email", "widget", "form")
PRIORITIES = ("low", "normal", "high", "urgent")


def queue_indexes() -> list[Index]:
    """Partial indexes of the inbox queues (same SQL on SQLite and PostgreSQL)."""
    active = text("status IN ('new', 'open', 'pending')")
    waiting = text("status IN ('new', 'open')")
    unassigned = text("assignee_id IS NULL AND status IN ('new', 'open')")

    def partial(name: str, where: Any, *columns: str) -> Index:
        return Index(name, *columns, sqlite_where=where, postgresql_where=where)

    return [
        partial("ix_tickets_unassigned_activity", unassigned, "last_message_at", "id"),
        partial("ix_tickets_waiting_activity", waiting, "last_message_at", "id"),
        partial("ix_tickets_assignee_activity", active, "assignee_id", "last_message_at", "id"),
        # Counts of the active queues and the breach queue read only this index.
        partial(
            "ix_tickets_active_service",
            active,
            "status",
            "assignee_id",
            "needs_review",
            "first_response_due_at",
            "first_response_at",
            "resolution_due_at",
            "id",
        ),
    ]


class TicketNumber(SQLModel, table=True):
    """Allocates public ticket numbers: one autoincrement row per number.

    An insert is atomic on both databases, so concurrent creators never share a number;
    a rolled-back transaction leaves a gap, which the contract allows.
    """

    __tablename__ = "ticket_numbers"
    __table_args__ = {"sqlite_autoincrement": True}

    number: int | None = Field(default=None, primary_key=True)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_last_message_at", "status", "last_message_at"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        # The inbox's queues (migration 0010): each a partial index in the queue's order,
        # so a page (and a cursor deep into it) is an index range scan.
        *queue_indexes(),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True)
    subject: str = Field(max_length=998)
    status: str = Field(default="new", max_length=10)
    channel: str = Field(default="email", max_length=10)
    priority: str = Field(default="normal", max_length=10)
    learner_id: int | None = Field(
        default=None, foreign_key="learners.id", ondelete="SET NULL", index=True
    )
    # The address the ticket is from, lower-cased; participants are the other To/Cc addresses.
    requester: str = Field(max_length=320, index=True)
    requester_name: str | None = Field(default=None, max_length=300)
    participants: list[str] = Field(default_factory=empty_list, sa_type=JsonDocument)
    assignee_id: int | None = Field(default=None, foreign_key="operators.id", ondelete="SET NULL")
    tags: list[str] = Field(default_factory=empty_list, sa_type=JsonDocument)
    needs_review: bool = Field(default=False)
    # The earlier (closed or expired) ticket a message referred to when this one was opened.
    refers_to: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # Latest human message (learner or operator); see DESIGN §7. Drives retention.
    last_message_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    legal_hold_reason: str | None = Field(default=None, max_length=500)
    legal_hold_until: date | None = Field(default=None)
    # Service levels (helpdesk.tickets.service_levels): due times and when they were met.
    first_response_due_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    first_response_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolution_due_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class TicketOrder(SQLModel, table=True):
    """A ticket may concern several orders; an order may come up in several tickets."""

    __tablename__ = "ticket_orders"

    ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", primary_key=True)
    order_id: int = Field(
        foreign_key="orders.id", ondelete="CASCADE", primary_key=True, index=True
    )
