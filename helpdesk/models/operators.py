"""Operators who answer tickets, their API tokens, inbox sessions and failed sign-ins,
their second factor (TOTP and recovery codes) and their notification choices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import false
from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

ROLES = ("agent", "admin")
MAIL_LOCALES = ("nb", "en")


class Operator(SQLModel, table=True):
    __tablename__ = "operators"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    email_key: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    role: str = Field(default="agent", max_length=10)
    password_hash: str | None = Field(default=None, max_length=200)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # Email notifications the operator opted in to (off until chosen on the account page).
    notify_assigned: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    notify_learner_reply: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    mail_locale: str = Field(default="nb", max_length=5, sa_column_kwargs={"server_default": "nb"})
    # A one-time link to choose a password (new operator, or an admin's reset): only the
    # SHA-256 of its token is kept, and it stops working at `password_setup_expires_at`.
    password_setup_hash: str | None = Field(default=None, max_length=64, unique=True)
    password_setup_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token of an operator; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", ondelete="CASCADE", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class OperatorSession(SQLModel, table=True):
    """A signed-in browser of the inbox; only the SHA-256 of its cookie token is stored.

    Valid while not revoked, not past `expires_at` (30 days, moved forward as it is used)
    and its operator is active.
    """

    __tablename__ = "operator_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    operator_id: int = Field(foreign_key="operators.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime, index=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    user_agent: str | None = Field(default=None, max_length=200)


class SignInFailure(SQLModel, table=True):
    """A failed inbox sign-in, counted per account and per client address for rate limiting.

    Kept in the database so every web process sees the same counts. Both keys are HMACs
    (with the secret key) of the lower-cased email and of the IP address: the table holds
    no addresses. Rows older than the limit's window are deleted as new ones are written.
    """

    __tablename__ = "sign_in_failures"

    id: int | None = Field(default=None, primary_key=True)
    account_key: str = Field(max_length=64, index=True)
    client_key: str = Field(max_length=64, index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)


class SecondFactor(SQLModel, table=True):
    """An operator's TOTP authenticator (RFC 6238); active once `confirmed_at` is set.

    The shared secret has to be readable to check codes, so it is stored as it is; the
    database alone still does not let anyone sign in (passwords are argon2 hashes).
    `last_step` is the time step of the last accepted code: a code is never taken twice.
    """

    __tablename__ = "second_factors"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", ondelete="CASCADE", unique=True)
    secret: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_step: int | None = Field(default=None)


class RecoveryCode(SQLModel, table=True):
    """A single-use recovery code of a second factor; only its HMAC (secret key) is kept."""

    __tablename__ = "recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", ondelete="CASCADE", index=True)
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
