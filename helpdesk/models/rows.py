"""Rows written with SQLAlchemy Core on hot paths (ingest: bench/ingest.py).

The ORM's unit of work costs more than the INSERT it issues for a small row (building
the instance, tracking its attributes, sorting the flush). Where nothing reads the row
back as an object, `insert_row` writes it directly. Values the model would fill in from
its field defaults are filled in the same way, so the row is the one the ORM would write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
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
    values = {name: getattr(instance, name) for name in _columns(model)}
    instance.id = await insert_row(session, model, values)  # type: ignore[attr-defined]
    make_transient_to_detached(instance)  # its attributes are now the stored row
    session.add(instance)


def insert_statement(model: type[SQLModel]) -> Insert:
    """The model's plain INSERT, for executing many rows at once."""
    return _insert(model, returning=False)


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
