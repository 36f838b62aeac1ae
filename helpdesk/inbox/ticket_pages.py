"""The ticket page `/inbox/tickets/{number}` and its forms: reply, note, and ticket fields.

Each form POSTs (CSRF-checked by the guard), calls the same service as the JSON API and
redirects back with a flash message (Post/Redirect/Get). A refusal the operator can fix
re-renders the page with the message and what they typed, so nothing is lost, and rolls
the request back (`form_refusals`); a reply to a suppressed address asks for confirmation
("send anyway") instead of sending. The reply form's "Insert" button fills a canned reply
into the draft without JavaScript.
"""

from __future__ import annotations

from typing import Any, NoReturn

from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.response import Redirect, Template
from msgspec import UNSET, UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import HelpdeskError
from helpdesk.inbox.auth import csrf_checked, current_operator, signed_in
from helpdesk.inbox.collisions import SEEN_FIELD, newer_learner_messages, seen_message_id
from helpdesk.inbox.conversation import conversation_items
from helpdesk.inbox.directory import active_operators
from helpdesk.inbox.form_refusals import error_text, refuse
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.inbox.ticket_context import ticket_page_extras, with_canned_reply
from helpdesk.models.tickets import PRIORITIES
from helpdesk.outbound.api import MAX_REQUEST_BYTES
from helpdesk.outbound.service import UploadedFile, queue_reply
from helpdesk.outbound.suppression import RecipientsSuppressed
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.tickets import queries, service
from helpdesk.tickets.lifecycle import ALLOWED_TRANSITIONS
from helpdesk.tickets.links import find_link_candidates


def _url(number: int) -> str:
    return f"/inbox/tickets/{number}"


async def render_ticket(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    number: int,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    """The ticket page; `extra` carries an error, a kept draft or a confirmation step."""
    detail = await queries.get_ticket_detail(db_session, number)
    ticket = detail.row.ticket
    context = {
        "detail": detail,
        "ticket": ticket,
        "items": conversation_items(detail.messages),
        "operators": await active_operators(db_session),
        "priorities": PRIORITIES,
        "next_statuses": sorted(ALLOWED_TRANSITIONS[ticket.status]),
        "error": None,
        "reply_body": "",
        "note_body": "",
        "suppressed": None,
        **await ticket_page_extras(db_session, detail, current_operator(request)),
        **extra,
    }
    return page(request, "inbox/ticket.html", context, status_code=status_code)


async def _refuse(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    number: int,
    refused: HelpdeskError | int,
    **extra: Any,
) -> NoReturn:
    """The ticket page with the refusal (and what was typed); the request rolls back."""
    if isinstance(refused, HelpdeskError):
        status, extra["error"] = refused.status_code, error_text(refused)
    else:
        status = refused

    async def build(session: AsyncSession) -> Template:
        return await render_ticket(request, session, number, status_code=status, **extra)

    await refuse(request, runtime, build)


async def _uploads(form: FormMultiDict) -> list[UploadedFile]:
    files = []
    for value in form.getall("files", []):
        if isinstance(value, UploadFile) and value.filename:
            content = await value.read()
            files.append(UploadedFile(value.filename, value.content_type, content))
    return files


def _changed(form: FormMultiDict, name: str, current: str | None) -> str | None | UnsetType:
    """The form's value when it differs from the ticket's; UNSET when absent or the same."""
    if name not in form:
        return UNSET
    value = str(form.get(name) or "").strip()
    new = value or None
    return UNSET if new == current else new


class TicketPages(Controller):
    path = "/tickets"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("/{number:int}")
    async def show(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        number: int,
        find: str | None = None,
    ) -> Template:
        """The ticket; `find` searches learners and orders to link (learner card)."""
        extra: dict[str, Any] = {}
        if find is not None:
            extra["find_query"] = find
            try:
                extra["link_candidates"] = await find_link_candidates(db_session, find)
            except HelpdeskError as refused:
                extra["link_error"] = error_text(refused)
        return await render_ticket(request, db_session, number, **extra)

    @post("/{number:int}/reply", status_code=303, request_max_body_size=MAX_REQUEST_BYTES)
    async def reply(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Template | Redirect:
        form = await request.form()
        body = str(form.get("body") or "")
        if form.get("action") == "insert-canned":
            return await render_ticket(
                request,
                db_session,
                number,
                reply_body=await with_canned_reply(
                    db_session, number, current_operator(request), body, form.get("canned")
                ),
            )
        ticket = await service.get_ticket(db_session, number)
        if await newer_learner_messages(db_session, ticket, seen_message_id(form.get(SEEN_FIELD))):
            await _refuse(request, runtime, number, 409, reply_body=body, newer_message=True)
        try:
            await queue_reply(
                db_session,
                runtime.settings,
                runtime.storage,
                ticket,
                current_operator(request),
                body,
                now=runtime.clock.now(),
                attachments=await _uploads(form),
                force=form.get("force") == "1",
            )
        except RecipientsSuppressed as held:
            await _refuse(
                request, runtime, number, 409, reply_body=body, suppressed=held.suppressed
            )
        except HelpdeskError as refused:
            await _refuse(request, runtime, number, refused, reply_body=body)
        # The task runs after the response, so after this request committed the outbox row.
        kick = BackgroundTask(kick_delivery, runtime)
        return redirect_with_flash(_url(number), "reply-queued", background=kick)

    @post("/{number:int}/note", status_code=303)
    async def note(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Template | Redirect:
        form = await request.form()
        body = str(form.get("body") or "")
        ticket = await service.get_ticket(db_session, number)
        try:
            await service.add_note(
                db_session,
                ticket,
                operator=current_operator(request),
                body=body,
                now=runtime.clock.now(),
            )
        except HelpdeskError as refused:
            await _refuse(request, runtime, number, refused, note_body=body)
        return redirect_with_flash(_url(number), "note-added")

    @post("/{number:int}/update", status_code=303)
    async def update(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Template | Redirect:
        """Status, assignee, priority and tags; only fields present and changed are applied."""
        form = await request.form()
        ticket = await service.get_ticket(db_session, number)
        row = await queries.ticket_row(db_session, ticket)
        status = _changed(form, "status", ticket.status)
        tags: list[str] | UnsetType = UNSET
        if "tags" in form:
            wanted = [t for t in str(form.get("tags") or "").replace(",", " ").split() if t]
            tags = UNSET if wanted == ticket.tags else wanted
        changes: dict[str, Any] = {
            "status": status,
            "assignee": _changed(form, "assignee", row.assignee_email),
            "priority": _changed(form, "priority", ticket.priority),
            "tags": tags,
        }
        if all(value is UNSET for value in changes.values()):
            return redirect_with_flash(_url(number), "nothing-changed")
        try:
            await service.update_ticket(
                db_session,
                ticket,
                operator=current_operator(request),
                now=runtime.clock.now(),
                **changes,
            )
        except HelpdeskError as refused:
            await _refuse(request, runtime, number, refused)
        solved = status == "solved" and len([v for v in changes.values() if v is not UNSET]) == 1
        return redirect_with_flash(_url(number), "ticket-solved" if solved else "ticket-updated")
