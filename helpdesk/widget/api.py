"""The widget's JSON API (DESIGN §6): thin handlers around `service` and `verification`.

Every conversation endpoint takes `Authorization: Bearer <conversation token>`; a token
of another conversation is answered exactly like a wrong id (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import UploadFile
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.deps import bearer_token
from helpdesk.error_handlers import error_response
from helpdesk.errors import NotFound, ValidationFailed
from helpdesk.metrics import counted_stream
from helpdesk.models import Ticket, WidgetConversation
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.tickets.attachments import content_disposition
from helpdesk.widget import service, verification
from helpdesk.widget.cors import widget_cors_middleware
from helpdesk.widget.events import conversation_events, parse_last_event_id
from helpdesk.widget.feed import learner_feed
from helpdesk.widget.identity import verify_identity
from helpdesk.widget.limits import Check, Limit
from helpdesk.widget.schemas import (
    ConfirmCodeIn,
    ConversationOut,
    DisplayedIn,
    DisplayedOut,
    IdentityIn,
    MessageListOut,
    PostMessageIn,
    SendCodeIn,
    StartConversationIn,
    StartedOut,
    VerificationOut,
    WidgetMessageOut,
    conversation_out,
    message_out,
)
from helpdesk.widget.uploads import MAX_UPLOAD_BYTES

# JSON bodies are small; anything larger is refused (413) before it is read.
MAX_JSON_BYTES = 64 * 1024
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + MAX_JSON_BYTES
SLOW_DOWN = "You are sending messages very fast. Please wait a moment and try again."
TOO_MANY_CONVERSATIONS = (
    "Too many new conversations from your network. Please try again later or email us."
)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content: bytes
    body: str = ""
    website: str = ""


async def read_upload(request: Request[Any, Any, Any]) -> Upload:
    """The multipart form of a file upload: one `file`, optional `body` and honeypot."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationFailed({"file": "Send the file as multipart/form-data."})
    form = await request.form()
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ValidationFailed({"file": "Choose a file to send."})
        content = await file.read()
        body, website = form.get("body", ""), form.get("website", "")
        return Upload(
            filename=file.filename,
            content=content,
            body=body if isinstance(body, str) else "",
            website=website if isinstance(website, str) else "",
        )
    finally:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.close()


def check_honeypot(value: str) -> None:
    """The hidden field robots fill in: refused with a reason, never silently dropped."""
    if value.strip():
        raise ValidationFailed({"website": "Leave this field empty."})


async def limit_posts(runtime: Runtime, request: Request[Any, Any, Any], conversation: str) -> None:
    settings = runtime.settings
    checks: list[Check] = [
        (
            "post-ip",
            client_address(request),
            Limit(settings.widget_ip_posts_per_minute, 60, SLOW_DOWN),
        )
    ]
    if conversation:
        per_conversation = Limit(settings.widget_posts_per_minute, 60, SLOW_DOWN)
        checks.append(("post-conversation", conversation, per_conversation))
    await runtime.limiter.hit_all(checks)


async def authorised(
    request: Request[Any, Any, Any], session: AsyncSession, conversation_id: str
) -> WidgetConversation:
    return await service.find_conversation(session, conversation_id, bearer_token(request))


class ConversationController(Controller):
    path = "/conversations"
    tags = ["widget"]

    @post(
        "",
        summary="Start a conversation (a ticket on channel widget)",
        status_code=201,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        data: StartConversationIn,
    ) -> StartedOut:
        check_honeypot(data.website)
        now = runtime.clock.now()
        identity = (
            verify_identity(runtime.settings.widget_secret, data.identity_token, now)
            if data.identity_token
            else None
        )
        await runtime.limiter.hit(
            "start-ip",
            client_address(request),
            Limit(runtime.settings.widget_new_conversations_per_hour, 3600, TOO_MANY_CONVERSATIONS),
        )
        await limit_posts(runtime, request, "")
        started = await service.start_conversation(
            db_session,
            name=data.name,
            email=identity.email if identity else data.email,
            message=data.message,
            now=now,
        )
        if identity is not None:
            await verification.verify_identity_token(
                db_session, started.conversation, identity, now
            )
        return StartedOut(conversation_out(started.conversation, started.ticket), started.token)

    @get("/{conversation_id:str}", summary="The conversation's state")
    async def show(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, conversation_id: str
    ) -> ConversationOut:
        conversation = await authorised(request, db_session, conversation_id)
        ticket = await db_session.get(Ticket, conversation.ticket_id)
        assert ticket is not None
        return conversation_out(conversation, ticket)

    @get("/{conversation_id:str}/messages", summary="The learner-visible messages")
    async def messages(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        conversation_id: str,
        after: int | None = None,
    ) -> MessageListOut:
        conversation = await authorised(request, db_session, conversation_id)
        items = await learner_feed(
            await db_session.connection(), conversation.ticket_id, after=after
        )
        return MessageListOut(items=items)

    @post(
        "/{conversation_id:str}/messages",
        summary="The learner writes",
        status_code=201,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def post_message(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        data: PostMessageIn,
    ) -> WidgetMessageOut:
        check_honeypot(data.website)
        conversation, ticket = await service.find_conversation_for_posting(
            db_session, conversation_id, bearer_token(request)
        )
        await limit_posts(runtime, request, conversation.public_id)
        message = await service.post_message(
            db_session, conversation, data.body, runtime.clock.now(), ticket=ticket
        )
        return message_out(message)

    @post(
        "/{conversation_id:str}/attachments",
        summary="The learner sends a file (multipart: file, body?): images and PDF, 10 MB",
        status_code=201,
        request_max_body_size=MAX_UPLOAD_REQUEST_BYTES,
    )
    async def post_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
    ) -> WidgetMessageOut:
        conversation = await authorised(request, db_session, conversation_id)
        upload = await read_upload(request)
        check_honeypot(upload.website)
        await limit_posts(runtime, request, conversation.public_id)
        message, attachment = await service.post_file(
            db_session,
            runtime.storage,
            conversation,
            body=upload.body,
            filename=upload.filename,
            content=upload.content,
            now=runtime.clock.now(),
        )
        return message_out(message, [attachment])

    @get("/{conversation_id:str}/attachments/{attachment_id:int}", summary="Download a file")
    async def download(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        attachment_id: int,
    ) -> Response[bytes]:
        conversation = await authorised(request, db_session, conversation_id)
        attachment = await service.learner_attachment(db_session, conversation, attachment_id)
        if not runtime.storage.exists(attachment.storage_path):
            raise NotFound("This file is no longer available.")
        return Response(
            runtime.storage.read(attachment.storage_path),
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": content_disposition(attachment).replace(
                    "inline;", "attachment;"
                ),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-store",
            },
        )

    @post(
        "/{conversation_id:str}/displayed",
        summary="Messages the widget has shown",
        status_code=200,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def displayed(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        data: DisplayedIn,
    ) -> DisplayedOut:
        conversation = await authorised(request, db_session, conversation_id)
        cancelled = await service.mark_displayed(
            db_session, conversation, data.message, runtime.clock.now()
        )
        return DisplayedOut(cancelled_mails=cancelled)

    @get("/{conversation_id:str}/events", summary="Server-Sent Events: new messages")
    async def events(
        self, request: Request[Any, Any, Any], runtime: Runtime, conversation_id: str
    ) -> Stream:
        # No request-long transaction: the stream opens short sessions as it needs them.
        async with runtime.sessions() as session:
            conversation = await authorised(request, session, conversation_id)
        assert conversation.id is not None
        last_id = parse_last_event_id(
            request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        )
        return Stream(
            counted_stream(
                "widget",
                conversation_events(runtime, conversation.id, conversation.ticket_id, last_id),
            ),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    @post(
        "/{conversation_id:str}/verification",
        summary="Mail a 6-digit code",
        status_code=202,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def send_code(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        data: SendCodeIn,
    ) -> Response[VerificationOut]:
        conversation = await authorised(request, db_session, conversation_id)
        await verification.send_code(
            db_session, runtime.settings, conversation, runtime.clock.now(), locale=data.locale
        )
        body = VerificationOut(verified=False, detail="We have sent you a code by email.")
        return Response(body, status_code=202, background=BackgroundTask(kick_delivery, runtime))

    @post(
        "/{conversation_id:str}/verification/confirm",
        summary="Check the emailed code",
        status_code=200,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def confirm_code(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        data: ConfirmCodeIn,
    ) -> Response[Any]:
        conversation = await authorised(request, db_session, conversation_id)
        result = await verification.confirm_code(
            db_session, runtime.settings, conversation, data.code, runtime.clock.now()
        )
        if not result.accepted:
            # Answered, not raised: the request's transaction must commit the spent try.
            return error_response(403, "forbidden", result.reason, tries_left=result.tries_left)
        return Response(VerificationOut(verified=True, detail="Your email address is confirmed."))

    @post(
        "/{conversation_id:str}/identity",
        summary="Verify with the platform's identity_token",
        status_code=200,
        request_max_body_size=MAX_JSON_BYTES,
    )
    async def identity(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        conversation_id: str,
        data: IdentityIn,
    ) -> VerificationOut:
        conversation = await authorised(request, db_session, conversation_id)
        now = runtime.clock.now()
        identity = verify_identity(runtime.settings.widget_secret, data.identity_token, now)
        if conversation.verified_at is None:
            await verification.verify_identity_token(db_session, conversation, identity, now)
        return VerificationOut(verified=True, detail="You are signed in.")


widget_api = Router(
    path="/api/v1/widget",
    route_handlers=[ConversationController],
    middleware=[widget_cors_middleware],
)
