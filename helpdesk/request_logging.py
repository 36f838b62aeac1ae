"""Per request: an id, one log line, and the request metrics.

The log line names the route template and the path without its query string (query
strings carry addresses and search terms); addresses in paths are redacted by the logging
filter. Latency is measured to the start of the response, so a Server-Sent Events stream
counts the time to its first byte, not the hours it stays open.
"""

from __future__ import annotations

import logging
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.metrics import HTTP_LATENCY, HTTP_REQUESTS, http_route
from helpdesk.structured_logs import REQUEST_ID, request_id_from

log = logging.getLogger("helpdesk.requests")


def request_logging_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = request_id_from(_header(scope, b"x-request-id"))
        reset = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status, first_byte = 500, None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status, first_byte = message["status"], time.perf_counter()
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            seconds = (first_byte or time.perf_counter()) - started
            route, method = http_route(scope), scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(seconds)
            log.info(
                "%s %s %s %.1fms", method, scope["path"], status, seconds * 1000,
                extra={"method": method, "route": route, "path": scope["path"],
                       "status": status, "duration_ms": round(seconds * 1000, 1)},
            )
            REQUEST_ID.reset(reset)

    return middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
