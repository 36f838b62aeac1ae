"""Widget conversations (a learner's chat with support, one per ticket) and email codes."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.adapters.clock import utcnow
from helpdesk.models.types import UtcDateTime

VERIFICATION_METHODS = ("code", "identity_token")


class WidgetConversation(SQLModel, table=True):
    """The widget side of a ticket: the browser's bearer token (hashed) and who it is.

    A conversation is *verified* when `verified_at` is set: the learner proved the address
    with an emailed code or arrived with a signed `identity_token`. Only then is the
    ticket linked to the learner's data and are operator replies also mailed.
    """

    __tablename__ = "widget_conversations"

    id: int | None = Field(default=None, primary_key=True)
    # Random, used in URLs; says nothing about order or volume.
    public_id: str = Field(max_length=32, unique=True)
    ticket_id: int = Field(foreign_key="tickets.id", ondelete="CASCADE", unique=True)
    # SHA-256 (hex) of the conversation token; the token itself is only in the browser.
    token_hash: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=300)
    # As the learner typed it (or as the identity token said).
    email: str = Field(max_length=320)
    learner_id: int | None = Field(
        default=None, foreign_key="learners.id", ondelete="SET NULL", index=True
    )
    verified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    verification_method: str | None = Field(default=None, max_length=20)
    # The newest message the widget reported as shown to the learner.
    last_displayed_message_id: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class VerificationCode(SQLModel, table=True):
    """A 6-digit code mailed to prove an address: hashed, 10 minutes, 5 tries."""

    __tablename__ = "verification_codes"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(
        foreign_key="widget_conversations.id", ondelete="CASCADE", index=True
    )
    # HMAC-SHA256 (hex) of the code with the secret key: six digits are too few to hash plainly.
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    expires_at: datetime = Field(sa_type=UtcDateTime)
    attempts: int = Field(default=0)
    used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
