"""raw mail in its row

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 00:00:00

Small inbound messages keep their raw bytes in `inbound_mail.raw` instead of a file: one
durable commit instead of a file write, two fsyncs and a thread hand-off per message
(bench/ingest.py). Large ones stay in file storage, so `storage_path` becomes optional.
Rows written before this revision keep their files.

Written for SQLite (batch mode) and PostgreSQL alike; tests/test_migrations.py checks
that the migrated schema matches the models on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_mail") as batch:
        batch.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
        batch.alter_column("storage_path", existing_type=sa.String(length=500), nullable=True)


def downgrade() -> None:
    # The old schema has nowhere to keep bytes that live only in the database: refuse
    # rather than lose received mail.
    kept = op.get_bind().scalar(sa.text("SELECT count(*) FROM inbound_mail WHERE raw IS NOT NULL"))
    if kept:
        raise RuntimeError(
            f"{kept} received messages keep their raw bytes in the database; "
            "downgrading below 0012 would lose them"
        )
    with op.batch_alter_table("inbound_mail") as batch:
        batch.alter_column("storage_path", existing_type=sa.String(length=500), nullable=False)
        batch.drop_column("raw")
