"""Every error leaves as `{"error": code, "detail": text}` (DESIGN §6), never a stack trace."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from helpdesk.db import is_service_unavailable
from helpdesk.errors import HelpdeskError, RateLimited, ValidationFailed

log = logging.getLogger("helpdesk.http")

RETRY_AFTER_SECONDS = 5

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "payload_too_large",
    415: "bad_request",
    422: "validation_failed",
    429: "rate_limited",
}


def error_response(status: int, code: str, detail: str, **extra: Any) -> Response[Any]:
    headers = extra.pop("headers", None)
    return Response(
        {"error": code, "detail": detail, **extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def handle_helpdesk_error(_: Request[Any, Any, Any], exc: HelpdeskError) -> Response[Any]:
    if isinstance(exc, ValidationFailed):
        return error_response(exc.status_code, exc.code, exc.detail, fields=exc.fields)
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status_code, exc.code, exc.detail, headers=headers)
    return error_response(exc.status_code, exc.code, exc.detail)


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def handle_validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar's body/parameter validation: name each offending field.

    msgspec reports a missing field against the whole body (`data`); it is moved to the
    field's own name. A body that is empty, null or not an object is a plain 400.
    """
    fields: dict[str, str] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "data").removeprefix("$.")
        message = str(item.get("message", "invalid"))
        if missing := _MISSING_FIELD.search(message):
            key, message = missing.group(1), "This field is required."
        if key != "data":
            fields[key] = message
    if not fields:
        return error_response(400, "bad_request", "The request body must be a JSON object.")
    return error_response(422, "validation_failed", "Some fields are not valid.", fields=fields)


def handle_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = _CODES.get(exc.status_code, "bad_request")
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, code, _plain(exc.detail), headers=headers or None)


def handle_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_service_unavailable(exc):
        log.warning("%s %s: backing service unavailable (%s)",
                    request.method, request.url.path, type(exc).__name__)
        return error_response(
            503, "unavailable", "The service is briefly unavailable; please try again.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side."
    )


def _plain(detail: str) -> str:
    return detail.split("\n", 1)[0][:300]


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HelpdeskError: handle_helpdesk_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected_error,
}
