"""Inbox pages of retention (admins only): the policy page and the legal-hold form.

`/inbox/admin/retention` shows the windows in force, the last runs, the next scheduled
run and the tickets under legal hold. The ticket page includes a small form
(templates/inbox/legal_hold.html) that posts here to set or lift a hold; both call the
same ticket service as `PUT/DELETE /api/v1/tickets/{number}/legal-hold`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import admin_only, csrf_checked, current_operator, signed_in
from helpdesk.inbox.rendering import FLASHES, page, redirect_with_flash
from helpdesk.retention.overview import retention_overview
from helpdesk.tickets import service

# Flash codes of these pages, registered with the inbox's list of allowed flash messages.
FLASHES.update(
    {
        "legal-hold-set": "Legal hold set: the ticket is kept until its end date.",
        "legal-hold-lifted": "Legal hold lifted: the ticket follows the retention policy again.",
    }
)


class RetentionPages(Controller):
    path = "/admin/retention"
    guards = [signed_in, csrf_checked, admin_only]
    include_in_schema = False

    @get("")
    async def overview(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template:
        """The policy table, recent runs, next run and legal holds."""
        overview = await retention_overview(
            db_session, runtime.settings.retention, runtime.clock.now()
        )
        return page(request, "inbox/retention.html", {"overview": overview})


def _hold_errors(error: ValidationFailed) -> str:
    return " ".join(f"{name.capitalize()}: {text}." for name, text in error.fields.items())


class LegalHoldPages(Controller):
    path = "/tickets/{number:int}/legal-hold"
    guards = [signed_in, csrf_checked, admin_only]
    include_in_schema = False

    @post("", status_code=303)
    async def set_hold(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Template | Redirect:
        """Set (or change) the hold from the form's reason and end date."""
        form = await request.form()
        reason = str(form.get("reason") or "")
        ticket = await service.get_ticket(db_session, number)
        try:
            until = date.fromisoformat(str(form.get("until") or ""))
        except ValueError:
            return await self._refused(request, db_session, number, "Until: give a date.")
        try:
            await service.set_legal_hold(
                db_session,
                ticket,
                operator=current_operator(request),
                reason=reason,
                until=until,
                now=runtime.clock.now(),
            )
        except ValidationFailed as refused:
            return await self._refused(request, db_session, number, _hold_errors(refused))
        return redirect_with_flash(f"/inbox/tickets/{number}", "legal-hold-set")

    @post("/lift", status_code=303)
    async def lift_hold(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        number: int,
    ) -> Redirect:
        """Lift the hold; the ticket follows the retention policy again."""
        ticket = await service.get_ticket(db_session, number)
        await service.lift_legal_hold(
            db_session, ticket, operator=current_operator(request), now=runtime.clock.now()
        )
        return redirect_with_flash(f"/inbox/tickets/{number}", "legal-hold-lifted")

    @staticmethod
    async def _refused(
        request: Request[Any, Any, Any], db_session: AsyncSession, number: int, error: str
    ) -> Template:
        # Imported here: the ticket page module imports much of the inbox.
        from helpdesk.inbox.ticket_pages import render_ticket

        return await render_ticket(request, db_session, number, status_code=422, error=error)


# Registered on the inbox router (helpdesk/inbox/routes.py).
RETENTION_PAGES = [RetentionPages, LegalHoldPages]
