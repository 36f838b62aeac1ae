"""Factories for test data: small functions that build realistic records through services."""

from __future__ import annotations

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.operators import service as operators


async def add_operator(
    runtime: Runtime,
    email: str = "agent@kurs.example",
    name: str = "Ola Agent",
    role: str = "agent",
    password: str | None = None,
) -> str:
    """Create an operator and return a fresh API token for them."""
    async with transaction(runtime.sessions) as session:
        await operators.create_operator(session, email, name, role, password)
    async with transaction(runtime.sessions) as session:
        return await operators.issue_api_token(session, email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
