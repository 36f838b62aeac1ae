"""suppressed addresses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:11:35.112679

The suppression list of hard-bounced addresses (issue 4 item 5). Only this table: the
delivery log (`delivery_attempts`) has a revision of its own.

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressed_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbound_email_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbound_email_id"],
            ["outbound_emails.id"],
            name=op.f("fk_suppressed_addresses_outbound_email_id_outbound_emails"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressed_addresses")),
        sa.UniqueConstraint("address", name=op.f("uq_suppressed_addresses_address")),
    )


def downgrade() -> None:
    op.drop_table("suppressed_addresses")
