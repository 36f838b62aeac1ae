"""Six-digit email codes that prove a widget learner owns the address they typed.

A code lives 10 minutes, allows 5 tries and is stored as an HMAC with the secret key
(a plain hash of six digits is reversed in a millisecond). Each try is counted by one
conditional UPDATE, so concurrent guesses cannot share a try. Issuing is limited per
conversation (one a minute, three an hour), counted in the database so every web
process applies the same limit to the learner's mailbox.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.errors import RateLimited
from helpdesk.models import VerificationCode, WidgetConversation

CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_AFTER = timedelta(seconds=60)
CODES_PER_HOUR = 3


def code_hash(secret_key: str, conversation_id: int, code: str) -> str:
    """The stored form of a code, bound to its conversation."""
    message = f"widget-code:{conversation_id}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


async def issue_code(
    session: AsyncSession, secret_key: str, conversation: WidgetConversation, now: datetime
) -> str:
    """A new code for the conversation (earlier ones stop working); RateLimited when too soon."""
    assert conversation.id is not None
    recent = (
        await session.execute(
            select(func.count(), func.max(col(VerificationCode.created_at))).where(
                col(VerificationCode.conversation_id) == conversation.id,
                col(VerificationCode.created_at) > now - timedelta(hours=1),
            )
        )
    ).one()
    count, latest = recent
    if latest is not None and latest > now - RESEND_AFTER:
        wait = int((latest + RESEND_AFTER - now).total_seconds()) + 1
        raise RateLimited(
            f"A code was just sent. You can ask for a new one in {wait} seconds.", wait
        )
    if count >= CODES_PER_HOUR:
        raise RateLimited("Too many codes were sent. Please try again in an hour.", 3600)
    await session.execute(
        update(VerificationCode)
        .where(
            col(VerificationCode.conversation_id) == conversation.id,
            col(VerificationCode.used_at).is_(None),
        )
        .values(expires_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        VerificationCode(
            conversation_id=conversation.id,
            code_hash=code_hash(secret_key, conversation.id, code),
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    )
    await session.flush()
    return code


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of one try: `accepted`, else why not and how many tries are left."""

    accepted: bool
    reason: str = ""
    tries_left: int = 0


async def check_code(
    session: AsyncSession,
    secret_key: str,
    conversation: WidgetConversation,
    code: str,
    now: datetime,
) -> CodeCheck:
    """Spend one try on the current code; mark it used when it matches.

    The caller commits even when the code is refused, so the try is counted.
    """
    assert conversation.id is not None
    current = await session.scalar(
        select(col(VerificationCode.id))
        .where(
            col(VerificationCode.conversation_id) == conversation.id,
            col(VerificationCode.used_at).is_(None),
            col(VerificationCode.expires_at) > now,
        )
        .order_by(col(VerificationCode.created_at).desc())
        .limit(1)
    )
    if current is None:
        return CodeCheck(False, "The code has expired. Ask for a new one.")
    spent = (
        await session.execute(
            update(VerificationCode)
            .where(
                col(VerificationCode.id) == current,
                col(VerificationCode.attempts) < MAX_ATTEMPTS,
                col(VerificationCode.used_at).is_(None),
            )
            .values(attempts=col(VerificationCode.attempts) + 1)
            .returning(col(VerificationCode.attempts), col(VerificationCode.code_hash))
        )
    ).one_or_none()
    if spent is None:
        return CodeCheck(False, "Too many wrong tries. Ask for a new code.")
    attempts, stored = spent
    candidate = "".join(code.split())
    if not hmac.compare_digest(stored, code_hash(secret_key, conversation.id, candidate)):
        left = MAX_ATTEMPTS - attempts
        if left <= 0:
            return CodeCheck(False, "Too many wrong tries. Ask for a new code.")
        return CodeCheck(False, f"That code is not right. {left} tries left.", left)
    await session.execute(
        update(VerificationCode).where(col(VerificationCode.id) == current).values(used_at=now)
    )
    return CodeCheck(True)
