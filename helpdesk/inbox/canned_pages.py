"""Admin page of canned replies: list, create, edit and delete (agents only use them)."""

from __future__ import annotations

from typing import Any, NoReturn

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import HelpdeskError
from helpdesk.inbox.auth import admin_only, csrf_checked, current_operator, signed_in
from helpdesk.inbox.form_refusals import error_text, refuse
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.tickets import canned

PAGE = "/inbox/admin/canned"


async def render_canned_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    """Every canned reply with an edit form, and a form for a new one."""
    context = {
        "canned_replies": await canned.list_canned_replies(session),
        "variables": canned.VARIABLES,
        "error": None,
        "draft": {"title": "", "body": ""},
        "editing": None,
        **extra,
    }
    return page(request, "inbox/canned_replies.html", context, status_code=status_code)


async def _refuse(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    refused: HelpdeskError,
    **extra: Any,
) -> NoReturn:
    async def build(session: AsyncSession) -> Template:
        return await render_canned_page(
            request, session, status_code=refused.status_code, error=error_text(refused), **extra
        )

    await refuse(request, runtime, build)


class CannedReplyPages(Controller):
    path = "/admin/canned"
    guards = [signed_in, csrf_checked, admin_only]
    include_in_schema = False

    @get("")
    async def index(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        return await render_canned_page(request, db_session)

    @post("", status_code=303)
    async def create(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Redirect:
        form = await request.form()
        title, body = str(form.get("title") or ""), str(form.get("body") or "")
        try:
            await canned.create_canned_reply(
                db_session,
                operator=current_operator(request),
                title=title,
                body=body,
                now=runtime.clock.now(),
            )
        except HelpdeskError as refused:
            await _refuse(request, runtime, refused, draft={"title": title, "body": body})
        return redirect_with_flash(PAGE, "canned-saved")

    @post("/{canned_id:int}", status_code=303)
    async def update(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        canned_id: int,
    ) -> Redirect:
        form = await request.form()
        title, body = str(form.get("title") or ""), str(form.get("body") or "")
        try:
            reply = await canned.get_canned_reply(db_session, canned_id)
            await canned.update_canned_reply(
                db_session,
                reply,
                operator=current_operator(request),
                title=title,
                body=body,
                now=runtime.clock.now(),
            )
        except HelpdeskError as refused:
            await _refuse(request, runtime, refused, editing=canned_id)
        return redirect_with_flash(PAGE, "canned-saved")

    @post("/{canned_id:int}/delete", status_code=303)
    async def delete(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, canned_id: int
    ) -> Redirect:
        reply = await canned.get_canned_reply(db_session, canned_id)
        await canned.delete_canned_reply(db_session, reply, operator=current_operator(request))
        return redirect_with_flash(PAGE, "canned-deleted")
