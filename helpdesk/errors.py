"""Errors a service raises; the HTTP layer maps each to the JSON error shape of DESIGN §6.

Services never import Litestar: they raise these, and `helpdesk.error_handlers` turns
them into responses.
"""

from __future__ import annotations


class HelpdeskError(Exception):
    """Base of the errors a user can cause; `code` is the JSON `error` field."""

    code = "bad_request"
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(HelpdeskError):
    pass


class Unauthorized(HelpdeskError):
    code = "unauthorized"
    status_code = 401


class Forbidden(HelpdeskError):
    code = "forbidden"
    status_code = 403


class NotFound(HelpdeskError):
    code = "not_found"
    status_code = 404


class Conflict(HelpdeskError):
    code = "conflict"
    status_code = 409


class PayloadTooLarge(HelpdeskError):
    code = "payload_too_large"
    status_code = 413


class ValidationFailed(HelpdeskError):
    """422 with a message per offending field."""

    code = "validation_failed"
    status_code = 422

    def __init__(self, fields: dict[str, str], detail: str = "Some fields are not valid.") -> None:
        super().__init__(detail)
        self.fields = fields


class RateLimited(HelpdeskError):
    code = "rate_limited"
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
