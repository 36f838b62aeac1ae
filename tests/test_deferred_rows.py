"""Rows deferred to the commit (`helpdesk.models.rows.insert_later`) are written then, all
of them, and only if the transaction commits; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import AuditEvent
from helpdesk.models.rows import defer_inserts, insert_later


async def audit_actions(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.mark.parametrize("count", [1, 3, 25])  # 25: more than go into one statement
async def test_deferred_rows_appear_at_the_commit_in_the_order_written(
    runtime: Runtime, count: int
) -> None:
    async with transaction(runtime.sessions) as session:
        defer_inserts(session)
        for n in range(count):
            details = {"n": n, "names": ["Kari", "Ola"]}
            await insert_later(
                session,
                AuditEvent,
                {"actor": "system", "action": f"a{n}", "target": "t", "details": details},
            )
        assert await audit_actions(runtime) == []  # not yet: nothing was sent
    assert await audit_actions(runtime) == [f"a{n}" for n in range(count)]
    async with runtime.sessions() as session:
        last = await session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()))
    assert last is not None and last.details == {"n": count - 1, "names": ["Kari", "Ola"]}


async def test_a_rolled_back_transaction_writes_none_of_its_deferred_rows(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(runtime.sessions) as session:
            defer_inserts(session)
            values = {"actor": "system", "action": "lost", "target": "t", "details": {}}
            await insert_later(session, AuditEvent, values)
            raise RuntimeError("the work failed")
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0


async def test_without_deferring_a_row_is_written_at_once(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        values = {"actor": "system", "action": "now", "target": "t", "details": {}}
        await insert_later(session, AuditEvent, values)
        assert await session.scalar(select(AuditEvent.action)) == "now"
