"""Operators: creation, passwords (argon2) and API tokens (stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, NotFound, ValidationFailed
from helpdesk.models import ApiToken, Operator
from helpdesk.models.operators import ROLES
from helpdesk.validation import normalise_email

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def find_operator(session: AsyncSession, email: str) -> Operator | None:
    result = await session.execute(select(Operator).where(col(Operator.email_key) == email.lower()))
    return result.scalar_one_or_none()


async def create_operator(
    session: AsyncSession,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
    *,
    actor: str = "system",
) -> Operator:
    """Add an operator; the email must be new and the role `agent` or `admin`."""
    errors: dict[str, str] = {}
    address = normalise_email(email)
    if address is None:
        errors["email"] = "not a valid email address"
    if role not in ROLES:
        errors["role"] = "must be agent or admin"
    if not name.strip():
        errors["name"] = "must not be empty"
    if errors:
        raise ValidationFailed(errors)
    assert address is not None
    if await find_operator(session, address):
        raise Conflict("An operator with that email already exists.")
    operator = Operator(
        email=address,
        email_key=address.lower(),
        name=name.strip(),
        role=role,
        password_hash=hash_password(password) if password else None,
    )
    session.add(operator)
    await session.flush()
    await record_event(session, actor, "operator.created", f"operator:{operator.id}", role=role)
    return operator


async def issue_api_token(session: AsyncSession, email: str) -> str:
    """Create a new API token for the operator and return it; only its hash is kept."""
    operator = await find_operator(session, email)
    if operator is None:
        raise NotFound("No operator with that email.")
    assert operator.id is not None, "a loaded operator has an id"
    token = "hd_" + secrets.token_urlsafe(32)
    session.add(ApiToken(operator_id=operator.id, token_hash=hash_token(token)))
    await record_event(session, "system", "api_token.created", f"operator:{operator.id}")
    return token


async def operator_for_token(session: AsyncSession, token: str) -> Operator | None:
    """The active operator owning this API token, or None."""
    result = await session.execute(
        select(Operator)
        .join(ApiToken, col(ApiToken.operator_id) == col(Operator.id))
        .where(col(ApiToken.token_hash) == hash_token(token), col(ApiToken.revoked_at).is_(None))
    )
    operator = result.scalar_one_or_none()
    return operator if operator is not None and operator.active else None
