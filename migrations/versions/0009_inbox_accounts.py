"""inbox accounts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 00:40:00

Inbox accounts (issue 5): the TOTP second factor and its recovery codes, the email
notifications an operator opts in to, and the one-time password-setup link an admin
hands to a new operator.

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_assigned", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "notify_learner_reply", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("mail_locale", sa.String(length=5), server_default="nb", nullable=False)
        )
        batch_op.add_column(sa.Column("password_setup_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("password_setup_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_operators_password_setup_hash"), ["password_setup_hash"]
        )

    op.create_table(
        "second_factors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_second_factors_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_factors")),
        sa.UniqueConstraint("operator_id", name=op.f("uq_second_factors_operator_id")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_recovery_codes_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recovery_codes_operator_id"), ["operator_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_operator_id"))
    op.drop_table("recovery_codes")
    op.drop_table("second_factors")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_operators_password_setup_hash"), type_="unique")
        batch_op.drop_column("password_setup_expires_at")
        batch_op.drop_column("password_setup_hash")
        batch_op.drop_column("mail_locale")
        batch_op.drop_column("notify_learner_reply")
        batch_op.drop_column("notify_assigned")
