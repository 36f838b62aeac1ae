"""Proportionate identity verification of privacy requests (no ID copies).

A request from a verified widget identity of the ticket's learner is verified. Otherwise a
single-use link, valid 7 days and stored only as a SHA-256, goes to the address registered
for the learner; the request is verified when the learner confirms on the page it opens
(GET shows, POST confirms: mail scanners follow links). A requester we cannot tie to a
learner is "unknown": their case covers only the ticket itself, so it proceeds on that.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.config import Settings
from helpdesk.models import PrivacyLink, PrivacyRequest, Ticket, WidgetConversation
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.notices import send_notice

LINK_LIFETIME = timedelta(days=7)


def hash_token(token: str) -> str:
    """The stored form of a link token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_link(
    session: AsyncSession,
    request: PrivacyRequest,
    purpose: str,
    *,
    now: datetime,
    max_downloads: int = 1,
    file_path: str | None = None,
) -> str:
    """Store a new link of `purpose` and return its token (which only the mail carries)."""
    assert request.id is not None
    token = secrets.token_urlsafe(32)
    session.add(
        PrivacyLink(
            request_id=request.id,
            purpose=purpose,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + LINK_LIFETIME,
            max_downloads=max_downloads,
            file_path=file_path,
        )
    )
    await session.flush()
    return token


async def usable_link(
    session: AsyncSession, token: str, purpose: str, now: datetime
) -> PrivacyLink | None:
    """The link of this token if it is unexpired, unused and has downloads left."""
    if not token or len(token) > 200:
        return None
    result = await session.execute(
        select(PrivacyLink).where(
            col(PrivacyLink.token_hash) == hash_token(token), col(PrivacyLink.purpose) == purpose
        )
    )
    link = result.scalar_one_or_none()
    if link is None or link.expires_at <= now or link.used_at is not None:
        return None
    if link.downloads >= link.max_downloads:
        return None
    return link


async def assess_identity(session: AsyncSession, ticket: Ticket) -> str | None:
    """How the request counts as verified at once, or None when the learner must confirm."""
    if ticket.learner_id is None:
        return "unknown-requester"
    if await _verified_widget_identity(session, ticket):
        return "widget-identity"
    return None


async def _verified_widget_identity(session: AsyncSession, ticket: Ticket) -> bool:
    result = await session.execute(
        select(col(WidgetConversation.id)).where(
            col(WidgetConversation.ticket_id) == ticket.id,
            col(WidgetConversation.verified_at).is_not(None),
            col(WidgetConversation.learner_id) == ticket.learner_id,
        )
    )
    return result.first() is not None


async def ask_for_verification(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    now: datetime,
) -> None:
    """Mail a confirmation link to the learner's registered address; audited."""
    token = await issue_link(session, request, "verify", now=now)
    url = f"{settings.base_url.rstrip('/')}/privacy/verify/{token}"
    await send_notice(
        session,
        settings,
        request,
        ticket,
        template="verify",
        subject="verify",
        now=now,
        link_url=url,
        context={"expires_at": now + LINK_LIFETIME},
    )
    await record_event(session, "system", "privacy.verification_requested", request_target(request))


async def confirm_link(
    session: AsyncSession, link: PrivacyLink, *, now: datetime
) -> PrivacyRequest:
    """The learner confirmed: the link is spent and the request verified; audited."""
    request = await session.get(PrivacyRequest, link.request_id)
    assert request is not None
    link.used_at = now
    if request.status == "awaiting_verification":
        request.status, request.verified_at = "verified", now
        request.verification_method, request.updated_at = "email-link", now
        await record_event(
            session,
            "learner",
            "privacy.request_verified",
            request_target(request),
            method="email-link",
        )
    return request
