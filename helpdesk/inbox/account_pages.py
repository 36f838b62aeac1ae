"""The operator's own account page: password, two-step sign-in, notifications, sessions.

`/inbox/account` shows everything; each form posts to its own action and comes back with
a flash message (Post/Redirect/Get), or shows the page again with the field's problem.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.service import record_event
from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import SESSION_COOKIE, csrf_checked, current_operator, signed_in
from helpdesk.inbox.browsers import browser_label
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.inbox.sessions import active_sessions, end_other_sessions, end_session_by_id
from helpdesk.inbox.signin import SignInRefused, SignInThrottled, check_password
from helpdesk.models import Operator
from helpdesk.models.operators import MAIL_LOCALES
from helpdesk.operators.passwords import MIN_PASSWORD_LENGTH, change_password
from helpdesk.operators.second_factor import is_enrolled, remaining_recovery_codes
from helpdesk.operators.service import hash_token


async def operator_row(request: Request[Any, Any, Any], db_session: AsyncSession) -> Operator:
    """The signed-in operator as a row of this request's transaction (to change it)."""
    row = await db_session.get(Operator, current_operator(request).id)
    assert row is not None, "the session guard found this operator"
    return row


async def account_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    runtime: Runtime,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    """The account page of the signed-in operator (also re-shown with a form's errors)."""
    operator = current_operator(request)
    current_hash = hash_token(request.cookies.get(SESSION_COOKIE, ""))
    enrolled = await is_enrolled(db_session, operator)
    context = {
        "nav": "account",
        "errors": errors or {},
        "enrolled": enrolled,
        "recovery_left": await remaining_recovery_codes(db_session, operator) if enrolled else 0,
        "sessions": await active_sessions(db_session, operator, now=runtime.clock.now()),
        "current_session_hash": current_hash,
        "min_password_length": MIN_PASSWORD_LENGTH,
        "mail_locales": MAIL_LOCALES,
        "browser_label": browser_label,
        **extra,
    }
    return page(request, "inbox/account.html", context, status_code=status_code)


class AccountPages(Controller):
    path = "/account"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("")
    async def account(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template:
        return await account_page(request, db_session, runtime)

    @post("/password", status_code=303)
    async def password(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """Change the password; every other signed-in browser is signed out."""
        operator = await operator_row(request, db_session)
        form = await request.form()
        try:
            await check_password(
                db_session,
                operator.email,
                str(form.get("current") or ""),
                client=request.client.host if request.client else "unknown",
                secret=runtime.settings.secret_key,
                now=runtime.clock.now(),
            )
        except SignInThrottled as refusal:
            errors = {"current": refusal.detail}
            return await account_page(request, db_session, runtime, errors=errors, status_code=429)
        except SignInRefused:
            errors = {"current": "That is not your current password."}
            return await account_page(request, db_session, runtime, errors=errors, status_code=422)
        try:
            await change_password(
                db_session, operator, str(form.get("password") or ""), str(form.get("repeat") or "")
            )
        except ValidationFailed as problem:
            return await account_page(
                request, db_session, runtime, errors=problem.fields, status_code=422
            )
        await end_other_sessions(
            db_session, operator, request.cookies[SESSION_COOKIE], now=runtime.clock.now()
        )
        return redirect_with_flash("/inbox/account", "password-changed")

    @post("/notifications", status_code=303)
    async def notifications(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Redirect:
        """Opt in or out of email notifications (checkboxes: absent means off)."""
        operator = await operator_row(request, db_session)
        form = await request.form()
        locale = str(form.get("mail_locale") or operator.mail_locale)
        if locale not in MAIL_LOCALES:
            raise ValidationFailed({"mail_locale": "must be nb or en"}, "Choose nb or en.")
        await _save_notifications(
            db_session,
            operator,
            assigned=form.get("notify_assigned") == "on",
            learner_reply=form.get("notify_learner_reply") == "on",
            locale=locale,
        )
        return redirect_with_flash("/inbox/account", "notifications-saved")

    @post("/sessions/{session_id:int}/end", status_code=303)
    async def end_one_session(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        runtime: Runtime,
        session_id: int,
    ) -> Redirect:
        """Sign out one of my other browsers (a forgotten shared computer)."""
        operator = current_operator(request)
        await end_session_by_id(db_session, operator, session_id, now=runtime.clock.now())
        return redirect_with_flash("/inbox/account", "session-ended")


async def _save_notifications(
    session: AsyncSession, operator: Operator, *, assigned: bool, learner_reply: bool, locale: str
) -> None:
    operator.notify_assigned, operator.notify_learner_reply = assigned, learner_reply
    operator.mail_locale = locale
    actor = f"operator:{operator.id}"
    await record_event(
        session,
        actor,
        "operator.notifications_changed",
        actor,
        assigned=assigned,
        learner_reply=learner_reply,
        locale=locale,
    )
