"""Sign-in and sign-out pages: `/inbox/login`, `/inbox/logout`, `/inbox/logout-everywhere`."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.inbox.auth import (
    SESSION_COOKIE,
    csrf_checked,
    csrf_token,
    current_operator,
    expired_session_cookie,
    login_csrf_checked,
    login_csrf_cookie,
    safe_next,
    session_cookie,
    signed_in,
)
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.inbox.second_factor import make_pending_token, pending_cookie
from helpdesk.inbox.sessions import end_all_sessions, end_session
from helpdesk.inbox.signin import SignInRefused, SignInThrottled, check_password, open_session
from helpdesk.operators.second_factor import second_factor_of


def _login_page(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
) -> Template:
    """The sign-in form; its CSRF token is bound to a fresh pre-session cookie."""
    binding = secrets.token_urlsafe(32)
    response = page(
        request,
        "inbox/login.html",
        {
            "error": error,
            "email": email,
            "next": request.query_params.get("next") or "",
            "login_csrf": csrf_token(runtime.settings.secret_key, binding),
        },
        status_code=status_code,
    )
    response.cookies.append(login_csrf_cookie(runtime.settings, binding))
    return response


class SignInController(Controller):
    path = ""
    include_in_schema = False

    @get("/login", guards=[login_csrf_checked])
    async def login_form(self, request: Request[Any, Any, Any], runtime: Runtime) -> Template:
        return _login_page(request, runtime)

    @post("/login", guards=[login_csrf_checked], status_code=303)
    async def login(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """Check the password; then the code if the operator has a second factor.

        A new session token every time (an old cookie is ignored: no session fixation).
        """
        form = await request.form()
        email = str(form.get("email") or "")[:320]
        settings, now = runtime.settings, runtime.clock.now()
        try:
            operator = await check_password(
                db_session,
                email,
                str(form.get("password") or ""),
                client=request.client.host if request.client else "unknown",
                secret=settings.secret_key,
                now=now,
            )
        except SignInThrottled as refusal:
            return _login_page(request, runtime, error=refusal.detail, email=email, status_code=429)
        except SignInRefused as refusal:
            return _login_page(request, runtime, error=refusal.detail, email=email, status_code=401)
        next_path = str(form.get("next") or "")
        target = next_path if safe_next(next_path) else "/inbox"
        factor = await second_factor_of(db_session, operator)
        if factor is not None and factor.confirmed_at is not None:
            # Half signed in: a short-lived pending token, not a session (inbox.second_factor).
            pending = make_pending_token(settings.secret_key, operator, factor.last_step, now=now)
            code_page = "/inbox/login/code" + (f"?next={quote(target, safe='/')}")
            redirect = Redirect(code_page, status_code=303)
            redirect.cookies.append(pending_cookie(settings, pending))
            return redirect
        signed = await open_session(
            db_session,
            operator,
            secret=settings.secret_key,
            now=now,
            user_agent=request.headers.get("user-agent"),
        )
        redirect = Redirect(target, status_code=303)
        redirect.cookies.append(session_cookie(runtime.settings, signed.token))
        redirect.cookies.append(login_csrf_cookie(runtime.settings, "", max_age=0))
        return redirect

    @post("/logout", guards=[signed_in, csrf_checked], status_code=303)
    async def logout(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Redirect:
        await end_session(db_session, request.cookies[SESSION_COOKIE], now=runtime.clock.now())
        redirect = redirect_with_flash("/inbox/login", "signed-out")
        redirect.cookies.append(expired_session_cookie(runtime.settings))
        return redirect

    @post("/logout-everywhere", guards=[signed_in, csrf_checked], status_code=303)
    async def logout_everywhere(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Redirect:
        """Revoke every session of the operator, this browser's included (a lost laptop)."""
        await end_all_sessions(db_session, current_operator(request), now=runtime.clock.now())
        redirect = redirect_with_flash("/inbox/login", "signed-out-everywhere")
        redirect.cookies.append(expired_session_cookie(runtime.settings))
        return redirect
