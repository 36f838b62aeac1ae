"""Turning two-step sign-in on and off from the account page (`/inbox/account/second-factor`).

The enrolment page shows the secret as a QR code (inline SVG drawn on the server) and as
an otpauth URI and text for typing by hand; a code from the app confirms it, and the
answer to that form is the only time the recovery codes are shown. Turning it off needs
the password and a current code (or a recovery code), checked and rate-limited exactly
like signing in, so a borrowed unlocked browser cannot remove it.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import ValidationFailed
from helpdesk.inbox.account_pages import account_page, operator_row
from helpdesk.inbox.auth import csrf_checked, signed_in
from helpdesk.inbox.rendering import page, redirect_with_flash
from helpdesk.inbox.signin import (
    SignInRefused,
    SignInThrottled,
    check_password,
    check_second_factor,
)
from helpdesk.models import Operator
from helpdesk.models.operators import SecondFactor
from helpdesk.operators.second_factor import (
    begin_enrolment,
    confirm_enrolment,
    grouped_secret,
    is_enrolled,
    provisioning_uri,
    qr_code_svg,
    remove_second_factor,
    renew_recovery_codes,
)


def _enrol_page(
    request: Request[Any, Any, Any],
    operator: Operator,
    factor: SecondFactor,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    uri = provisioning_uri(factor, operator)
    context = {
        "nav": "account",
        "otpauth_uri": uri,
        "qr_svg": qr_code_svg(uri),
        "secret": grouped_secret(factor.secret),
        "error": error,
    }
    return page(request, "inbox/second_factor_enrol.html", context, status_code=status_code)


class SecondFactorPages(Controller):
    path = "/account/second-factor"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("")
    async def enrol(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """Start (or continue) enrolment: the secret to scan, not yet active."""
        operator = await operator_row(request, db_session)
        if await is_enrolled(db_session, operator):
            return Redirect("/inbox/account", status_code=303)
        factor = await begin_enrolment(db_session, operator, now=runtime.clock.now())
        return _enrol_page(request, operator, factor)

    @post("/confirm", status_code=200)
    async def confirm(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template:
        """The first code turns it on; the recovery codes are shown on this answer only."""
        operator = await operator_row(request, db_session)
        form = await request.form()
        settings = runtime.settings
        try:
            codes = await confirm_enrolment(
                db_session,
                operator,
                str(form.get("code") or "")[:64],
                secret_key=settings.secret_key,
                now=runtime.clock.now(),
            )
        except ValidationFailed as problem:
            factor = await begin_enrolment(db_session, operator, now=runtime.clock.now())
            return _enrol_page(
                request, operator, factor, error=problem.fields["code"], status_code=422
            )
        context = {"nav": "account", "recovery_codes": codes}
        return page(request, "inbox/second_factor_codes.html", context)

    @post("/recovery-codes", status_code=200)
    async def new_recovery_codes(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template:
        """Ten fresh recovery codes for the password (rate-limited); the old ones stop working."""
        operator = await operator_row(request, db_session)
        form = await request.form()
        settings, now = runtime.settings, runtime.clock.now()
        try:
            await check_password(
                db_session,
                operator.email,
                str(form.get("password") or ""),
                client=request.client.host if request.client else "unknown",
                secret=settings.secret_key,
                now=now,
            )
        except (SignInRefused, SignInThrottled) as refusal:
            throttled = isinstance(refusal, SignInThrottled)
            problem = refusal.detail if throttled else "That is not your password."
            return await account_page(
                request,
                db_session,
                runtime,
                errors={"renew": problem},
                status_code=429 if throttled else 422,
            )
        codes = await renew_recovery_codes(
            db_session, operator, secret_key=settings.secret_key, now=now
        )
        context = {"nav": "account", "recovery_codes": codes, "renewed": True}
        return page(request, "inbox/second_factor_codes.html", context)

    @post("/disable", status_code=303)
    async def disable(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, runtime: Runtime
    ) -> Template | Redirect:
        """Turn two-step sign-in off with the password and a code (rate-limited)."""
        operator = await operator_row(request, db_session)
        form = await request.form()
        settings, now = runtime.settings, runtime.clock.now()
        client = request.client.host if request.client else "unknown"
        try:
            await check_password(
                db_session,
                operator.email,
                str(form.get("password") or ""),
                client=client,
                secret=settings.secret_key,
                now=now,
            )
            await check_second_factor(
                db_session,
                operator,
                str(form.get("code") or "")[:64],
                client=client,
                secret=settings.secret_key,
                now=now,
            )
        except (SignInRefused, SignInThrottled) as refusal:
            status = 429 if isinstance(refusal, SignInThrottled) else 422
            return await account_page(
                request,
                db_session,
                runtime,
                errors={"disable": "The password or code is not right."}
                if status == 422
                else {"disable": refusal.detail},
                status_code=status,
            )
        await remove_second_factor(db_session, operator)
        return redirect_with_flash("/inbox/account", "second-factor-off")
