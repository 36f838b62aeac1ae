"""Database engine and session factories; nothing here touches the database at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Result, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, foreign keys and a busy timeout."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No JIT: on a large database the inbox's search and count statements cross
        # jit_above_cost, and compiling them took ~200 ms for queries that run in 1-20 ms
        # (bench/inbox.py); short OLTP statements never win that time back.
        # No pre-ping: it cost every transaction a round trip (a fifth of an ingest's
        # time, bench/ingest.py). A connection that died with the server fails its one
        # statement (a 503, or exit 75 for `helpdesk ingest`), and SQLAlchemy then
        # discards every pooled connection older than that failure; pool_recycle retires
        # connections before idle-connection timeouts of proxies and firewalls can.
        return create_async_engine(
            url,
            pool_recycle=1800,
            pool_size=10,
            max_overflow=10,
            connect_args={"server_settings": {"jit": "off"}},
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the inbox read while a writer commits; secure_delete overwrites erased
    # content in the file (privacy erasure must not leave text in free pages).
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "foreign_keys=ON",
        "synchronous=NORMAL",
        "busy_timeout=30000",
        "secure_delete=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_session_factory(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of this engine; `info` is copied into each (helpdesk.live keeps pub/sub there)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for reads that need no transaction around them.

    Each statement sees what was committed when it ran; there is no BEGIN and no ROLLBACK,
    two round trips fewer for a live stream that reads once per update.
    """
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


async def execute_core(
    session: AsyncSession, statement: Executable, params: Any = None
) -> Result[Any]:
    """Run a Core statement in the session's transaction, on its connection directly.

    Skips what `session.execute` adds for ORM statements — above all the autoflush of
    pending objects — which on hot paths (ingest) costs more than the statement. Only for
    statements that do not depend on objects still pending in the session.
    """
    connection = await session.connection()
    return await connection.execute(statement, params)


def is_service_unavailable(exc: BaseException) -> bool:
    """The database is unreachable, restarting or out of connections: retrying later may
    succeed (HTTP 503, `helpdesk ingest` exit 75), as opposed to a fault of ours."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # PostgreSQL SQLSTATE classes 08 (connection exception), 53 (insufficient resources,
    # e.g. too many connections) and 57 (operator intervention: shutting down, starting up).
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return exc.connection_invalidated or sqlstate[:2] in ("08", "53", "57")
