"""Course orders, as synced from the course platform."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

ORDER_STATUSES = ("pending", "paid", "refunded", "cancelled")


class Order(SQLModel, table=True):
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=100, unique=True)
    # Nullable: after an erasure only the bookkeeping fields remain, with no learner.
    learner_id: int | None = Field(
        default=None, foreign_key="learners.id", ondelete="SET NULL", index=True
    )
    course: str | None = Field(default=None, max_length=200)
    amount_minor: int
    currency: str = Field(max_length=3)
    status: str = Field(max_length=20)
    purchased_at: datetime = Field(sa_type=UtcDateTime)
    buyer_org_number: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
