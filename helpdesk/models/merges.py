"""Merged tickets: which ticket a merged (closed) ticket lives on in.

Mail that threads to the merged ticket by its signed Message-IDs or reply address is filed
into the surviving ticket (see `helpdesk.tickets.merge.surviving_ticket`).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime


class TicketMerge(SQLModel, table=True):
    __tablename__ = "ticket_merges"

    id: int | None = Field(default=None, primary_key=True)
    source_ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", unique=True)
    target_ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", index=True)
    operator_id: int | None = Field(default=None, foreign_key="operators.id", ondelete="SET NULL")
    merged_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
