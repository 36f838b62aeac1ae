"""Checks of user-supplied values shared by several capabilities."""

from __future__ import annotations

import re

# Pragmatic address check: one @, a dotted domain, no spaces, quotes, or control characters.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~\-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")


def normalise_email(value: str) -> str | None:
    """The address trimmed, with the domain lower-cased; None if it is not an address."""
    value = value.strip()
    if len(value) > 254 or not _EMAIL.match(value):
        return None
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"
