"""The optional second factor of an operator: TOTP (RFC 6238) and single-use recovery codes.

Enrolment is two steps: a secret is made and shown (otpauth URI and QR code), and it only
becomes active once the operator types a code from their app, so nobody ends up locked out
by an app that never got the secret. Confirming hands out ten recovery codes, shown once
and kept as HMACs. A code is accepted one time step either side of now (clock drift,
RFC 6238 §5.2) and never twice: the step of the last accepted code is stored, so a code
seen over a shoulder or in a proxy log cannot be replayed within its 30 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno
from markupsafe import Markup
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models.operators import Operator, RecoveryCode, SecondFactor

ISSUER = "Helpdesk"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_VALID_WINDOW = 1


def actor(operator: Operator) -> str:
    return f"operator:{operator.id}"


async def second_factor_of(
    session: AsyncSession, operator: Operator, *, lock: bool = False
) -> SecondFactor | None:
    """The operator's authenticator, confirmed or still being enrolled (or None).

    `lock` holds the row until commit (PostgreSQL), so two requests racing with the same
    code cannot both see it unused.
    """
    query = select(SecondFactor).where(col(SecondFactor.operator_id) == operator.id)
    return (await session.scalars(query.with_for_update() if lock else query)).first()


async def is_enrolled(session: AsyncSession, operator: Operator) -> bool:
    """True when sign-in asks this operator for a code after the password."""
    factor = await second_factor_of(session, operator)
    return factor is not None and factor.confirmed_at is not None


async def begin_enrolment(
    session: AsyncSession, operator: Operator, *, now: datetime
) -> SecondFactor:
    """A secret waiting for its first code (the same one again if enrolment was started)."""
    assert operator.id is not None
    factor = await second_factor_of(session, operator)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict("Two-step sign-in is already on. Turn it off first to change apps.")
    if factor is None:
        factor = SecondFactor(operator_id=operator.id, secret=pyotp.random_base32(), created_at=now)
        session.add(factor)
        await session.flush()
    return factor


def provisioning_uri(factor: SecondFactor, operator: Operator) -> str:
    """The otpauth:// URI an authenticator app reads (Key Uri Format)."""
    return pyotp.TOTP(factor.secret).provisioning_uri(name=operator.email, issuer_name=ISSUER)


def qr_code_svg(uri: str) -> Markup:
    """The URI as an inline SVG QR code, drawn on the server (no script, no image request)."""
    return Markup(segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your app"))


def grouped_secret(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


async def confirm_enrolment(
    session: AsyncSession, operator: Operator, code: str, *, secret_key: str, now: datetime
) -> list[str]:
    """Turn the factor on with a first valid code; returns the recovery codes (shown once)."""
    factor = await second_factor_of(session, operator)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict("There is no two-step sign-in waiting to be confirmed.")
    step = _matching_step(factor, code, now)
    if step is None:
        raise ValidationFailed({"code": "That code is not right. Check the app and try again."})
    factor.confirmed_at, factor.last_step = now, step
    codes = await _new_recovery_codes(session, operator, secret_key=secret_key, now=now)
    await record_event(session, actor(operator), "operator.second_factor_enabled", actor(operator))
    return codes


async def check_code(
    session: AsyncSession, operator: Operator, code: str, *, secret_key: str, now: datetime
) -> str | None:
    """Which way `code` proves the second factor ("totp" or "recovery_code"), or None.

    A TOTP code is used up by this call; so is a recovery code (audited, with how many
    are left).
    """
    factor = await second_factor_of(session, operator, lock=True)
    if factor is None or factor.confirmed_at is None:
        return None
    step = _matching_step(factor, code, now)
    if step is not None:
        factor.last_step = step
        return "totp"
    if await _use_recovery_code(session, operator, code, secret_key=secret_key, now=now):
        return "recovery_code"
    return None


async def renew_recovery_codes(
    session: AsyncSession, operator: Operator, *, secret_key: str, now: datetime
) -> list[str]:
    """Ten new recovery codes (shown once); the old ones stop working. Audited."""
    if not await is_enrolled(session, operator):
        raise Conflict("Two-step sign-in is not on.")
    codes = await _new_recovery_codes(session, operator, secret_key=secret_key, now=now)
    await record_event(session, actor(operator), "operator.recovery_codes_renewed", actor(operator))
    return codes


async def remaining_recovery_codes(session: AsyncSession, operator: Operator) -> int:
    """How many unused recovery codes the operator still has."""
    rows = await session.scalars(
        select(col(RecoveryCode.id)).where(
            col(RecoveryCode.operator_id) == operator.id, col(RecoveryCode.used_at).is_(None)
        )
    )
    return len(list(rows))


async def remove_second_factor(
    session: AsyncSession,
    operator: Operator,
    *,
    by: Operator | None = None,
    by_system: bool = False,
) -> bool:
    """Delete the authenticator and recovery codes (audited); False if there was none.

    `by` is the admin who reset it for the operator, `by_system` the command line; neither
    when the operator turned it off themselves.
    """
    factor = await second_factor_of(session, operator)
    if factor is None:
        return False
    await session.delete(factor)
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.operator_id) == operator.id))
    if by is None and not by_system:
        await record_event(
            session, actor(operator), "operator.second_factor_disabled", actor(operator)
        )
    else:
        who = actor(by) if by is not None else "system"
        await record_event(session, who, "operator.second_factor_reset", actor(operator))
    return True


def _matching_step(factor: SecondFactor, code: str, now: datetime) -> int | None:
    """The time step whose code this is, if it is valid now and newer than the last used."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(factor.secret)
    current = totp.timecode(now)
    for step in range(current - _VALID_WINDOW, current + _VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            if factor.last_step is not None and step <= factor.last_step:
                return None  # replayed (or older than one already used)
            return step
    return None


def recovery_code_hash(secret_key: str, code: str) -> str:
    """HMAC (secret key) of a recovery code, ignoring case, spaces and dashes."""
    normal = "".join(c for c in code.lower() if c.isalnum())
    return hmac.new(secret_key.encode(), f"recovery:{normal}".encode(), hashlib.sha256).hexdigest()


async def _new_recovery_codes(
    session: AsyncSession, operator: Operator, *, secret_key: str, now: datetime
) -> list[str]:
    assert operator.id is not None
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.operator_id) == operator.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))  # ~49 bits
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(
            RecoveryCode(
                operator_id=operator.id,
                code_hash=recovery_code_hash(secret_key, raw),
                created_at=now,
            )
        )
    await session.flush()
    return codes


async def _use_recovery_code(
    session: AsyncSession, operator: Operator, code: str, *, secret_key: str, now: datetime
) -> bool:
    if len(code) > 40:
        return False
    wanted = recovery_code_hash(secret_key, code)
    unused = await session.scalars(
        select(RecoveryCode).where(
            col(RecoveryCode.operator_id) == operator.id, col(RecoveryCode.used_at).is_(None)
        )
    )
    match = next((r for r in unused if hmac.compare_digest(r.code_hash, wanted)), None)
    if match is None:
        return False
    match.used_at = now
    left = await remaining_recovery_codes(session, operator)
    await record_event(
        session, actor(operator), "operator.recovery_code_used", actor(operator), remaining=left
    )
    return True
