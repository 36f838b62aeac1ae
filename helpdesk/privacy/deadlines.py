"""The legal deadline of a privacy request: one calendar month, extendable once by two.

GDPR art. 12(3): the controller answers "within one month of receipt", extendable "by two
further months where necessary". A day that does not exist in the target month becomes
that month's last day (31 January → 28 or 29 February), as in DESIGN §7.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models import PrivacyRequest

MAX_EXTENSION_MONTHS = 2
MAX_REASON_LENGTH = 2000
REMINDER_DAYS = (7, 2)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, clamping the day to the target month's end."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(received_at: datetime) -> datetime:
    """When the answer is due: one calendar month after receipt."""
    return add_months(received_at, 1)


def current_deadline(request: PrivacyRequest) -> datetime:
    """The deadline in force: the extension if there is one, else the original due date."""
    return request.extended_until or request.due_at


def is_overdue(request: PrivacyRequest, now: datetime) -> bool:
    """An open request whose deadline has passed."""
    return request.status not in ("completed", "refused") and current_deadline(request) < now


def check_extension(request: PrivacyRequest, months: int, reason: str, now: datetime) -> str:
    """Validate an extension (once, 1–2 months, with a reason, before the due date)."""
    reason = reason.strip()
    fields = {}
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        fields["months"] = f"Extend by 1 or {MAX_EXTENSION_MONTHS} months."
    if not reason:
        fields["reason"] = "Say why the request needs more time; the learner is told."
    elif len(reason) > MAX_REASON_LENGTH:
        fields["reason"] = f"At most {MAX_REASON_LENGTH} characters."
    if fields:
        raise ValidationFailed(fields)
    if request.status in ("completed", "refused"):
        raise Conflict("The request is already closed.")
    if request.extended_until is not None:
        raise Conflict("The deadline has already been extended once.")
    if now >= request.due_at:
        raise Conflict("An extension must be made before the original due date.")
    return reason
