"""Shared fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

PostgreSQL tests need `HELPDESK_TEST_DATABASE_URL` (a server URL such as
`postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`); each pytest run creates its own
database there and drops it afterwards, so parallel runs never see each other's rows.
Without the variable the PostgreSQL variants are skipped — except under `CI=true`, where a
missing or unreachable server fails the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401 - registers every table
from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.config import Settings

PLATFORM_KEY = "test-platform-key-0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdef"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _server_url() -> str | None:
    url = os.environ.get("HELPDESK_TEST_DATABASE_URL", "").strip()
    if not url and IN_CI:
        pytest.fail("CI=true but HELPDESK_TEST_DATABASE_URL is not set", pytrace=False)
    return url or None


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _create_schema(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The configured PostgreSQL server URL (skips, or fails under CI, without one)."""
    url = _server_url()
    if url is None:
        pytest.skip("HELPDESK_TEST_DATABASE_URL not set")
    yield url


@pytest.fixture(scope="session")
def postgres_database_url(postgres_server_url: str) -> Iterator[str]:
    """A private PostgreSQL database for this pytest run, with the schema created."""
    name = f"helpdesk_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL at HELPDESK_TEST_DATABASE_URL is unreachable: {exc}")
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_create_schema(url))
    yield url
    asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over both databases."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'helpdesk.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "var",
        secret_key=SECRET_KEY,
        platform_api_key=PLATFORM_KEY,
        support_address="support@kurs.example",
        base_url="http://testserver",
    )


async def reset_database(runtime: Runtime) -> None:
    """Empty schema on SQLite (created fresh), truncated tables on PostgreSQL."""
    async with runtime.engine.begin() as connection:
        if runtime.settings.is_sqlite:
            await connection.run_sync(SQLModel.metadata.create_all)
            return
        tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Wired collaborators on a clean database."""
    runtime = build_runtime(settings)
    await reset_database(runtime)
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the application in the test's own event loop.

    (Litestar's TestClient runs the app on another loop, which database connections
    pooled by the test cannot follow.) The runtime is closed by its own fixture.
    """
    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
