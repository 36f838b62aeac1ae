"""Canned replies: reusable answer texts with `{placeholder}` variables, kept by admins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime


class CannedReply(SQLModel, table=True):
    __tablename__ = "canned_replies"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200, unique=True)
    # Plain text with `{learner_name}`-style variables, filled in by simple substitution.
    body: str = Field(sa_type=Text)
    created_by_id: int | None = Field(default=None, foreign_key="operators.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
