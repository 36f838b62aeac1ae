"""Learners and their course enrolments, as synced from the course platform."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

LOCALES = ("nb", "nn", "en")


class Learner(SQLModel, table=True):
    __tablename__ = "learners"
    __table_args__ = (
        # Work lists leave restricted learners' tickets out and read their ids on every
        # page: a partial index keeps that a lookup, not a scan of every learner (0010).
        Index(
            "ix_learners_restricted",
            "id",
            sqlite_where=text("restricted_at IS NOT NULL"),
            postgresql_where=text("restricted_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=200, unique=True)
    email: str = Field(max_length=320)
    # Lower-cased address: the unique key, so Kari@Example.no and kari@example.no are one learner.
    email_key: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=300)
    locale: str = Field(default="nb", max_length=5)
    organisation: str | None = Field(default=None, max_length=300)
    restricted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    erased_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Enrolment(SQLModel, table=True):
    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("learner_id", "course"),)

    id: int | None = Field(default=None, primary_key=True)
    learner_id: int = Field(foreign_key="learners.id", ondelete="CASCADE", index=True)
    course: str = Field(max_length=200)
    progress_percent: int = Field(default=0)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    certificate_number: str | None = Field(default=None, max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
