"""The second step of signing in: `/inbox/login/code` asks for the TOTP or a recovery code.

Between the password and the code the browser is only half signed in: it holds a
short-lived signed token (`helpdesk_pending_sign_in`, 5 minutes, only sent to
/inbox/login…), not a session, so no inbox page opens with it. The token's HMAC covers
the operator's password hash and the time step of their last accepted code, so it stops
working when the password changes or once a code has been used with it. The form's CSRF
token is bound to it, like the sign-in form's is bound to its pre-session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.config import Settings
from helpdesk.errors import Forbidden
from helpdesk.inbox.auth import (
    csrf_token,
    csrf_token_matches,
    login_csrf_cookie,
    safe_next,
    secure_cookies,
    session_cookie,
)
from helpdesk.inbox.rendering import page
from helpdesk.inbox.signin import SignInRefused, SignInThrottled, check_second_factor, open_session
from helpdesk.models import Operator
from helpdesk.operators.second_factor import second_factor_of

PENDING_COOKIE = "helpdesk_pending_sign_in"
PENDING_LIFETIME = timedelta(minutes=5)


def _pending_mac(secret: str, operator: Operator, expires: int, last_step: int | None) -> str:
    message = f"pending-sign-in:{operator.id}.{expires}.{operator.password_hash}.{last_step}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def make_pending_token(
    secret: str, operator: Operator, last_step: int | None, *, now: datetime
) -> str:
    """`<operator id>.<expiry>.<hmac>`: password accepted, code still to come."""
    expires = int((now + PENDING_LIFETIME).timestamp())
    return f"{operator.id}.{expires}.{_pending_mac(secret, operator, expires, last_step)}"


async def read_pending_token(
    session: AsyncSession, secret: str, token: str | None, *, now: datetime
) -> Operator | None:
    """The operator a pending token is for, if it is genuine, current and still unused."""
    operator_id, _, rest = (token or "").partition(".")
    expires, _, mac = rest.partition(".")
    if not (operator_id.isdigit() and expires.isdigit()) or int(expires) < now.timestamp():
        return None
    operator = await session.get(Operator, int(operator_id))
    if operator is None or not operator.active:
        return None
    factor = await second_factor_of(session, operator)
    if factor is None or factor.confirmed_at is None:
        return None
    expected = _pending_mac(secret, operator, int(expires), factor.last_step)
    return operator if hmac.compare_digest(expected, mac) else None


def pending_cookie(settings: Settings, value: str, max_age: int | None = None) -> Cookie:
    """The half-signed-in cookie: HttpOnly, SameSite=Strict, only for the sign-in pages."""
    return Cookie(
        key=PENDING_COOKIE,
        value=value,
        path="/inbox/login",
        max_age=int(PENDING_LIFETIME.total_seconds()) if max_age is None else max_age,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings),
    )


def _code_page(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    pending: str,
    *,
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    context = {
        "error": error,
        "next": next_path,
        "pending_csrf": csrf_token(runtime.settings.secret_key, pending),
    }
    return page(request, "inbox/login_second_factor.html", context, status_code=status_code)


def _back_to_password(runtime: Runtime) -> Redirect:
    redirect = Redirect("/inbox/login", status_code=303)
    redirect.cookies.append(pending_cookie(runtime.settings, "", max_age=0))
    return redirect


class SecondFactorSignIn(Controller):
    path = "/login/code"
    include_in_schema = False

    @get("")
    async def code_form(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """The code form, for a browser that has just given the right password."""
        pending = request.cookies.get(PENDING_COOKIE, "")
        now = runtime.clock.now()
        if await read_pending_token(db_session, runtime.settings.secret_key, pending, now=now):
            return _code_page(
                request, runtime, pending, next_path=request.query_params.get("next") or ""
            )
        return _back_to_password(runtime)

    @post("", status_code=303)
    async def submit_code(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """Check the code (rate-limited); right: a new session, exactly as after a password."""
        settings, now = runtime.settings, runtime.clock.now()
        pending = request.cookies.get(PENDING_COOKIE, "")
        form = await request.form()
        sent = form.get("_csrf")
        if not csrf_token_matches(
            settings.secret_key, pending, sent if isinstance(sent, str) else None
        ):
            raise Forbidden(
                "The form has expired or did not come from this site. Reload and retry."
            )
        operator = await read_pending_token(db_session, settings.secret_key, pending, now=now)
        if operator is None:
            return _back_to_password(runtime)
        next_path = str(form.get("next") or "")
        try:
            method = await check_second_factor(
                db_session,
                operator,
                str(form.get("code") or "")[:64],
                client=request.client.host if request.client else "unknown",
                secret=settings.secret_key,
                now=now,
            )
        except SignInThrottled as refusal:
            return _code_page(
                request,
                runtime,
                pending,
                next_path=next_path,
                error=refusal.detail,
                status_code=429,
            )
        except SignInRefused as refusal:
            return _code_page(
                request,
                runtime,
                pending,
                next_path=next_path,
                error=refusal.detail,
                status_code=401,
            )
        signed = await open_session(
            db_session,
            operator,
            secret=settings.secret_key,
            now=now,
            user_agent=request.headers.get("user-agent"),
            second_factor=method,
        )
        redirect = Redirect(next_path if safe_next(next_path) else "/inbox", status_code=303)
        redirect.cookies.append(session_cookie(settings, signed.token))
        redirect.cookies.append(pending_cookie(settings, "", max_age=0))
        redirect.cookies.append(login_csrf_cookie(settings, "", max_age=0))
        return redirect
