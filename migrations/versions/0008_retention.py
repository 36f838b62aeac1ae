"""retention

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 00:40:00

Thread tombstones, retention runs and the job lease (issue 8).

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ticket_tombstones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("created_month", sa.String(length=7), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_tombstones")),
        sa.UniqueConstraint("number", name=op.f("uq_ticket_tombstones_number")),
    )
    with op.batch_alter_table("ticket_tombstones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_tombstones_expired_at"), ["expired_at"], unique=False
        )

    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy_now", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("categories", _JSON, nullable=False),
        sa.Column("held", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_runs")),
    )
    with op.batch_alter_table("retention_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_runs_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    with op.batch_alter_table("retention_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_runs_started_at"))
    op.drop_table("retention_runs")
    with op.batch_alter_table("ticket_tombstones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_tombstones_expired_at"))
    op.drop_table("ticket_tombstones")
