"""Admin pages of the inbox; for now the operator overview that proves the admin guard."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.inbox.auth import admin_only, csrf_checked, signed_in
from helpdesk.inbox.directory import all_operators
from helpdesk.inbox.rendering import page


class AdminPages(Controller):
    path = "/admin"
    guards = [signed_in, csrf_checked, admin_only]
    include_in_schema = False

    @get("")
    async def operators(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template:
        """Every operator with role and state (management comes in a later slice)."""
        return page(request, "inbox/admin.html", {"operators": await all_operators(db_session)})
