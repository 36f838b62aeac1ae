"""canned replies

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 00:40:00

Ticket-page additions (issue 5): canned replies with `{placeholder}` variables kept by
admins, and merged tickets (which ticket a merged one lives on in, so later mail that
threads to the merged ticket lands in the surviving one).

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["operators.id"],
            name=op.f("fk_canned_replies_created_by_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("title", name=op.f("uq_canned_replies_title")),
    )
    op.create_table(
        "ticket_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_ticket_id", sa.Integer(), nullable=False),
        sa.Column("target_ticket_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_ticket_merges_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_merges_source_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_merges_target_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_merges")),
        sa.UniqueConstraint("source_ticket_id", name=op.f("uq_ticket_merges_source_ticket_id")),
    )
    with op.batch_alter_table("ticket_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_merges_target_ticket_id"), ["target_ticket_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_merges_target_ticket_id"))
    op.drop_table("ticket_merges")
    op.drop_table("canned_replies")
