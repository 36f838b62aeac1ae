"""Inbox sessions: random cookie tokens stored as SHA-256, rolling 30 days, revocable.

A session stops working when it is revoked (sign out, sign out everywhere), when it was
not used for 30 days, or when its operator is deactivated. Only the hash of the token is
stored, so a copy of the database does not let anyone sign in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.models import Operator, OperatorSession
from helpdesk.operators.service import hash_token

SESSION_LIFETIME = timedelta(days=30)
# Moving the expiry forward on every request would write on every page view; once every
# few minutes keeps the rolling window with a small fraction of the writes.
TOUCH_INTERVAL = timedelta(minutes=5)
MAX_USER_AGENT = 200


@dataclass(frozen=True)
class ActiveSession:
    operator: Operator
    session: OperatorSession
    # True when this request moved the expiry forward (the cookie should be re-sent).
    renewed: bool


def new_session_token() -> str:
    """A fresh 256-bit token for the cookie (never derived from anything the client sent)."""
    return secrets.token_urlsafe(32)


async def start_session(
    session: AsyncSession, operator: Operator, *, now: datetime, user_agent: str | None
) -> tuple[str, OperatorSession]:
    """A new session for a signed-in operator; returns the cookie token and the row."""
    assert operator.id is not None
    token = new_session_token()
    row = OperatorSession(
        token_hash=hash_token(token),
        operator_id=operator.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_LIFETIME,
        user_agent=(user_agent or "")[:MAX_USER_AGENT] or None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def resume_session(
    session: AsyncSession, token: str, *, now: datetime
) -> ActiveSession | None:
    """The operator behind a cookie token, extending the session; None if it is not valid."""
    found = (
        await session.execute(
            select(OperatorSession, Operator)
            .join(Operator, col(Operator.id) == col(OperatorSession.operator_id))
            .where(col(OperatorSession.token_hash) == hash_token(token))
        )
    ).first()
    if found is None:
        return None
    row, operator = found
    if row.revoked_at is not None or row.expires_at <= now or not operator.active:
        return None
    renewed = now - row.last_seen_at >= TOUCH_INTERVAL
    if renewed:
        row.last_seen_at, row.expires_at = now, now + SESSION_LIFETIME
    return ActiveSession(operator, row, renewed)


async def end_session(session: AsyncSession, token: str, *, now: datetime) -> bool:
    """Sign out this browser: revoke its session (audited); False if it was not valid."""
    active = await resume_session(session, token, now=now)
    if active is None:
        return False
    active.session.revoked_at = now
    actor = f"operator:{active.operator.id}"
    await record_event(session, actor, "operator.signed_out", actor, sessions=1)
    return True


async def end_all_sessions(session: AsyncSession, operator: Operator, *, now: datetime) -> int:
    """Sign out everywhere: revoke every live session of the operator; returns how many."""
    result = await session.execute(
        update(OperatorSession)
        .where(
            col(OperatorSession.operator_id) == operator.id,
            col(OperatorSession.revoked_at).is_(None),
            col(OperatorSession.expires_at) > now,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    actor = f"operator:{operator.id}"
    await record_event(
        session, actor, "operator.signed_out", actor, sessions=count, everywhere=True
    )
    return count


async def active_sessions(
    session: AsyncSession, operator: Operator, *, now: datetime
) -> list[OperatorSession]:
    """The operator's live sessions (signed-in browsers), most recently used first."""
    rows = await session.scalars(
        select(OperatorSession)
        .where(
            col(OperatorSession.operator_id) == operator.id,
            col(OperatorSession.revoked_at).is_(None),
            col(OperatorSession.expires_at) > now,
        )
        .order_by(col(OperatorSession.last_seen_at).desc(), col(OperatorSession.id).desc())
    )
    return list(rows)


async def end_session_by_id(
    session: AsyncSession, operator: Operator, session_id: int, *, now: datetime
) -> bool:
    """Sign out one of the operator's own browsers from the account page (audited)."""
    row = await session.get(OperatorSession, session_id)
    if row is None or row.operator_id != operator.id or row.revoked_at is not None:
        return False
    row.revoked_at = now
    actor = f"operator:{operator.id}"
    await record_event(session, actor, "operator.signed_out", actor, sessions=1, remote=True)
    return True


async def end_other_sessions(
    session: AsyncSession, operator: Operator, keep_token: str, *, now: datetime
) -> int:
    """Revoke every session but this browser's (after a password change); returns how many."""
    result = await session.execute(
        update(OperatorSession)
        .where(
            col(OperatorSession.operator_id) == operator.id,
            col(OperatorSession.token_hash) != hash_token(keep_token),
            col(OperatorSession.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
