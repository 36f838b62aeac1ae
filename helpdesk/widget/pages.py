"""HTML and script endpoints: `/widget.js`, the `/support` form, its confirmation, the
privacy notice, the conversation page linked from reply mail, and a demo host page.

The form's CSRF token is derived from a random pre-session cookie (like the inbox's
sign-in form), so a page on another site cannot post it in a learner's name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.bootstrap import Runtime
from helpdesk.errors import Forbidden, HelpdeskError, NotFound, ValidationFailed
from helpdesk.inbox.auth import csrf_token, csrf_token_matches
from helpdesk.inbox.headers import SECURITY_HEADERS
from helpdesk.models import Ticket, WidgetConversation
from helpdesk.widget import service
from helpdesk.widget.followup import link_state
from helpdesk.widget.limits import Limit
from helpdesk.widget.support_form import (
    PRIVACY_CHOICES,
    SupportRequest,
    check_support_request,
    submit_support_request,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CSRF_COOKIE = "helpdesk_support_csrf"
MAX_FORM_BYTES = 128 * 1024
PRIVACY_LABELS = {
    "none": "No, this is not a privacy request",
    "access": "Access: a copy of the personal data you hold about me",
    "rectification": "Rectification: correct data about me",
    "erasure": "Erasure: delete data about me",
    "restriction": "Restriction: stop using my data for now",
    "objection": "Objection: I object to how my data is used",
    "portability": "Portability: my data in a machine-readable file",
}
FORM_FIELDS = ("name", "email", "subject", "message", "order_number", "privacy")


@cache
def widget_script() -> bytes:
    """The widget's source (read once per process)."""
    return (STATIC_DIR / "widget.js").read_bytes()


@get("/widget.js", include_in_schema=False, sync_to_thread=False)
def widget_js() -> Response[bytes]:
    """The embeddable widget script (no third-party code; cached briefly by browsers)."""
    return Response(
        widget_script(),
        media_type="application/javascript; charset=utf-8",
        headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"},
    )


def _thanks_signature(secret: str, number: int) -> str:
    return hmac.new(
        secret.encode(), f"support-thanks:{number}".encode(), hashlib.sha256
    ).hexdigest()[:20]


def _form_page(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    # One binding per browser: a second tab of the form must not void the first one's token.
    binding = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = Template(
        template_name="support/form.html",
        context={
            "values": values,
            "errors": errors or {},
            "notice": notice,
            "csrf": csrf_token(runtime.settings.secret_key, binding),
            "privacy_choices": [(kind, PRIVACY_LABELS[kind]) for kind in PRIVACY_CHOICES],
        },
        status_code=status_code,
    )
    response.cookies.append(
        Cookie(
            key=CSRF_COOKIE,
            value=binding,
            path="/support",
            httponly=True,
            samesite="strict",
            secure=runtime.settings.base_url.startswith("https://"),
        )
    )
    return response


def _check_csrf(request: Request[Any, Any, Any], runtime: Runtime, sent: str) -> None:
    binding = request.cookies.get(CSRF_COOKIE)
    if not csrf_token_matches(runtime.settings.secret_key, binding, sent or None):
        raise Forbidden("The form has expired or did not come from this site. Reload and retry.")


class SupportPages(Controller):
    path = "/support"

    @get("", summary="The support form")
    async def form(self, request: Request[Any, Any, Any], runtime: Runtime) -> Template:
        return _form_page(request, runtime, {"privacy": "none"})

    @post("", status_code=303, request_max_body_size=MAX_FORM_BYTES)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED),
    ) -> Template | Redirect:
        values = {name: str(data.get(name, ""))[:20_000] for name in FORM_FIELDS}
        try:
            _check_csrf(request, runtime, str(data.get("_csrf", "")))
        except Forbidden as refused:
            return _form_page(request, runtime, values, notice=refused.detail, status_code=403)
        if str(data.get("website", "")).strip():
            return _form_page(
                request,
                runtime,
                values,
                notice="Please leave the last field empty.",
                status_code=422,
            )
        try:
            # Counted once the form is valid: typing mistakes do not use up the limit.
            check_support_request(SupportRequest(**values))
            await runtime.limiter.hit(
                "form-ip",
                request.client.host if request.client else "unknown",
                Limit(
                    runtime.settings.widget_new_conversations_per_hour,
                    3600,
                    "Too many messages from your network. Please try again later.",
                ),
            )
            ticket = await submit_support_request(
                db_session, runtime.settings, SupportRequest(**values), runtime.clock.now()
            )
        except ValidationFailed as invalid:
            return _form_page(
                request,
                runtime,
                values,
                errors=invalid.fields,
                notice="Please check the marked fields.",
                status_code=422,
            )
        except HelpdeskError as refused:
            return _form_page(
                request, runtime, values, notice=refused.detail, status_code=refused.status_code
            )
        signature = _thanks_signature(runtime.settings.secret_key, ticket.number)
        return Redirect(f"/support/thanks?ticket={ticket.number}&sig={signature}", status_code=303)

    @get("/thanks", summary="Confirmation after the form")
    async def thanks(self, runtime: Runtime, ticket: int, sig: str = "") -> Template:
        expected = _thanks_signature(runtime.settings.secret_key, ticket)
        number = ticket if hmac.compare_digest(expected, sig) else None
        return Template(template_name="support/thanks.html", context={"number": number})

    @get("/privacy", summary="Privacy notice of the support channels")
    async def privacy(self) -> Template:
        return Template(template_name="support/privacy.html", context={})

    @get("/conversations/{public_id:str}", summary="A widget conversation, from reply mail")
    async def conversation(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        public_id: str,
        sig: str = "",
    ) -> Template:
        conversation, ticket = await _linked_conversation(db_session, runtime, public_id, sig)
        return await _conversation_page(request, db_session, runtime, conversation, ticket, sig)

    @post("/conversations/{public_id:str}", status_code=303, request_max_body_size=MAX_FORM_BYTES)
    async def answer(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        public_id: str,
        data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED),
    ) -> Template | Redirect:
        sig = str(data.get("sig", ""))
        conversation, ticket = await _linked_conversation(db_session, runtime, public_id, sig)
        _check_csrf(request, runtime, str(data.get("_csrf", "")))
        try:
            await service.post_message(
                db_session, conversation, str(data.get("body", "")), runtime.clock.now()
            )
        except ValidationFailed as invalid:
            return await _conversation_page(
                request,
                db_session,
                runtime,
                conversation,
                ticket,
                sig,
                error=next(iter(invalid.fields.values())),
                status_code=422,
            )
        return Redirect(f"/support/conversations/{public_id}?sig={sig}", status_code=303)


async def _linked_conversation(
    session: AsyncSession, runtime: Runtime, public_id: str, sig: str
) -> tuple[WidgetConversation, Ticket]:
    state = link_state(runtime.settings.secret_key, public_id, sig, runtime.clock.now())
    if state == "expired":
        raise NotFound(
            "This link has expired. Reply to our latest email, or open the chat on the course "
            "site, and we will pick up where you left off."
        )
    if state != "valid":
        raise NotFound("This link is not valid. Please use the link from your latest email.")
    conversation = await session.scalar(
        select(WidgetConversation).where(col(WidgetConversation.public_id) == public_id)
    )
    if conversation is None:
        raise NotFound("This conversation no longer exists.")
    ticket = await session.get(Ticket, conversation.ticket_id)
    assert ticket is not None
    return conversation, ticket


async def _conversation_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    runtime: Runtime,
    conversation: WidgetConversation,
    ticket: Ticket,
    sig: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    messages = await service.visible_messages(session, conversation.ticket_id)
    # One binding per browser: a second tab of the form must not void the first one's token.
    binding = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = Template(
        template_name="support/conversation.html",
        context={
            "conversation": conversation,
            "ticket": ticket,
            "messages": messages,
            "sig": sig,
            "error": error,
            "csrf": csrf_token(runtime.settings.secret_key, binding),
        },
        status_code=status_code,
    )
    response.cookies.append(
        Cookie(key=CSRF_COOKIE, value=binding, path="/support", httponly=True, samesite="strict")
    )
    return response


@get("/widget/demo", include_in_schema=False)
async def widget_demo(runtime: Runtime) -> Template:
    """A course-site stand-in embedding the widget (for `make run` and the browser test)."""
    return Template(
        template_name="widget/demo_host.html",
        context={"helpdesk_url": runtime.settings.base_url},
    )


def support_headers_middleware(app: Any) -> Any:
    """The inbox's strict security headers on the form pages too."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_wrapper if scope["type"] == "http" else send)

    return middleware


def support_error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Refusals on the form pages are pages (404 for a bad link, 403 for CSRF)."""
    status = exc.status_code if isinstance(exc, HelpdeskError) else 500
    detail = exc.detail if isinstance(exc, HelpdeskError) else "Something went wrong on our side."
    return Template(
        template_name="support/error.html", context={"detail": detail}, status_code=status
    )  # type: ignore[return-value]


support_router = Router(
    path="/",
    route_handlers=[SupportPages],
    middleware=[support_headers_middleware],
    exception_handlers={HelpdeskError: support_error_page},
    include_in_schema=False,
)
