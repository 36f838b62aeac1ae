"""Signed identifiers shared by both mail directions.

Our Message-IDs and the per-ticket reply address carry an HMAC made with the secret key,
so inbound threading can trust them without a database lookup and nobody can forge one
for a ticket they do not belong to.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_MESSAGE_ID = re.compile(
    r"^<?(?P<nonce>[a-z0-9]{16})\.(?P<ticket>\d+)\.(?P<mac>[a-z0-9]{16})@(?P<domain>[^>\s]+)>?$"
)
_REPLY_LOCAL = re.compile(r"^(?P<base>[^+]+)\+(?P<ticket>\d+)\.(?P<mac>[a-z0-9]{12})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _mac(secret_key: str, purpose: str, value: str, length: int) -> str:
    digest = hmac.new(secret_key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    # base36 keeps local parts and Message-IDs case-insensitive-safe (some MTAs lower-case).
    number = int.from_bytes(digest[:16], "big")
    chars: list[str] = []
    while len(chars) < length:
        number, rem = divmod(number, 36)
        chars.append(_ALPHABET[rem])
    return "".join(chars)


def make_message_id(secret_key: str, domain: str, ticket_number: int) -> str:
    """A new Message-ID for mail about a ticket, without angle brackets."""
    nonce = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    mac = _mac(secret_key, "message-id", f"{nonce}.{ticket_number}", 16)
    return f"{nonce}.{ticket_number}.{mac}@{domain}"


def verify_message_id(secret_key: str, message_id: str) -> int | None:
    """The ticket number a Message-ID of ours refers to, or None if it is not ours or forged."""
    match = _MESSAGE_ID.match(message_id.strip().lower())
    if not match:
        return None
    expected = _mac(secret_key, "message-id", f"{match['nonce']}.{match['ticket']}", 16)
    if not hmac.compare_digest(expected, match["mac"]):
        return None
    return int(match["ticket"])


def make_reply_address(secret_key: str, support_address: str, ticket_number: int) -> str:
    """`support+<ticket>.<hmac>@domain`: replies to it thread into that ticket."""
    local, _, domain = support_address.partition("@")
    mac = _mac(secret_key, "reply-address", str(ticket_number), 12)
    return f"{local}+{ticket_number}.{mac}@{domain}"


def verify_reply_address(secret_key: str, support_address: str, address: str) -> int | None:
    """The ticket number of a signed reply address of ours, or None."""
    local, _, domain = address.strip().lower().partition("@")
    our_local, _, our_domain = support_address.lower().partition("@")
    match = _REPLY_LOCAL.match(local)
    if not match or match["base"] != our_local or domain != our_domain:
        return None
    expected = _mac(secret_key, "reply-address", match["ticket"], 12)
    if not hmac.compare_digest(expected, match["mac"]):
        return None
    return int(match["ticket"])
