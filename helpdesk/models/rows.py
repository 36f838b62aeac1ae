"""Rows written with SQLAlchemy Core on hot paths (ingest: bench/ingest.py).

The ORM's unit of work costs more than the INSERT it issues for a small row (building
the instance, tracking its attributes, sorting the flush). Where nothing reads the row
back as an object, `insert_row` writes it directly. Values the model would fill in from
its field defaults are filled in the same way, so the row is the one the ORM would write.

A session can go further with `defer_inserts`: rows that nothing reads back before the
commit (`insert_later`: audit events, the inbound-mail record, a queued acknowledgement)
are then written together when it commits — on PostgreSQL in one statement, each
table's rows as one data-modifying WITH clause — instead of a round trip each.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Insert, Table, bindparam, event, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlmodel import SQLModel

from helpdesk.db import execute_core

Row = dict[str, Any]


def row_values(model: type[SQLModel], values: Row) -> Row:
    """`values` completed with the model's defaults for the fields it leaves out."""
    row = dict(values)
    for name, default, factory in _defaults(model):
        if name not in row:
            row[name] = factory() if factory is not None else default
    return row


async def insert_row(session: AsyncSession, model: type[SQLModel], values: Row) -> int:
    """INSERT one row in the session's transaction; its new primary key.

    The row must not refer to objects still pending in the session (they are not flushed
    first).
    """
    statement = _insert(model, returning=True)
    result = await execute_core(session, statement, row_values(model, values))
    return int(result.scalar_one())


async def insert_instance(session: AsyncSession, instance: SQLModel) -> None:
    """INSERT a new instance's row and make it the session's persistent object for it.

    What `session.add(instance)` and a flush do, without the unit of work: later changes
    to the instance are flushed as UPDATEs as usual. As for `insert_row`, the instance
    must not refer to objects still pending in the session.
    """
    model = type(instance)
    instance.id = await insert_row(session, model, instance_values(instance))  # type: ignore[attr-defined]
    attach_inserted(session, instance)


def instance_values(instance: SQLModel) -> Row:
    """A new instance's column values, all but its primary key."""
    return {name: getattr(instance, name) for name in _columns(type(instance))}


def attach_inserted(session: AsyncSession, instance: SQLModel) -> None:
    """Make an instance whose row was just inserted (its key set) the session's object."""
    make_transient_to_detached(instance)  # its attributes are now the stored row
    session.add(instance)


def defer_inserts(session: AsyncSession) -> None:
    """From now on, write this session's `insert_later` rows together when it commits.

    A rolled-back transaction writes none of them.
    """
    session.info.setdefault(_DEFERRED, [])


def defers_inserts(session: AsyncSession) -> bool:
    """Whether `defer_inserts` was called for this session."""
    return _DEFERRED in session.info


async def insert_later(session: AsyncSession, model: type[SQLModel], values: Row) -> None:
    """INSERT a row that nothing reads back before the commit; its key is not needed.

    With `defer_inserts` it is written at the commit with the session's other such rows,
    else at once. Like `insert_row`, it must not refer to objects still pending.
    """
    deferred: list[tuple[Table, Row]] | None = session.info.get(_DEFERRED)
    if deferred is None:
        await execute_core(session, _insert(model, returning=False), row_values(model, values))
    else:
        deferred.append((model.__table__, row_values(model, values)))  # type: ignore[attr-defined]


_DEFERRED = "helpdesk.rows.deferred"
# More rows than this (a bulk job that defers) are written table by table instead: one
# statement per shape is compiled and kept, and a statement has at most 65,535 parameters.
_MAX_TOGETHER = 20


@event.listens_for(Session, "before_commit")
def _write_deferred(session: Session) -> None:
    deferred: list[tuple[Table, Row]] | None = session.info.get(_DEFERRED)
    if not deferred:
        return
    rows = list(deferred)
    deferred.clear()
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(rows) > _MAX_TOGETHER:
        # Runs of like rows, each as one executemany.
        for (table, _), run in itertools.groupby(rows, key=lambda r: (r[0], tuple(r[1]))):
            connection.execute(_insert_of(table), [row for _, row in run])
        return
    # In the order written, so parents come before children.
    shape = tuple((table, tuple(row)) for table, row in rows)
    params = {
        _parameter(n, key): value for n, (_, row) in enumerate(rows) for key, value in row.items()
    }
    connection.execute(_together(shape), params)


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    deferred = session.info.get(_DEFERRED)
    if deferred:
        deferred.clear()


@functools.lru_cache(maxsize=256)
def _together(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Insert:
    """One statement inserting every row, in order; built once per shape.

    Each row is a single-row INSERT (SQLAlchemy caches the compiled form of those, not of
    a many-row VALUES list) in a WITH clause that selects from the one before it:
    PostgreSQL runs the sub-statements of a WITH in no set order unless one reads
    another's output, and the rows' keys should follow the order they were written in.
    """
    previous = None
    for n, (table, keys) in enumerate(shape):
        values = [bindparam(_parameter(n, key), type_=table.c[key].type) for key in keys]
        if previous is None:
            row = insert(table).values(dict(zip(keys, values, strict=True)))
        else:
            row = insert(table).from_select(keys, select(*values).select_from(previous))
        if n == len(shape) - 1:
            return row
        previous = row.returning(literal_column("1").label("done")).cte(f"deferred_{n}")
    raise ValueError("no rows")


def _parameter(number: int, key: str) -> str:
    return f"r{number}_{key}"


@functools.cache
def _insert_of(table: Table) -> Insert:
    return insert(table)


@functools.cache
def _insert(model: type[SQLModel], *, returning: bool) -> Insert:
    table = model.__table__  # type: ignore[attr-defined]  # (SQLModel declares no type)
    statement = insert(table)
    return statement.returning(table.c.id) if returning else statement


@functools.cache
def _columns(model: type[SQLModel]) -> tuple[str, ...]:
    table = model.__table__  # type: ignore[attr-defined]
    return tuple(column.key for column in table.columns if column.key != "id")


@functools.cache
def _defaults(model: type[SQLModel]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """(field, default, default factory) of each field that has one; not the primary key."""
    found: list[tuple[str, Any, Callable[[], Any] | None]] = []
    for name, field in model.model_fields.items():
        if name == "id":
            continue  # the database assigns it
        if field.default_factory is not None:
            # Our factories take no arguments (pydantic's may take the validated data).
            found.append((name, None, field.default_factory))  # type: ignore[arg-type]
        elif field.default is not PydanticUndefined:
            found.append((name, field.default, None))
    return tuple(found)
