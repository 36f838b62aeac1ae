"""The full-text search schema: objects outside the models, made with the tables.

PostgreSQL: a text search configuration `helpdesk_search` (a copy of `norwegian`, with
`unaccent` in front of the Norwegian stemmer when the extension can be installed, so
"kjore" finds "kjøre"; plain `norwegian` stemming otherwise), and a stored generated
`search_vector` column with a GIN index on `tickets` (subject, requester's name and address)
and `messages` (author and text). SQLite: FTS5 external-content tables `ticket_search` and
`message_search`, kept in step by triggers, so every write path (ingest, replies, moves,
retention, erasure) updates them in the same transaction and a deleted row's words leave
the index with it.

Migration 0010 creates the same objects; `SEARCH_TABLES`/`SEARCH_COLUMNS` are what the
models-versus-migrations comparison leaves out.
"""

from __future__ import annotations

from sqlalchemy import DDL, event
from sqlalchemy.engine import Connection
from sqlalchemy.schema import MetaData, Table

SEARCH_CONFIG = "helpdesk_search"
# FTS5 tables and the shadow tables SQLite makes for them.
SEARCH_TABLES = frozenset(
    f"{name}{suffix}"
    for name in ("ticket_search", "message_search")
    for suffix in ("", "_config", "_data", "_docsize", "_idx", "_content")
)
SEARCH_COLUMNS = frozenset({("tickets", "search_vector"), ("messages", "search_vector")})
SEARCH_INDEXES = frozenset({"ix_tickets_search_vector", "ix_messages_search_vector"})


def is_search_object(name: str | None, type_: str, table: str | None = None) -> bool:
    """True for the search objects Alembic cannot see in the models (see module doc)."""
    if type_ == "table":
        return name in SEARCH_TABLES
    if type_ == "column":
        return (table, name) in SEARCH_COLUMNS
    return type_ == "index" and name in SEARCH_INDEXES


POSTGRES_CONFIG = f"""
DO $$
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS unaccent;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'unaccent is not available: search without accent folding';
  END;
  IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = '{SEARCH_CONFIG}') THEN
    CREATE TEXT SEARCH CONFIGURATION {SEARCH_CONFIG} (COPY = pg_catalog.norwegian);
    IF EXISTS (SELECT 1 FROM pg_ts_dict WHERE dictname = 'unaccent') THEN
      ALTER TEXT SEARCH CONFIGURATION {SEARCH_CONFIG}
        ALTER MAPPING FOR hword, hword_part, word WITH unaccent, norwegian_stem;
    END IF;
  END IF;
END
$$
"""


def _address_words(column: str) -> str:
    # The parser keeps an address as one token; its parts make "kari" find kari@x.no.
    return f"regexp_replace(coalesce({column}, ''), '[@.+_-]+', ' ', 'g')"


TICKET_VECTOR = (
    f"setweight(to_tsvector('{SEARCH_CONFIG}', coalesce(subject, '')), 'A') || "
    f"setweight(to_tsvector('{SEARCH_CONFIG}', coalesce(requester_name, '') || ' ' || "
    f"requester || ' ' || {_address_words('requester')}), 'B')"
)
# Texts are cut at 200,000 characters: a tsvector holds at most 1 MB.
MESSAGE_VECTOR = (
    f"setweight(to_tsvector('{SEARCH_CONFIG}', coalesce(author_name, '') || ' ' || "
    f"coalesce(author_email, '') || ' ' || {_address_words('author_email')}), 'B') || "
    f"setweight(to_tsvector('{SEARCH_CONFIG}', left(text, 200000)), 'C')"
)

POSTGRES_TICKETS = [
    f"ALTER TABLE tickets ADD COLUMN search_vector tsvector "
    f"GENERATED ALWAYS AS ({TICKET_VECTOR}) STORED",
    "CREATE INDEX ix_tickets_search_vector ON tickets USING gin (search_vector)",
]
POSTGRES_MESSAGES = [
    f"ALTER TABLE messages ADD COLUMN search_vector tsvector "
    f"GENERATED ALWAYS AS ({MESSAGE_VECTOR}) STORED",
    "CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)",
]

# unicode61 folds å/é/ü to a/e/u (not ø or æ, which Unicode does not decompose); the query
# side stems Norwegian words and matches them as prefixes (helpdesk.tickets.search_index).
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"
SQLITE_TICKETS = [
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
]
SQLITE_MESSAGES = [
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
]


def _run(statements: list[str], dialect: str):  # type: ignore[no-untyped-def]
    def create(target: Table | MetaData, connection: Connection, **_: object) -> None:
        if connection.dialect.name == dialect:
            for statement in statements:
                connection.execute(DDL(statement.replace("%", "%%")))

    return create


def register(metadata: MetaData) -> None:
    """Make the search objects whenever `create_all` makes the tables (tests, demo)."""
    event.listen(metadata, "before_create", _run([POSTGRES_CONFIG], "postgresql"))
    tickets, messages = metadata.tables["tickets"], metadata.tables["messages"]
    event.listen(tickets, "after_create", _run(POSTGRES_TICKETS, "postgresql"))
    event.listen(messages, "after_create", _run(POSTGRES_MESSAGES, "postgresql"))
    event.listen(tickets, "after_create", _run(SQLITE_TICKETS, "sqlite"))
    event.listen(messages, "after_create", _run(SQLITE_MESSAGES, "sqlite"))
