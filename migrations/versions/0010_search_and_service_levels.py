"""search and service levels

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 00:40:00

Inbox queues, full-text search and service levels (issue 5, items 2 and 5):

- tickets get their service-level due times (first response, resolution) and the times
  they were met;
- partial indexes in each queue's order, so a queue page and a cursor deep into it are
  index range scans, and the queue counts read one small index; restricted learners
  (left out of every work list) found by a partial index;
- full-text search. PostgreSQL: the configuration `helpdesk_search` (Norwegian stemming,
  behind `unaccent` where the extension can be installed), stored generated `search_vector`
  columns with GIN indexes. SQLite: FTS5 external-content tables kept in step by triggers,
  filled from the existing rows.

The search objects are spelt out here (not imported) so this revision keeps meaning what
it meant; helpdesk/models/search.py makes the same objects for `create_all`, and
tests/test_search.py searches a migrated database on both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('new', 'open', 'pending')"
WAITING = "status IN ('new', 'open')"
UNASSIGNED = "assignee_id IS NULL AND status IN ('new', 'open')"
MACHINE = "machine IS NOT NULL"
RESTRICTED = "restricted_at IS NOT NULL"

_CONFIG = """
DO $$
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS unaccent;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'unaccent is not available: search without accent folding';
  END;
  IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'helpdesk_search') THEN
    CREATE TEXT SEARCH CONFIGURATION helpdesk_search (COPY = pg_catalog.norwegian);
    IF EXISTS (SELECT 1 FROM pg_ts_dict WHERE dictname = 'unaccent') THEN
      ALTER TEXT SEARCH CONFIGURATION helpdesk_search
        ALTER MAPPING FOR hword, hword_part, word WITH unaccent, norwegian_stem;
    END IF;
  END IF;
END
$$
"""
_TICKET_VECTOR = (
    "setweight(to_tsvector('helpdesk_search', coalesce(subject, '')), 'A') || "
    "setweight(to_tsvector('helpdesk_search', coalesce(requester_name, '') || ' ' || "
    "requester || ' ' || regexp_replace(coalesce(requester, ''), '[@.+_-]+', ' ', 'g')), 'B')"
)
_MESSAGE_VECTOR = (
    "setweight(to_tsvector('helpdesk_search', coalesce(author_name, '') || ' ' || "
    "coalesce(author_email, '') || ' ' || "
    "regexp_replace(coalesce(author_email, ''), '[@.+_-]+', ' ', 'g')), 'B') || "
    "setweight(to_tsvector('helpdesk_search', left(text, 200000)), 'C')"
)
_POSTGRES = [
    _CONFIG,
    "ALTER TABLE tickets ADD COLUMN search_vector tsvector "
    f"GENERATED ALWAYS AS ({_TICKET_VECTOR}) STORED",
    "CREATE INDEX ix_tickets_search_vector ON tickets USING gin (search_vector)",
    "ALTER TABLE messages ADD COLUMN search_vector tsvector "
    f"GENERATED ALWAYS AS ({_MESSAGE_VECTOR}) STORED",
    "CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)",
]
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"
_SQLITE = [
    "CREATE VIRTUAL TABLE ticket_search USING fts5(subject, requester_name, requester, "
    f"content = 'tickets', content_rowid = 'id', {_TOKENIZE})",
    """CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets BEGIN
  INSERT INTO ticket_search (rowid, subject, requester_name, requester)
  VALUES (new.id, new.subject, new.requester_name, new.requester);
END""",
    """CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN
  INSERT INTO ticket_search (ticket_search, rowid, subject, requester_name, requester)
  VALUES ('delete', old.id, old.subject, old.requester_name, old.requester);
END""",
    """CREATE TRIGGER ticket_search_update AFTER UPDATE OF subject, requester_name, requester
ON tickets BEGIN
  INSERT INTO ticket_search (ticket_search, rowid, subject, requester_name, requester)
  VALUES ('delete', old.id, old.subject, old.requester_name, old.requester);
  INSERT INTO ticket_search (rowid, subject, requester_name, requester)
  VALUES (new.id, new.subject, new.requester_name, new.requester);
END""",
    "CREATE VIRTUAL TABLE message_search USING fts5(text, author_name, author_email, "
    f"content = 'messages', content_rowid = 'id', {_TOKENIZE})",
    """CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
  INSERT INTO message_search (rowid, text, author_name, author_email)
  VALUES (new.id, new.text, new.author_name, new.author_email);
END""",
    """CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
  INSERT INTO message_search (message_search, rowid, text, author_name, author_email)
  VALUES ('delete', old.id, old.text, old.author_name, old.author_email);
END""",
    """CREATE TRIGGER message_search_update AFTER UPDATE OF text, author_name, author_email
ON messages BEGIN
  INSERT INTO message_search (message_search, rowid, text, author_name, author_email)
  VALUES ('delete', old.id, old.text, old.author_name, old.author_email);
  INSERT INTO message_search (rowid, text, author_name, author_email)
  VALUES (new.id, new.text, new.author_name, new.author_email);
END""",
    # Index what is already there.
    "INSERT INTO ticket_search (ticket_search) VALUES ('rebuild')",
    "INSERT INTO message_search (message_search) VALUES ('rebuild')",
]


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for name in (
            "first_response_due_at",
            "first_response_at",
            "resolution_due_at",
            "resolved_at",
        ):
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_tickets_unassigned_activity", ["last_message_at", "id"], **_partial(UNASSIGNED)
        )
        batch_op.create_index(
            "ix_tickets_waiting_activity", ["last_message_at", "id"], **_partial(WAITING)
        )
        batch_op.create_index(
            "ix_tickets_assignee_activity",
            ["assignee_id", "last_message_at", "id"],
            **_partial(ACTIVE),
        )
        batch_op.create_index(
            "ix_tickets_active_service",
            [
                "status",
                "assignee_id",
                "needs_review",
                "first_response_due_at",
                "first_response_at",
                "resolution_due_at",
                "id",
            ],
            **_partial(ACTIVE),
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_machine_ticket", ["ticket_id"], **_partial(MACHINE))
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.create_index("ix_learners_restricted", ["id"], **_partial(RESTRICTED))

    statements = _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages DROP COLUMN search_vector")
        op.execute("ALTER TABLE tickets DROP COLUMN search_vector")
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS helpdesk_search")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS message_search_{trigger}")
            op.execute(f"DROP TRIGGER IF EXISTS ticket_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS message_search")
        op.execute("DROP TABLE IF EXISTS ticket_search")

    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.drop_index("ix_learners_restricted", **_partial(RESTRICTED))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_machine_ticket", **_partial(MACHINE))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_active_service", **_partial(ACTIVE))
        batch_op.drop_index("ix_tickets_assignee_activity", **_partial(ACTIVE))
        batch_op.drop_index("ix_tickets_waiting_activity", **_partial(WAITING))
        batch_op.drop_index("ix_tickets_unassigned_activity", **_partial(UNASSIGNED))
        for name in (
            "resolved_at",
            "resolution_due_at",
            "first_response_at",
            "first_response_due_at",
        ):
            batch_op.drop_column(name)
