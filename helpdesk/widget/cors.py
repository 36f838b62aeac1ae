"""CORS for the widget endpoints: only the origins in HELPDESK_WIDGET_ORIGINS.

A request from any other origin is refused outright (403), not merely left without the
CORS headers: a simple cross-site POST would otherwise still create a ticket even though
the browser hides the answer. Requests without an `Origin` (server-side calls, curl) pass.
"""

from __future__ import annotations

import json

from litestar.datastructures import MutableScopeHeaders
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
EXPOSED_HEADERS = "Retry-After"
_REFUSED = json.dumps(
    {"error": "forbidden", "detail": "This site is not allowed to use the support widget."}
).encode()


def _origin(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"origin":
            return value.decode("latin-1")
    return None


def widget_cors_middleware(app: ASGIApp) -> ASGIApp:
    """Answer preflights, refuse foreign origins, add CORS headers for allowed ones."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        origin = _origin(scope)
        if origin is None:
            await app(scope, receive, send)
            return
        allowed = scope["app"].state.runtime.settings.widget_origins
        if origin.rstrip("/") not in allowed:
            await _respond(send, 403, [(b"content-type", b"application/json")], _REFUSED)
            return
        cors = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
        if scope.get("method") == "OPTIONS":
            preflight = [
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
            ]
            await _respond(send, 204, cors + preflight, b"")
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in cors:
                    headers[name.decode()] = value.decode("latin-1")
                headers["access-control-expose-headers"] = EXPOSED_HEADERS
            await send(message)

        await app(scope, receive, send_with_cors)

    return middleware


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
