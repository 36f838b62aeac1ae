"""Litestar dependency providers shared by every capability's controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.config import Settings
from helpdesk.errors import Unauthorized
from helpdesk.models import Operator
from helpdesk.operators import service as operators


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def provide_settings(state: State) -> Settings:
    return provide_runtime(state).settings


async def provide_db_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, else rolled back.

    It takes `runtime` (not `state`) so that Litestar resolves the two one after the
    other: dependencies without a dependency between them are resolved concurrently in
    an anyio task group, which cost a widget post more than the provider calls themselves.
    """
    async with runtime.sessions() as session, session.begin():
        yield session


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def provide_operator(request: Request[Any, Any, Any], db_session: AsyncSession) -> Operator:
    """The operator whose API token authorises this request (401 otherwise)."""
    token = bearer_token(request)
    operator = await operators.operator_for_token(db_session, token) if token else None
    if operator is None:
        raise Unauthorized("A valid operator API token is required.")
    return operator
