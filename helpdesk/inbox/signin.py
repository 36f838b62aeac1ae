"""Signing in to the inbox: password, optional second factor, rate limits, audit, session.

Failures are limited per account (5 in 15 minutes) and per client address (20 in 15
minutes: an office behind one address has several operators). While a limit is reached
even the right password is refused, so guessing cannot continue at a slower pace
unnoticed. The counts live in the database (`SignInFailure`), so all web processes agree.
The audit log gets the operator id (or "unknown"), never the address typed or a password.
Wrong TOTP or recovery codes count like wrong passwords, against the same limits, and the
account's failures are only forgotten once *both* steps passed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import HelpdeskError
from helpdesk.inbox.sessions import start_session
from helpdesk.models import Operator, OperatorSession, SignInFailure
from helpdesk.operators.second_factor import check_code
from helpdesk.operators.service import find_operator, hash_password, verify_password

WINDOW = timedelta(minutes=15)
MAX_ACCOUNT_FAILURES = 5
MAX_CLIENT_FAILURES = 20
# Verified against when the account does not exist, so an unknown address takes as long
# to refuse as a wrong password (no account discovery by timing).
_DUMMY_HASH = hash_password("no such operator")


class SignInRefused(HelpdeskError):
    code = "unauthorized"
    status_code = 401


class SignInThrottled(HelpdeskError):
    code = "rate_limited"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            f"Too many failed sign-ins. Wait {minutes} minute{'s' if minutes != 1 else ''} "
            "and try again, or ask an admin to check your account."
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    operator: Operator
    token: str
    session: OperatorSession


def failure_key(secret: str, kind: str, value: str) -> str:
    """HMAC of an account address or client address: countable, but not readable."""
    message = f"{kind}:{value.strip().lower()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


async def check_password(
    session: AsyncSession, email: str, password: str, *, client: str, secret: str, now: datetime
) -> Operator:
    """The active operator with this email and password; SignInRefused/Throttled if not.

    The first step of signing in: with a second factor enrolled, `check_second_factor`
    follows; without one, `open_session`.
    """
    account_key = failure_key(secret, "account", email)
    operator = await find_operator(session, email.strip()) if email.strip() else None
    actor = f"operator:{operator.id}" if operator else "unknown"
    await _refuse_if_throttled(
        session, account_key, failure_key(secret, "client", client), actor, now
    )
    valid = verify_password(operator.password_hash if operator else _DUMMY_HASH, password)
    if operator is None or not valid or not operator.active:
        reason = "inactive" if operator is not None and valid else "credentials"
        await _record_failure(session, secret, email, client, actor, reason, now)
        raise SignInRefused("That email and password do not match an active operator.")
    return operator


async def check_second_factor(
    session: AsyncSession,
    operator: Operator,
    code: str,
    *,
    client: str,
    secret: str,
    now: datetime,
) -> str:
    """The second step: a TOTP or recovery code, rate-limited like passwords.

    Returns how the factor was proven ("totp" or "recovery_code"). A wrong code counts
    against the same per-account and per-address limits as a wrong password, so a stolen
    password does not buy unlimited guesses at six digits.
    """
    actor = f"operator:{operator.id}"
    account_key = failure_key(secret, "account", operator.email_key)
    await _refuse_if_throttled(
        session, account_key, failure_key(secret, "client", client), actor, now
    )
    method = await check_code(session, operator, code, secret_key=secret, now=now)
    if method is None or not operator.active:
        await _record_failure(
            session, secret, operator.email_key, client, actor, "second_factor", now
        )
        raise SignInRefused("That code is not right. Check the app and try again.")
    return method


async def open_session(
    session: AsyncSession,
    operator: Operator,
    *,
    secret: str,
    now: datetime,
    user_agent: str | None = None,
    second_factor: str | None = None,
) -> SignedIn:
    """Both steps passed: forget the account's failures and start a brand-new session."""
    account_key = failure_key(secret, "account", operator.email_key)
    await session.execute(
        delete(SignInFailure).where(col(SignInFailure.account_key) == account_key)
    )
    token, row = await start_session(session, operator, now=now, user_agent=user_agent)
    actor = f"operator:{operator.id}"
    details = {"second_factor": second_factor} if second_factor else {}
    await record_event(session, actor, "operator.signed_in", actor, session_id=row.id, **details)
    return SignedIn(operator, token, row)


async def sign_in(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    client: str,
    secret: str,
    now: datetime,
    user_agent: str | None = None,
) -> SignedIn:
    """Password-only sign-in in one call (operators without a second factor)."""
    operator = await check_password(session, email, password, client=client, secret=secret, now=now)
    return await open_session(session, operator, secret=secret, now=now, user_agent=user_agent)


async def _refuse_if_throttled(
    session: AsyncSession, account_key: str, client_key: str, actor: str, now: datetime
) -> None:
    wait = await _throttled_for(session, account_key, client_key, now)
    if wait:
        await record_event(session, actor, "operator.sign_in_failed", actor, reason="throttled")
        raise SignInThrottled(wait)


async def _record_failure(
    session: AsyncSession,
    secret: str,
    email: str,
    client: str,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        SignInFailure(
            account_key=failure_key(secret, "account", email),
            client_key=failure_key(secret, "client", client),
            at=now,
        )
    )
    await session.execute(delete(SignInFailure).where(col(SignInFailure.at) < now - WINDOW))
    await record_event(session, actor, "operator.sign_in_failed", actor, reason=reason)


async def _throttled_for(
    session: AsyncSession, account_key: str, client_key: str, now: datetime
) -> int:
    """Seconds until a sign-in may be tried again (0 when it may be tried now)."""
    waits = [
        await _wait(
            session, col(SignInFailure.account_key) == account_key, MAX_ACCOUNT_FAILURES, now
        ),
        await _wait(session, col(SignInFailure.client_key) == client_key, MAX_CLIENT_FAILURES, now),
    ]
    return max(waits)


async def _wait(session: AsyncSession, condition: object, limit: int, now: datetime) -> int:
    recent = col(SignInFailure.at) >= now - WINDOW
    count = await session.scalar(
        select(func.count()).select_from(SignInFailure).where(condition, recent)  # type: ignore[arg-type]
    )
    if (count or 0) < limit:
        return 0
    # The limit-th newest failure is the one whose expiry brings the count under the limit.
    oldest_counted = await session.scalar(
        select(col(SignInFailure.at))
        .where(condition, recent)  # type: ignore[arg-type]
        .order_by(col(SignInFailure.at).desc())
        .offset(limit - 1)
        .limit(1)
    )
    assert oldest_counted is not None
    return max(1, int((oldest_counted + WINDOW - now).total_seconds()))
