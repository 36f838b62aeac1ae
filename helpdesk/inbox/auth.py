"""The inbox's HTTP side of authentication: the session cookie, guards and CSRF tokens.

Guards run before a handler's dependencies, in order: `signed_in` finds the operator of
the `helpdesk_session` cookie (or sends the browser to the sign-in page), `csrf_checked`
refuses a state-changing request whose form token does not match, and `admin_only` keeps
agents out of admin pages (403).

CSRF uses synchronizer tokens derived, not stored: a form's `_csrf` value is an HMAC (with
the secret key) of the session cookie, so it is valid for exactly one session and changes
at every sign-in. The sign-in form, which has no session yet, binds its token to a random
pre-session cookie instead. Litestar's app-wide CSRFConfig is not used: its double-submit
cookie is not tied to the session, and it would apply to every JSON and widget endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, cast
from urllib.parse import quote

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.config import Settings
from helpdesk.deps import bearer_token
from helpdesk.errors import Forbidden, HelpdeskError, Unauthorized
from helpdesk.inbox.sessions import SESSION_LIFETIME, resume_session
from helpdesk.models import Operator
from helpdesk.operators import service as operators

SESSION_COOKIE = "helpdesk_session"
LOGIN_CSRF_COOKIE = "helpdesk_login_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Keys in the request's scope state shared by the guards, pages and the headers middleware.
OPERATOR_KEY = "inbox_operator"
RENEWED_KEY = "inbox_session_renewed"


class SignInRequired(HelpdeskError):
    """No valid session: the inbox answers with a redirect to the sign-in page."""

    code = "unauthorized"
    status_code = 401


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    return cast(Runtime, connection.app.state.runtime)


def secure_cookies(settings: Settings) -> bool:
    """Cookies are `Secure` when the inbox is served over HTTPS (HELPDESK_BASE_URL).

    Decided by the configured public address, never by the request: an
    `X-Forwarded-Proto` header (which anyone can send) cannot drop the flag. The client
    address used by the per-address sign-in limit is uvicorn's, which takes
    `X-Forwarded-For` only from the proxies in FORWARDED_ALLOW_IPS (default 127.0.0.1).
    """
    return settings.base_url.lower().startswith("https://")


def session_cookie(settings: Settings, token: str) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Lax, 30 days (renewed as it is used)."""
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


def expired_session_cookie(settings: Settings) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path="/",
        max_age=0,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


def login_csrf_cookie(settings: Settings, value: str, max_age: int | None = None) -> Cookie:
    """The pre-session cookie the sign-in form's CSRF token is bound to."""
    return Cookie(
        key=LOGIN_CSRF_COOKIE,
        value=value,
        path="/inbox/login",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings),
    )


def csrf_token(secret: str, binding: str) -> str:
    """The form token for a session (or pre-session) cookie value."""
    return hmac.new(secret.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_token_matches(secret: str, binding: str | None, sent: str | None) -> bool:
    if not binding or not sent:
        return False
    return hmac.compare_digest(csrf_token(secret, binding), sent)


def current_operator(request: Request[Any, Any, Any]) -> Operator:
    """The operator the `signed_in` guard found (only on guarded routes)."""
    operator = request.scope.get("state", {}).get(OPERATOR_KEY)
    if not isinstance(operator, Operator):
        raise SignInRequired("Sign in to use the inbox.")
    return operator


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a valid inbox session, else SignInRequired (a redirect to the sign-in page)."""
    token = connection.cookies.get(SESSION_COOKIE)
    runtime = runtime_of(connection)
    active = None
    if token:
        async with runtime.sessions() as session, session.begin():
            active = await resume_session(session, token, now=runtime.clock.now())
    if active is None:
        raise SignInRequired("Sign in to use the inbox.")
    state = connection.scope.setdefault("state", {})
    state[OPERATOR_KEY] = active.operator
    state[RENEWED_KEY] = active.renewed


async def csrf_checked(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: state-changing requests carry the form token of this session (403 if not)."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    binding = connection.cookies.get(SESSION_COOKIE)
    await _require_token(connection, binding)


async def login_csrf_checked(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard of the sign-in form: its token is bound to the pre-session cookie."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    await _require_token(connection, connection.cookies.get(LOGIN_CSRF_COOKIE))


async def _require_token(
    connection: ASGIConnection[Any, Any, Any, Any], binding: str | None
) -> None:
    sent = connection.headers.get(CSRF_HEADER)
    if not sent:
        request = cast(Request[Any, Any, Any], connection)
        # Parsed once; Litestar keeps the parsed form for the handler.
        sent_value = (await request.form()).get(CSRF_FIELD)
        sent = sent_value if isinstance(sent_value, str) else None
    if not csrf_token_matches(runtime_of(connection).settings.secret_key, binding, sent):
        raise Forbidden("The form has expired or did not come from this site. Reload and retry.")


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: admin pages are for admins; agents get 403."""
    operator = connection.scope.get("state", {}).get(OPERATOR_KEY)
    if not isinstance(operator, Operator) or operator.role != "admin":
        raise Forbidden("This page is for admins.")


def login_url(next_path: str | None = None) -> str:
    """The sign-in page, returning to `next_path` afterwards when it is an inbox page."""
    if next_path and safe_next(next_path):
        return f"/inbox/login?next={quote(next_path, safe='/')}"
    return "/inbox/login"


def safe_next(path: str | None) -> bool:
    """Only inbox paths, never another host (`//evil`, `/\\evil`), are followed after sign-in."""
    if not path:
        return False
    return path.startswith("/inbox") and "\\" not in path and "//" not in path


async def provide_operator_or_session(
    request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
) -> Operator:
    """An operator API token (Bearer) or an inbox session cookie; 401 otherwise.

    For endpoints both the JSON API and inbox pages use, such as attachment downloads.
    Only safe (GET) endpoints may take the cookie: they need no CSRF token.
    """
    token = bearer_token(request)
    if token:
        operator = await operators.operator_for_token(db_session, token)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        active = (
            await resume_session(db_session, cookie, now=runtime.clock.now()) if cookie else None
        )
        operator = active.operator if active else None
    if operator is None:
        raise Unauthorized("A valid operator API token or inbox session is required.")
    return operator
