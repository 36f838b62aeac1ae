"""Rectification (GDPR art. 16): the operator corrects name, email or organisation.

The audit log records which fields changed, never the values; the course platform gets a
signed `learner.rectified` event so it can fetch the corrected profile.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models import Learner, PrivacyRequest
from helpdesk.outbound.headers import is_sendable
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.webhook import queue_platform_event

MAX_NAME = 300
MAX_EMAIL = 320


def _checked(
    name: str | None, email: str | None, organisation: str | None
) -> dict[str, str | None]:
    fields: dict[str, str] = {}
    wanted: dict[str, str | None] = {}
    if name is not None:
        wanted["name"] = " ".join(name.split())
        if not wanted["name"] or len(wanted["name"]) > MAX_NAME:
            fields["name"] = f"A name of 1–{MAX_NAME} characters."
    if email is not None:
        wanted["email"] = email.strip()
        if len(email) > MAX_EMAIL or "\n" in email or not is_sendable(wanted["email"] or ""):
            fields["email"] = "A valid email address."
    if organisation is not None:
        wanted["organisation"] = " ".join(organisation.split()) or None
        if len(organisation) > MAX_NAME:
            fields["organisation"] = f"At most {MAX_NAME} characters."
    if fields:
        raise ValidationFailed(fields)
    return wanted


async def rectify(
    session: AsyncSession,
    request: PrivacyRequest,
    learner: Learner,
    *,
    name: str | None,
    email: str | None,
    organisation: str | None,
    now: datetime,
    actor: str,
) -> list[str]:
    """Apply the corrections; returns the names of the fields that changed."""
    wanted = _checked(name, email, organisation)
    changed = [f for f, value in wanted.items() if getattr(learner, f) != value]
    if "email" in changed:
        key = (wanted["email"] or "").lower()
        taken = await session.scalar(
            select(col(Learner.id)).where(
                col(Learner.email_key) == key, col(Learner.id) != learner.id
            )
        )
        if taken is not None:
            raise Conflict("Another learner already has that email address.")
        learner.email_key = key
    for field in changed:
        setattr(learner, field, wanted[field])
    if changed:
        learner.updated_at = now
        await record_event(
            session,
            actor,
            "learner.rectified",
            f"learner:{learner.id}",
            request=request.id,
            fields=changed,
        )
        await queue_platform_event(session, "learner.rectified", learner.external_id, now=now)
    await record_event(
        session, actor, "privacy.rectification_done", request_target(request), fields=changed
    )
    return changed
