"""Signed learner identity from the course platform (DESIGN §6 `identity_token`).

`base64url(JSON {"sub": external_id, "email": …, "exp": unix seconds}) + "." +
base64url(HMAC-SHA256(HELPDESK_WIDGET_SECRET, first part))`, both unpadded. The platform
signs it for a signed-in learner; the widget passes it on, and the conversation is verified
at once. The MAC is compared in constant time; an expired, altered or malformed token is
refused with the same vague reason, so probing learns nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from helpdesk.errors import Forbidden

REFUSED = "The sign-in token from the course site is not valid or has expired. Reload the page."
_MAX_LENGTH = 2048


@dataclass(frozen=True)
class PlatformIdentity:
    """Who the course platform says the learner is."""

    external_id: str
    email: str
    expires_at: int


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_identity(secret: str, external_id: str, email: str, expires_at: int) -> str:
    """The token the course platform computes (also used by tests and the README example)."""
    payload = _b64encode(
        json.dumps({"sub": external_id, "email": email, "exp": expires_at}).encode()
    )
    mac = hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64encode(mac)}"


def verify_identity(secret: str | None, token: str, now: datetime) -> PlatformIdentity:
    """The identity in a valid, unexpired token; Forbidden (403) for anything else."""
    if not secret or not token or len(token) > _MAX_LENGTH or token.count(".") != 1:
        raise Forbidden(REFUSED)
    payload, _, sent_mac = token.partition(".")
    expected = hmac.new(secret.encode(), payload.encode("ascii", "replace"), hashlib.sha256)
    try:
        mac_ok = hmac.compare_digest(expected.digest(), _b64decode(sent_mac))
        claims = json.loads(_b64decode(payload)) if mac_ok else None
    except (binascii.Error, ValueError):
        raise Forbidden(REFUSED) from None
    if not isinstance(claims, dict):
        raise Forbidden(REFUSED)
    sub, email, exp = claims.get("sub"), claims.get("email"), claims.get("exp")
    if not isinstance(sub, str) or not sub or not isinstance(email, str) or "@" not in email:
        raise Forbidden(REFUSED)
    if not isinstance(exp, int) or isinstance(exp, bool) or exp <= now.timestamp():
        raise Forbidden(REFUSED)
    return PlatformIdentity(external_id=sub, email=email.strip(), expires_at=exp)
