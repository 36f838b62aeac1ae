"""Field rules of the course-platform sync: every bad field is collected, then reported at once."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from helpdesk.errors import ValidationFailed
from helpdesk.learners.currencies import ACTIVE_CURRENCIES
from helpdesk.validation import normalise_email

# Largest value of the INTEGER column that holds amounts (PostgreSQL int4).
MAX_AMOUNT_MINOR = 2_147_483_647

# Control characters, line/paragraph separators and lone surrogates, plus the bidi
# embedding/override/isolate marks: names are shown to operators and may end up in mail
# headers, where these would break lines or disguise the text ("Trojan Source").
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_control_characters(value: str) -> bool:
    """True if the text holds a character that must not appear in a name or identifier."""
    return any(
        c in _BIDI_CONTROLS or unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value
    )


class FieldErrors:
    """Checks fields one by one and keeps the first message per field for one 422 answer."""

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self.messages.setdefault(field, message)

    def raise_if_any(self) -> None:
        if self.messages:
            raise ValidationFailed(dict(self.messages))

    def text(self, field: str, value: Any, max_length: int, *, required: bool = True) -> Any:
        """Trimmed single-line text; an empty optional value becomes None."""
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(field, "must not be empty")
            return None
        if not isinstance(value, str):
            self.add(field, "must be a string")
            return None
        value = value.strip()
        if has_control_characters(value):
            self.add(field, "must not contain control characters")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        return value

    def identifier(self, field: str, value: Any, max_length: int) -> Any:
        """A key of the course platform, compared exactly, so never silently trimmed."""
        checked = self.text(field, value, max_length)
        if isinstance(value, str) and checked is not None and checked != value:
            self.add(field, "must not start or end with whitespace")
        return value if checked is not None else None

    def email(self, field: str, value: Any) -> Any:
        address = normalise_email(value) if isinstance(value, str) else None
        if address is None:
            self.add(field, "not a valid email address")
        return address

    def choice(self, field: str, value: Any, allowed: Collection[str]) -> Any:
        if value not in allowed:
            self.add(field, f"must be one of {', '.join(allowed)}")
        return value

    def currency(self, field: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in ACTIVE_CURRENCIES:
            self.add(field, "must be an active ISO 4217 currency code in capitals, e.g. NOK")
        return value

    def whole_number(self, field: str, value: Any, low: int, high: int) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(field, f"must be a whole number from {low} to {high}")
        return value

    def moment(self, field: str, value: Any, *, required: bool = True) -> Any:
        """A datetime with an offset, returned in UTC; a naive one is ambiguous, so refused."""
        if value is None:
            if required:
                self.add(field, "is required")
            return None
        if not isinstance(value, datetime):
            self.add(field, "must be an RFC 3339 date-time")
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            self.add(field, "must include a UTC offset, e.g. 2024-05-02T10:00:00+02:00")
            return None
        return value.astimezone(UTC)
