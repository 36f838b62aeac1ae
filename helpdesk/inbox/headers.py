"""Security headers of every inbox response, and the renewal of the rolling session cookie.

The policy allows only our own files: no inline script (the pages' JavaScript is
/static/inbox.js), no inline style attributes, no framing of the inbox by anyone, and
forms that post only back to us. Mail HTML is shown in `<iframe sandbox srcdoc>`, which
inherits this policy and additionally runs no script at all.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.inbox.auth import RENEWED_KEY, SESSION_COOKIE, session_cookie

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    # Tickets hold personal data: never kept by shared caches or the back/forward cache
    # of a browser someone else uses later.
    "cache-control": "no-store",
}


def inbox_headers_middleware(app: ASGIApp) -> ASGIApp:
    """Add the security headers; re-send the session cookie when its expiry moved."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                _renew_cookie(scope, headers)
            await send(message)

        await app(scope, receive, send_wrapper)

    return middleware


def _renew_cookie(scope: Scope, headers: MutableScopeHeaders) -> None:
    state = scope.get("state", {})
    if not state.get(RENEWED_KEY):
        return
    if any(value.startswith(f"{SESSION_COOKIE}=") for value in headers.getall("set-cookie", [])):
        return  # the response already sets (or clears) it, e.g. sign-out
    token = _cookie_value(scope, SESSION_COOKIE)
    if token:
        settings = scope["app"].state.runtime.settings  # type: ignore[index]
        headers.add("set-cookie", session_cookie(settings, token).to_header(header=""))


def _cookie_value(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                cookie_name, _, cookie_value = part.strip().partition("=")
                if cookie_name == name:
                    return cookie_value
    return None
