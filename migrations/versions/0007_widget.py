"""widget

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:40:00

Widget conversations, their tokens and one-time verification codes (issue 6).

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "widget_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification_method", sa.String(length=20), nullable=True),
        sa.Column("last_displayed_message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["learner_id"],
            ["learners.id"],
            name=op.f("fk_widget_conversations_learner_id_learners"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_widget_conversations_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widget_conversations")),
        sa.UniqueConstraint("public_id", name=op.f("uq_widget_conversations_public_id")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_widget_conversations_ticket_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_widget_conversations_token_hash")),
    )
    with op.batch_alter_table("widget_conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_widget_conversations_learner_id"), ["learner_id"], unique=False
        )

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["widget_conversations.id"],
            name=op.f("fk_verification_codes_conversation_id_widget_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_codes_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_verification_codes_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_codes_created_at"))
        batch_op.drop_index(batch_op.f("ix_verification_codes_conversation_id"))
    op.drop_table("verification_codes")
    with op.batch_alter_table("widget_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_widget_conversations_learner_id"))
    op.drop_table("widget_conversations")
