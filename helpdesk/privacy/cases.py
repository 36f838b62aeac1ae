"""Small shared facts about privacy cases: audit targets and the open statuses."""

from __future__ import annotations

from helpdesk.models import PrivacyRequest

CLOSED_STATUSES = ("completed", "refused")


def request_target(request: PrivacyRequest) -> str:
    """The audit target of a privacy request: its id, never a name."""
    return f"privacy_request:{request.id}"


def is_open(request: PrivacyRequest) -> bool:
    """Neither completed nor refused (DESIGN §7)."""
    return request.status not in CLOSED_STATUSES
