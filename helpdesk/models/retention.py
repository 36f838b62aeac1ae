"""Retention bookkeeping: tombstones of expired threads, the record of runs, and job leases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import JsonDocument, UtcDateTime

RUN_STATUSES = ("running", "finished", "interrupted")


class TicketTombstone(SQLModel, table=True):
    """What is left of an expired ticket: no content, only that it existed (DESIGN §7).

    Threading treats it like a closed ticket: a late reply opens a new ticket that
    refers to the number and restores nothing.
    """

    __tablename__ = "ticket_tombstones"

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True)
    channel: str = Field(max_length=10)
    # "2024-02": the month the ticket was opened, no finer.
    created_month: str = Field(max_length=7)
    expired_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)


class RetentionRun(SQLModel, table=True):
    """One real run of the retention policy and what it deleted per category."""

    __tablename__ = "retention_runs"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # The instant the policy was applied at (`--now`, else the start).
    policy_now: datetime = Field(sa_type=UtcDateTime)
    status: str = Field(default="running", max_length=12)
    # "cli", "schedule" or "inbox".
    trigger: str = Field(default="cli", max_length=20)
    # {"<category>": {"count", "oldest", "newest"}} as in the report of DESIGN §5.
    categories: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDocument)
    # Ticket numbers skipped for a legal hold or an open privacy request.
    held: list[int] = Field(default_factory=list, sa_type=JsonDocument)


class JobLease(SQLModel, table=True):
    """A named lease so that one job (retention) never runs twice at once.

    A runner takes the row when it is free or its lease has run out, renews it while it
    works, and releases it at the end; a runner that died frees it when `expires_at` passes.
    """

    __tablename__ = "job_leases"

    name: str = Field(max_length=100, primary_key=True)
    holder: str = Field(max_length=200)
    acquired_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)
