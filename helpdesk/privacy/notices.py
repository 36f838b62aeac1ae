"""Mail to the learner about their privacy request, from `mail/privacy-*` templates.

Mail goes to the address registered for the learner, never to whatever address a request
came from; a requester we do not know is answered at the ticket's own address. The ticket
gets a system message with the same text, links masked, so operators see what was said.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.config import Settings
from helpdesk.models import Learner, OutboundEmail, PrivacyRequest, Ticket
from helpdesk.outbound.compose import OutgoingMail, Recipient
from helpdesk.outbound.history import thread_headers
from helpdesk.outbound.outbox import (
    SUPPORT_NAME,
    add_to_outbox,
    new_message_id,
    reply_address,
)
from helpdesk.outbound.templates import mail_locale, render_mail
from helpdesk.tickets.lifecycle import MessageDraft, append_message

_SUBJECTS = {
    "nb": {
        "verify": "Bekreft personvernforespørselen din",
        "extended": "Fristen for personvernforespørselen din er forlenget",
        "completed": "Personvernforespørselen din er behandlet",
        "refused": "Svar på personvernforespørselen din",
        "export": "Innsyn: dataene dine er klare til nedlasting",
    },
    "en": {
        "verify": "Please confirm your privacy request",
        "extended": "The deadline of your privacy request has been extended",
        "completed": "Your privacy request has been handled",
        "refused": "Answer to your privacy request",
        "export": "Your data is ready to download",
    },
}
KIND_LABELS = {
    "nb": {
        "access": "innsyn",
        "rectification": "retting",
        "erasure": "sletting",
        "restriction": "begrensning av behandling",
        "objection": "protest mot behandling",
        "portability": "dataportabilitet",
    },
    "en": {
        "access": "access",
        "rectification": "rectification",
        "erasure": "erasure",
        "restriction": "restriction of processing",
        "objection": "objection to processing",
        "portability": "data portability",
    },
}
MASKED_LINK = "[link]"


async def recipient_of(
    session: AsyncSession, request: PrivacyRequest, ticket: Ticket
) -> tuple[str, str | None, str | None]:
    """(address, name, locale): the registered learner, or the unknown requester."""
    if request.learner_id is not None:
        learner = await session.get(Learner, request.learner_id)
        if learner is not None and learner.erased_at is None:
            return learner.email, learner.name, learner.locale
    return ticket.requester, ticket.requester_name, None


async def send_notice(
    session: AsyncSession,
    settings: Settings,
    request: PrivacyRequest,
    ticket: Ticket,
    *,
    template: str,
    subject: str,
    now: datetime,
    context: dict[str, Any] | None = None,
    link_url: str | None = None,
) -> OutboundEmail:
    """Render `mail/privacy-<template>`, record it on the ticket and queue it."""
    address, name, locale = await recipient_of(session, request, ticket)
    base = {
        "name": name or "",
        "brand": SUPPORT_NAME,
        "ticket_number": ticket.number,
        "kind": request.kind,
        "kind_label": KIND_LABELS[mail_locale(locale)][request.kind],
        "due_at": request.extended_until or request.due_at,
        "decision": None,
        "fields": [],
        "held": [],
        "unknown_requester": request.learner_id is None,
        **(context or {}),
    }
    rendered = render_mail(f"privacy-{template}", locale, {**base, "link_url": link_url or ""})
    shown = render_mail(f"privacy-{template}", locale, {**base, "link_url": MASKED_LINK})
    message_id = new_message_id(settings, ticket)
    threading = await thread_headers(session, ticket)
    draft = MessageDraft(
        direction="outbound",
        text=shown.text,
        author_kind="system",
        author_name=SUPPORT_NAME,
        rfc_message_id=message_id,
        in_reply_to=threading.in_reply_to,
        references=" ".join(threading.references) or None,
    )
    message = await append_message(session, ticket, draft, now=now)
    mail = OutgoingMail(
        from_address=settings.support_address,
        from_name=SUPPORT_NAME,
        reply_to=reply_address(settings, ticket),
        to=Recipient(address, name),
        subject=f"{_SUBJECTS[mail_locale(locale)][subject]} [#{ticket.number}]",
        message_id=message_id,
        date=now,
        text=rendered.text,
        html=rendered.html,
        in_reply_to=threading.in_reply_to,
        references=threading.references,
        automatic=True,
        loop_stamp=settings.support_address,
    )
    return await add_to_outbox(
        session, mail, kind="notice", ticket=ticket, message=message, now=now
    )
