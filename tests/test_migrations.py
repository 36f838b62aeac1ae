"""Migrations bring an empty database to the models' schema, on SQLite and PostgreSQL.

These tests start from an empty database of their own (conftest's PostgreSQL database
already has its schema made by create_all, which would prove nothing here).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401 - registers every table
from helpdesk.migrate import alembic_config, upgrade_database
from helpdesk.models.search import SEARCH_TABLES, is_search_object

MODEL_TABLES = set(SQLModel.metadata.tables)


def _not_search_object(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
    # FTS5 tables and tsvector columns are made by hand (helpdesk/models/search.py).
    table = getattr(getattr(obj, "table", None), "name", None)
    return not is_search_object(name, type_, table)


async def _on_server(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all; for SQLite not even its folder exists yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'not-yet' / 'helpdesk.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_server_url")
    name = f"helpdesk_migrate_{uuid.uuid4().hex[:10]}"
    await _on_server(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _inspect(url: str, look: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - SEARCH_TABLES


def _differences_from_models(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": _not_search_object}
    )
    return compare_metadata(context, SQLModel.metadata)


def _add_operator(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO operators (email, email_key, name, role, active, created_at) VALUES "
            "('kari@kurs.example', 'kari@kurs.example', 'Kari', 'agent', true, CURRENT_TIMESTAMP)"
        )
    )


def _operator_count(connection: Connection) -> int:
    return connection.execute(text("SELECT count(*) FROM operators")).scalar_one()


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def test_upgrade_brings_empty_database_to_head_and_second_run_changes_nothing(
    empty_database_url: str,
) -> None:
    await upgrade_database(empty_database_url)

    assert await _inspect(empty_database_url, _current_revision) == _head(empty_database_url)
    assert await _inspect(empty_database_url, _table_names) == MODEL_TABLES | {"alembic_version"}

    await _inspect(empty_database_url, _add_operator)
    await upgrade_database(empty_database_url)

    assert await _inspect(empty_database_url, _current_revision) == _head(empty_database_url)
    assert await _inspect(empty_database_url, _operator_count) == 1


async def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    await upgrade_database(empty_database_url)

    assert await _inspect(empty_database_url, _differences_from_models) == []


async def test_downgrade_to_base_and_upgrade_again_gives_the_same_schema(
    empty_database_url: str,
) -> None:
    await upgrade_database(empty_database_url)
    config = alembic_config(empty_database_url)

    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _inspect(empty_database_url, _table_names) == {"alembic_version"}
    assert await _inspect(empty_database_url, _current_revision) is None

    await upgrade_database(empty_database_url)
    assert await _inspect(empty_database_url, _differences_from_models) == []


async def test_concurrent_upgrades_in_one_process_take_turns(empty_database_url: str) -> None:
    await asyncio.gather(*(upgrade_database(empty_database_url) for _ in range(3)))

    assert await _inspect(empty_database_url, _current_revision) == _head(empty_database_url)


def _helpdesk_migrate(database_url: str, data_dir: Path) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_DATA_DIR": str(data_dir),
        "HELPDESK_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "migrate"],
        cwd=data_dir.parent,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# On PostgreSQL several `helpdesk migrate` may start together (compose, rolling deploys);
# SQLite is migrated only by the single `helpdesk serve` before it starts its workers.
@pytest.mark.postgres
@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
def test_concurrent_migrate_commands_on_postgresql_wait_for_each_other(
    empty_database_url: str, tmp_path: Path
) -> None:
    commands = [_helpdesk_migrate(empty_database_url, tmp_path / "var") for _ in range(3)]

    errors = [process.communicate(timeout=120)[1] for process in commands]

    assert [process.returncode for process in commands] == [0, 0, 0], errors
    revision = asyncio.run(_inspect(empty_database_url, _current_revision))
    assert revision == _head(empty_database_url)


def test_helpdesk_migrate_command_prepares_an_empty_sqlite_file(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"

    process = _helpdesk_migrate(database_url, tmp_path / "var")
    _, errors = process.communicate(timeout=120)

    assert process.returncode == 0, errors
    assert "latest revision" in errors
    tables = asyncio.run(_inspect(database_url, _table_names))
    assert tables == MODEL_TABLES | {"alembic_version"}
