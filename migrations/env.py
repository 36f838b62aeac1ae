"""Alembic environment: runs migrations through an async engine on SQLite or PostgreSQL.

The database URL comes from `helpdesk.migrate.alembic_config` (config attribute
"database_url"); the plain `alembic` command falls back to HELPDESK_DATABASE_URL through
the application's own settings.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import pool, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401 - registers every table on SQLModel.metadata
from helpdesk.config import load_settings
from helpdesk.models.search import is_search_object

config = context.config
target_metadata = SQLModel.metadata

# An arbitrary constant: PostgreSQL migrators queue behind each other on this lock.
MIGRATION_LOCK_ID = 7_204_512_233

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url: str | None = config.attributes.get("database_url")
    return url or load_settings().database_url


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write column types so that a revision imports nothing from the application.

    TypeDecorators (UtcDateTime, SQLModel's AutoString) become their plain SQL type.
    JSONB is spelt out because autogenerate against SQLite renders it as a bare repr
    (`astext_type=Text()`, an undefined name in the revision).
    """
    if type_ != "type":
        return False
    if isinstance(obj, TypeDecorator) and type(obj.impl).__module__.startswith("sqlalchemy.sql"):
        return f"sa.{obj.impl!r}"
    if isinstance(obj, JSONB):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "postgresql.JSONB()"
    return False


def include_object(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
    """Autogenerate leaves the hand-made search objects alone (helpdesk/models/search.py)."""
    table = getattr(getattr(obj, "table", None), "name", None)
    return not is_search_object(name, type_, table)


def configure_context(**kwargs: Any) -> None:
    is_sqlite = make_url(database_url()).get_backend_name() == "sqlite"
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=is_sqlite,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    configure_context(url=database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    configure_context(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Released at commit; a second `helpdesk migrate` waits, then finds head.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def run_async_migrations() -> None:
    # No app engine: that one turns SQLite foreign keys on, and batch mode's table copies
    # must not fire ON DELETE CASCADE when they drop the old table.
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
