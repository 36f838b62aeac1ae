"""The inbox router: every `/inbox` page, its security headers and its HTML error pages.

Errors on inbox pages are pages too: no session sends the browser to the sign-in page
(303, back to the page afterwards), anything else shows a short explanation with the
right status, never a stack trace or JSON.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, Router
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from helpdesk.db import is_service_unavailable
from helpdesk.errors import HelpdeskError
from helpdesk.inbox.account_pages import AccountPages
from helpdesk.inbox.admin_pages import AdminPages
from helpdesk.inbox.auth import SignInRequired, login_url
from helpdesk.inbox.canned_pages import CannedReplyPages
from helpdesk.inbox.enrolment_pages import SecondFactorPages
from helpdesk.inbox.form_refusals import FormRefused, refused_page
from helpdesk.inbox.headers import inbox_headers_middleware
from helpdesk.inbox.live_pages import LivePages
from helpdesk.inbox.login_pages import SignInController
from helpdesk.inbox.operator_pages import OperatorPages, PasswordSetupPages
from helpdesk.inbox.privacy_pages import PrivacyPages
from helpdesk.inbox.queue_pages import QueuePages
from helpdesk.inbox.rendering import page
from helpdesk.inbox.report_pages import ReportPages
from helpdesk.inbox.second_factor import SecondFactorSignIn
from helpdesk.inbox.ticket_actions import TicketActions
from helpdesk.inbox.ticket_pages import TicketPages
from helpdesk.retention.pages import RETENTION_PAGES

log = logging.getLogger("helpdesk.inbox")

_TITLES = {
    400: "That request did not make sense",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    413: "Too large",
    422: "Please check the form",
    429: "Too many attempts",
    503: "Briefly unavailable",
}


def to_sign_in(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    """No valid session: to the sign-in page, coming back to this page after a GET."""
    next_path = request.url.path if request.method == "GET" else None
    if next_path and request.url.query:
        next_path = f"{next_path}?{request.url.query}"
    return Redirect(login_url(next_path), status_code=303)


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A page for a refusal (403, 404, 409 …) or, logged, for a failure of ours (500)."""
    if isinstance(exc, HelpdeskError):
        status, detail = exc.status_code, exc.detail
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, str(exc.detail).split("\n", 1)[0][:300]
    elif is_service_unavailable(exc):
        log.warning("%s %s: backing service unavailable", request.method, request.url.path)
        status, detail = 503, "The inbox is briefly unavailable. Please try again in a moment."
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, detail = 500, "Something went wrong on our side. Please try again."
    context = {
        "status": status,
        "title": _TITLES.get(status, "Something went wrong"),
        "detail": detail,
    }
    response: Template = page(request, "inbox/error.html", context, status_code=status)
    return response


inbox_router = Router(
    path="/inbox",
    route_handlers=[
        SignInController,
        SecondFactorSignIn,
        PasswordSetupPages,
        AccountPages,
        SecondFactorPages,
        OperatorPages,
        QueuePages,
        ReportPages,
        TicketPages,
        TicketActions,
        PrivacyPages,
        AdminPages,
        CannedReplyPages,
        LivePages,
        *RETENTION_PAGES,
    ],
    middleware=[inbox_headers_middleware],
    exception_handlers={
        SignInRequired: to_sign_in,
        FormRefused: refused_page,
        HelpdeskError: error_page,
        HTTPException: error_page,
        Exception: error_page,
    },
    include_in_schema=False,
)
