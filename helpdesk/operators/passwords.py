"""Choosing and changing an operator's password: one-time setup links and the account form.

An admin never learns an operator's password: adding an operator (or resetting a
forgotten password) makes a one-time link, shown to the admin once, that the operator
opens to choose their own. Only the SHA-256 of the link's token is stored; it works once
and for three days, and a newer link replaces an older one.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import ValidationFailed
from helpdesk.models import Operator
from helpdesk.operators.service import hash_password, hash_token

SETUP_LINK_LIFETIME = timedelta(days=3)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1000


def setup_link(base_url: str, token: str) -> str:
    """The address an operator opens to choose a password."""
    return f"{base_url}/inbox/welcome?token={token}"


async def issue_setup_link(
    session: AsyncSession, operator: Operator, *, by: Operator | None, now: datetime
) -> str:
    """A new one-time setup token for `operator` (any older one stops working); audited."""
    token = secrets.token_urlsafe(32)
    operator.password_setup_hash = hash_token(token)
    operator.password_setup_expires_at = now + SETUP_LINK_LIFETIME
    actor = f"operator:{by.id}" if by is not None else "system"
    await record_event(session, actor, "operator.setup_link_issued", f"operator:{operator.id}")
    return token


async def operator_for_setup_token(
    session: AsyncSession, token: str, *, now: datetime
) -> Operator | None:
    """The active operator a setup token belongs to, while it is unused and current."""
    if not token or len(token) > 100:
        return None
    operator = (
        await session.scalars(
            select(Operator).where(col(Operator.password_setup_hash) == hash_token(token))
        )
    ).first()
    expires = operator.password_setup_expires_at if operator else None
    if operator is None or not operator.active or expires is None or expires <= now:
        return None
    return operator


def check_new_password(password: str, repeated: str) -> None:
    """ValidationFailed naming the field when a new password is not acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            {"password": f"must be at least {MIN_PASSWORD_LENGTH} characters (a phrase works)"}
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed({"password": f"must be at most {MAX_PASSWORD_LENGTH} characters"})
    if password != repeated:
        raise ValidationFailed({"repeat": "the two passwords are not the same"})


async def set_password_with_link(
    session: AsyncSession, token: str, password: str, repeated: str, *, now: datetime
) -> Operator | None:
    """Use a setup link: set the password and spend the link; None if the link is not valid."""
    operator = await operator_for_setup_token(session, token, now=now)
    if operator is None:
        return None
    check_new_password(password, repeated)
    operator.password_hash = hash_password(password)
    operator.password_setup_hash = operator.password_setup_expires_at = None
    actor = f"operator:{operator.id}"
    await record_event(session, actor, "operator.password_changed", actor, via="setup_link")
    return operator


async def change_password(
    session: AsyncSession, operator: Operator, new: str, repeated: str
) -> None:
    """The account form's new password, twice (audited).

    The caller has checked the current password first, through the sign-in rate limits
    (`helpdesk.inbox.signin.check_password`), so a borrowed session cannot guess it.
    """
    check_new_password(new, repeated)
    operator.password_hash = hash_password(new)
    actor = f"operator:{operator.id}"
    await record_event(session, actor, "operator.password_changed", actor, via="account")
