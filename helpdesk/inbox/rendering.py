"""Rendering inbox pages: the common page context, flash messages and display formats.

Flash messages travel in a short-lived cookie holding a code from `FLASHES`, never free
text, so nobody can make the inbox display words of their choosing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar import Request
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from helpdesk.inbox.auth import SESSION_COOKIE, csrf_token, runtime_of

FLASH_COOKIE = "helpdesk_flash"
FLASHES = {
    "reply-queued": "Reply queued for sending.",
    "note-added": "Internal note added.",
    "ticket-updated": "Ticket updated.",
    "ticket-solved": "Ticket marked as solved.",
    "nothing-changed": "Nothing to change.",
    "ticket-merged": "Tickets merged: everything is on this ticket now.",
    "message-split": "The message is a ticket of its own now.",
    "message-moved": "Message moved.",
    "ticket-spam": "Ticket marked as spam and closed.",
    "ticket-not-spam": "Not spam: the ticket is open again.",
    "canned-saved": "Canned reply saved.",
    "canned-deleted": "Canned reply deleted.",
    "password-changed": "Password changed. Your other browsers are signed out.",
    "password-set": "Password saved. Sign in with it now.",
    "notifications-saved": "Notification choices saved.",
    "session-ended": "That browser is signed out.",
    "second-factor-off": "Two-step sign-in is off.",
    "operator-updated": "Operator updated.",
    "operator-disabled": "Operator disabled: signed out everywhere, API tokens revoked.",
    "operator-enabled": "Operator enabled.",
    "second-factor-reset": "Two-step sign-in reset: the operator signs in with the password.",
    "signed-out": "You are signed out.",
    "signed-out-everywhere": "You are signed out on every device.",
}

try:
    OSLO = ZoneInfo("Europe/Oslo")
except ZoneInfoNotFoundError:  # pragma: no cover - a system without tzdata
    OSLO = ZoneInfo("UTC")

_MONTHS = ("jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des")


class Formats:
    """Display formats used by the templates (Norwegian conventions, Oslo time)."""

    @staticmethod
    def when(value: datetime | None) -> str:
        """'21. nov 2026 10:00' in Oslo time."""
        if value is None:
            return ""
        local = value.astimezone(OSLO)
        return f"{local.day}. {_MONTHS[local.month - 1]} {local.year} {local:%H:%M}"

    @staticmethod
    def ago(value: datetime | None, now: datetime | None = None) -> str:
        """A short relative time for lists: '5 min', '3 h', '2 d', else the date."""
        if value is None:
            return ""
        seconds = ((now or datetime.now(UTC)) - value).total_seconds()
        if seconds < 60:
            return "now"
        if seconds < 3600:
            return f"{int(seconds // 60)} min"
        if seconds < 86400:
            return f"{int(seconds // 3600)} h"
        if seconds < 7 * 86400:
            return f"{int(seconds // 86400)} d"
        local = value.astimezone(OSLO)
        return f"{local.day}. {_MONTHS[local.month - 1]}"

    @staticmethod
    def iso(value: datetime | None) -> str:
        return value.astimezone(UTC).isoformat() if value else ""

    @staticmethod
    def money(amount_minor: int, currency: str) -> str:
        """'2 490,00 kr' for NOK; other currencies as '12,50 EUR' (thin-space thousands)."""
        whole, cents = divmod(abs(amount_minor), 100)
        digits = f"{whole:,}".replace(",", "\u202f")
        sign = "-" if amount_minor < 0 else ""
        unit = "kr" if currency == "NOK" else currency
        return f"{sign}{digits},{cents:02d}\u00a0{unit}"

    @staticmethod
    def size(size: int) -> str:
        if size < 1024:
            return f"{size} B"
        if size < 1024 * 1024:
            return f"{size / 1024:.0f} kB"
        return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")

    @staticmethod
    def initials(name: str | None) -> str:
        parts = (name or "?").split()
        return "".join(p[0] for p in parts[:2]).upper() or "?"


FORMATS = Formats()


def page(
    request: Request[Any, Any, Any],
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> Template:
    """A rendered inbox page with the operator, CSRF token and any flash message."""
    runtime = runtime_of(request)
    session_token = request.cookies.get(SESSION_COOKIE, "")
    flash_code = request.cookies.get(FLASH_COOKIE)
    full_context = {
        "fmt": FORMATS,
        "csrf": csrf_token(runtime.settings.secret_key, session_token) if session_token else "",
        "flash": FLASHES.get(flash_code or ""),
        "operator": request.scope.get("state", {}).get("inbox_operator"),
        **context,
    }
    cookies = [Cookie(key=FLASH_COOKIE, value="", path="/inbox", max_age=0)] if flash_code else []
    return Template(
        template_name=template, context=full_context, status_code=status_code, cookies=cookies
    )


def redirect_with_flash(
    url: str, flash: str, *, background: BackgroundTask | None = None
) -> Redirect:
    """Post/Redirect/Get: back to a page that shows `flash` once."""
    assert flash in FLASHES
    cookie = Cookie(
        key=FLASH_COOKIE, value=flash, path="/inbox", max_age=60, httponly=True, samesite="lax"
    )
    return Redirect(url, status_code=303, cookies=[cookie], background=background)
