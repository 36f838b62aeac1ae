"""Operator administration (`/inbox/admin/operators`, admins only) and the setup link page.

Adding an operator gives the admin a one-time link to pass on (shown on that answer only);
the operator opens `/inbox/welcome?token=…` and chooses their own password, so no admin
ever knows it and no password travels by chat or mail. The same link resets a forgotten
password. Every action is a POST with the session's CSRF token, refused (403) for agents
by the `admin_only` guard on the whole controller.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import Conflict, Forbidden, ValidationFailed
from helpdesk.inbox.account_pages import operator_row
from helpdesk.inbox.auth import admin_only, csrf_checked, csrf_token, csrf_token_matches, signed_in
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.models import Operator
from helpdesk.models.operators import ROLES
from helpdesk.operators import administration as admin
from helpdesk.operators.passwords import (
    MIN_PASSWORD_LENGTH,
    issue_setup_link,
    operator_for_setup_token,
    set_password_with_link,
    setup_link,
)


async def _operators_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    context = {
        "nav": "operators",
        "operators": await admin.list_operators(db_session),
        "enrolled": await admin.enrolled_operator_ids(db_session),
        "roles": ROLES,
        "errors": {},
        "form": {},
        **extra,
    }
    return page(request, "inbox/operators.html", context, status_code=status_code)


class OperatorPages(Controller):
    path = "/admin/operators"
    guards = [signed_in, csrf_checked, admin_only]
    include_in_schema = False

    @get("")
    async def operators(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template:
        """Every operator with role, state and second factor, and what can be done to each."""
        return await _operators_page(request, db_session)

    @post("", status_code=200)
    async def add(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template:
        """Add an operator; the answer shows their one-time setup link (only this once)."""
        me = await operator_row(request, db_session)
        form = await request.form()
        fields = {k: str(form.get(k) or "").strip()[:320] for k in ("email", "name", "role")}
        try:
            operator, token = await admin.add_operator(
                db_session, me, **fields, now=runtime.clock.now()
            )
        except ValidationFailed as problem:
            return await _operators_page(
                request, db_session, errors=problem.fields, form=fields, status_code=422
            )
        except Conflict as problem:
            return await _operators_page(
                request, db_session, errors={"email": problem.detail}, form=fields, status_code=409
            )
        link = setup_link(runtime.settings.base_url, token)
        return await _operators_page(request, db_session, new_link=(operator, link))

    @post("/{operator_id:int}/role", status_code=303)
    async def role(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, operator_id: int
    ) -> Redirect:
        me, target = await self._both(request, db_session, operator_id)
        form = await request.form()
        changed = await admin.change_role(db_session, me, target, str(form.get("role") or ""))
        return redirect_with_flash(
            "/inbox/admin/operators", "operator-updated" if changed else "nothing-changed"
        )

    @post("/{operator_id:int}/disable", status_code=303)
    async def disable(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        operator_id: int,
    ) -> Redirect:
        """Disable at once: sessions and API tokens are revoked in the same transaction."""
        me, target = await self._both(request, db_session, operator_id)
        await admin.disable_operator(db_session, me, target, now=runtime.clock.now())
        return redirect_with_flash("/inbox/admin/operators", "operator-disabled")

    @post("/{operator_id:int}/enable", status_code=303)
    async def enable(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, operator_id: int
    ) -> Redirect:
        me, target = await self._both(request, db_session, operator_id)
        await admin.enable_operator(db_session, me, target)
        return redirect_with_flash("/inbox/admin/operators", "operator-enabled")

    @post("/{operator_id:int}/second-factor/reset", status_code=303)
    async def reset_second_factor(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, operator_id: int
    ) -> Redirect:
        """For a lost phone: the operator signs in with the password and can enrol again."""
        me, target = await self._both(request, db_session, operator_id)
        await admin.reset_second_factor(db_session, me, target)
        return redirect_with_flash("/inbox/admin/operators", "second-factor-reset")

    @post("/{operator_id:int}/setup-link", status_code=200)
    async def new_setup_link(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        operator_id: int,
    ) -> Template:
        """A new password-setup link (forgotten password); shown on this answer only."""
        me, target = await self._both(request, db_session, operator_id)
        if not target.active:
            raise Conflict("Enable the operator before giving them a setup link.")
        token = await issue_setup_link(db_session, target, by=me, now=runtime.clock.now())
        link = setup_link(runtime.settings.base_url, token)
        return await _operators_page(request, db_session, new_link=(target, link))

    @staticmethod
    async def _both(
        request: Request[Any, Any, Any], db_session: AsyncSession, operator_id: int
    ) -> tuple[Operator, Operator]:
        return await operator_row(request, db_session), await admin.get_operator(
            db_session, operator_id
        )


class PasswordSetupPages(Controller):
    """`/inbox/welcome?token=…`: a new operator (or one who forgot) chooses a password.

    The token is in the query string, which the request log leaves out (paths are logged).
    """

    path = "/welcome"
    include_in_schema = False

    @get("")
    async def form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        token: str = "",
    ) -> Template:
        operator = await operator_for_setup_token(db_session, token, now=runtime.clock.now())
        return _setup_page(request, runtime, token, operator)

    @post("", status_code=303)
    async def choose(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        token: str = "",
    ) -> Template | Redirect:
        """Set the password and spend the link; then sign in as usual."""
        form = await request.form()
        sent = form.get("_csrf")
        # The form token is bound to the link's own secret token (there is no session yet).
        if not csrf_token_matches(
            runtime.settings.secret_key, f"setup:{token}", sent if isinstance(sent, str) else None
        ):
            raise Forbidden(
                "The form has expired or did not come from this site. Reload and retry."
            )
        try:
            operator = await set_password_with_link(
                db_session,
                token,
                str(form.get("password") or ""),
                str(form.get("repeat") or ""),
                now=runtime.clock.now(),
            )
        except ValidationFailed as problem:
            current = await operator_for_setup_token(db_session, token, now=runtime.clock.now())
            return _setup_page(
                request, runtime, token, current, errors=problem.fields, status_code=422
            )
        if operator is None:
            return _setup_page(request, runtime, token, None, status_code=404)
        return redirect_with_flash("/inbox/login", "password-set")


def _setup_page(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    token: str,
    operator: Operator | None,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    context = {
        "person": operator,
        "errors": errors or {},
        "setup_csrf": csrf_token(runtime.settings.secret_key, f"setup:{token}"),
        "min_password_length": MIN_PASSWORD_LENGTH,
    }
    if operator is None and status_code == 200:
        status_code = 404
    return page(request, "inbox/password_setup.html", context, status_code=status_code)
