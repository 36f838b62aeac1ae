"""The no-JavaScript support form (`/support`): the widget's intake as one HTML form.

A form ticket is like a widget ticket from an unverified learner: the address is only
what somebody typed, so the ticket is not linked to any learner's data. It gets the usual
acknowledgement mail (the rules of `helpdesk.outbound.automatic` apply), and a privacy
request chosen on the form starts a privacy case (`helpdesk.privacy.intake`), which asks
for verification before anything personal is disclosed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.config import Settings
from helpdesk.errors import ValidationFailed
from helpdesk.models import Ticket
from helpdesk.models.privacy import KINDS
from helpdesk.outbound.automatic import maybe_acknowledge
from helpdesk.outbound.compose import clean_text
from helpdesk.outbound.headers import is_sendable
from helpdesk.privacy.intake import start_request
from helpdesk.tickets.lifecycle import create_ticket
from helpdesk.widget.service import MAX_EMAIL, MAX_NAME, learner_draft

MAX_SUBJECT = 200
MAX_FORM_MESSAGE = 10_000
_ORDER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,49}$")
PRIVACY_CHOICES = ("none", *KINDS)


@dataclass(frozen=True)
class SupportRequest:
    """The form's fields as sent (strings, possibly empty)."""

    name: str
    email: str
    subject: str
    message: str
    order_number: str = ""
    privacy: str = "none"


def check_support_request(form: SupportRequest) -> SupportRequest:
    """The request cleaned; ValidationFailed naming every field to correct."""
    cleaned = SupportRequest(
        name=" ".join(form.name.split()),
        email=form.email.strip(),
        subject=" ".join(form.subject.split()),
        message=clean_text(form.message).strip(),
        order_number=form.order_number.strip(),
        privacy=form.privacy.strip() or "none",
    )
    problems: dict[str, str] = {}
    if not cleaned.name or len(cleaned.name) > MAX_NAME:
        problems["name"] = "Please write your name."
    if len(cleaned.email) > MAX_EMAIL or not is_sendable(cleaned.email):
        problems["email"] = "Please give an email address like kari@example.no."
    if not cleaned.subject or len(cleaned.subject) > MAX_SUBJECT:
        problems["subject"] = f"Please write a subject of at most {MAX_SUBJECT} characters."
    if not cleaned.message:
        problems["message"] = "Please tell us how we can help."
    elif len(cleaned.message) > MAX_FORM_MESSAGE:
        problems["message"] = f"At most {MAX_FORM_MESSAGE} characters."
    if cleaned.order_number and not _ORDER_NUMBER.match(cleaned.order_number):
        problems["order_number"] = "An order number has letters, digits and - . / only."
    if cleaned.privacy not in PRIVACY_CHOICES:
        problems["privacy"] = "Please choose one of the listed options."
    if problems:
        raise ValidationFailed(problems)
    return cleaned


async def submit_support_request(
    session: AsyncSession, settings: Settings, form: SupportRequest, now: datetime
) -> Ticket:
    """Open a ticket on channel `form`, queue its acknowledgement, start any privacy case."""
    request = check_support_request(form)
    text = request.message
    if request.order_number:
        text = f"{text}\n\nOrder number: {request.order_number}"
    ticket, message = await create_ticket(
        session,
        subject=request.subject,
        channel="form",
        requester=request.email,
        requester_name=request.name,
        first_message=learner_draft(request.name, request.email, text, thread_reason="new"),
        now=now,
        link_learner=False,
        actor="form",
    )
    await maybe_acknowledge(
        session, settings, ticket, message, now, enabled=settings.acknowledge_new_tickets
    )
    if request.privacy != "none":
        await start_request(session, ticket, request.privacy, now=now, actor="form")
    return ticket
