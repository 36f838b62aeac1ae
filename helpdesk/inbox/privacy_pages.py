"""Inbox pages of privacy requests: the list (overdue first), one request with its actions
(confirm the kind, resend the link, fulfil, refuse, extend, lift a restriction, redact
mentions) and converting a ticket. Each POST calls one `helpdesk.privacy` service operation
and redirects back; a refusal (403, 409, 422) shows the inbox error page and rolls back.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import csrf_checked, current_operator, signed_in
from helpdesk.inbox.rendering import page
from helpdesk.models import Learner
from helpdesk.models.privacy import KINDS, STATUSES
from helpdesk.outbound.tasks import kick_delivery
from helpdesk.privacy import redaction, service
from helpdesk.privacy.deadlines import current_deadline, is_overdue
from helpdesk.tickets.service import get_ticket


def _back(request_id: int, runtime: Runtime) -> Redirect:
    # Mail queued by the action is delivered once this request's transaction has committed.
    return Redirect(
        f"/inbox/privacy/{request_id}",
        status_code=303,
        background=BackgroundTask(kick_delivery, runtime),
    )


def _text(form: Any, field: str) -> str | None:
    value = form.get(field)
    return str(value).strip() if value not in (None, "") else None


def _months(form: Any) -> int:
    raw = str(form.get("months") or "").strip()
    if raw not in ("1", "2"):
        raise ValidationFailed({"months": "Extend by 1 or 2 months."})
    return int(raw)


class PrivacyPages(Controller):
    path = "/privacy"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("", summary="Privacy requests, overdue first")
    async def list_requests(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        status: str | None = None,
    ) -> Template:
        now = runtime.clock.now()
        page_of = await service.list_requests(db_session, status or None, limit=500)
        items = [
            {
                "request": r,
                "ticket": t,
                "deadline": current_deadline(r),
                "overdue": is_overdue(r, now),
            }
            for r, t in page_of.rows
        ]
        context = {"items": items, "statuses": STATUSES, "status": status or "", "nav": "privacy"}
        return page(request, "inbox/privacy_list.html", context)

    @get("/{request_id:int}", summary="One privacy request")
    async def show(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Template:
        case = await service.get_request(db_session, request_id)
        ticket = await service.ticket_of(db_session, case)
        learner = await db_session.get(Learner, case.learner_id) if case.learner_id else None
        context = {
            "case": case,
            "ticket": ticket,
            "learner": learner,
            "kinds": KINDS,
            "deadline": current_deadline(case),
            "overdue": is_overdue(case, runtime.clock.now()),
            "mentions": await redaction.pending_mentions(db_session, case),
            "nav": "privacy",
        }
        return page(request, "inbox/privacy_request.html", context)

    @post("/tickets/{number:int}/convert", status_code=303)
    async def convert(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Make the ticket a privacy request, or confirm the suggested one with this kind."""
        form = await request.form()
        ticket = await get_ticket(db_session, number)
        case = await service.convert_ticket(
            db_session,
            runtime.settings,
            ticket,
            str(form.get("kind") or ""),
            operator=current_operator(request),
            now=runtime.clock.now(),
        )
        assert case.id is not None
        return _back(case.id, runtime)

    @post("/{request_id:int}/fulfil", status_code=303)
    async def fulfil(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Redirect:
        form = await request.form()
        case = await service.get_request(db_session, request_id)
        decision = service.Fulfilment(
            name=_text(form, "name"),
            email=_text(form, "email"),
            organisation=_text(form, "organisation"),
            decision=_text(form, "decision"),
        )
        await service.fulfil(
            db_session,
            runtime.settings,
            runtime.storage,
            case,
            operator=current_operator(request),
            now=runtime.clock.now(),
            decision=decision,
        )
        return _back(request_id, runtime)

    @post("/{request_id:int}/refuse", status_code=303)
    async def refuse(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Redirect:
        form = await request.form()
        case = await service.get_request(db_session, request_id)
        await service.refuse(
            db_session,
            runtime.settings,
            case,
            operator=current_operator(request),
            reason=str(form.get("reason") or ""),
            now=runtime.clock.now(),
        )
        return _back(request_id, runtime)

    @post("/{request_id:int}/extend", status_code=303)
    async def extend(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Redirect:
        form = await request.form()
        case = await service.get_request(db_session, request_id)
        await service.extend(
            db_session,
            runtime.settings,
            case,
            operator=current_operator(request),
            months=_months(form),
            reason=str(form.get("reason") or ""),
            now=runtime.clock.now(),
        )
        return _back(request_id, runtime)

    @post("/{request_id:int}/verification", status_code=303)
    async def resend_verification(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Redirect:
        case = await service.get_request(db_session, request_id)
        await service.resend_verification(
            db_session,
            runtime.settings,
            case,
            operator=current_operator(request),
            now=runtime.clock.now(),
        )
        return _back(request_id, runtime)

    @post("/{request_id:int}/lift-restriction", status_code=303)
    async def lift_restriction(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
    ) -> Redirect:
        case = await service.get_request(db_session, request_id)
        await service.lift_restriction(
            db_session,
            runtime.settings,
            case,
            operator=current_operator(request),
            now=runtime.clock.now(),
        )
        return _back(request_id, runtime)

    @post("/{request_id:int}/mentions/{number:int}/redact", status_code=303)
    async def redact(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        request_id: int,
        number: int,
    ) -> Redirect:
        """Replace the erased learner's name and address in that ticket with "[slettet]"."""
        case = await service.get_request(db_session, request_id)
        ticket = await get_ticket(db_session, number)
        await redaction.redact_ticket(
            db_session,
            runtime.storage,
            case,
            ticket,
            actor=service.actor_of(current_operator(request)),
            now=runtime.clock.now(),
        )
        return _back(request_id, runtime)
