"""Read the header fields a ticket needs: subject, addresses, Message-IDs and the date.

Every function takes the raw field value (as `EmailMessage.raw_items()` gives it) and never
raises: a field it cannot read yields an empty or None result.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from email import utils
from email.message import EmailMessage
from typing import NamedTuple

from helpdesk.inbound.charsets import decode_text
from helpdesk.inbound.encoded_words import decode_header_text, raw_bytes, unfold
from helpdesk.inbound.header_policy import INBOUND_POLICY

MAX_SUBJECT_CHARS = 998  # RFC 5322 §2.1.1 line limit; also the ticket subject column
MAX_NAME_CHARS = 300
MAX_ADDRESS_CHARS = 320  # RFC 3696 errata: 64 + 1 + 255
MAX_MESSAGE_ID_CHARS = 998
MAX_REFERENCES = 100
# The stdlib's RFC 5322 address parser takes quadratic time (1,000 addresses: 0.2 s; 4,000:
# 1.4 s); longer fields go to the simpler, linear `getaddresses`, and beyond about 2,500
# addresses the rest of a field is not read at all.
MAX_STRICT_PARSE_CHARS = 20_000
MAX_ADDRESS_FIELD_CHARS = 100_000

_ANGLE_ID = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")
# Bidirectional overrides and isolates can make a subject or filename read differently from
# what it is ("Trojan Source", CVE-2021-42574); zero-width joiners stay, emoji need them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


# A single mailbox of plain ASCII: `a@b.c`, `<a@b.c>`, `Kari Nordmann <a@b.c>` or
# `"Nordmann, Kari" <a@b.c>` (no escapes, comments, groups or encoded words).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_SIMPLE_MAILBOX = re.compile(
    rf'[ \t]*(?:(?P<name>{_ATEXT}+(?:[ \t]+{_ATEXT}+)*|"[ !#-\[\]-~]*")[ \t]*)?'
    rf"<(?P<local>{_DOT_ATOM})@(?P<domain>{_DOT_ATOM})>[ \t]*"
    rf"|[ \t]*(?P<bare_local>{_DOT_ATOM})@(?P<bare_domain>{_DOT_ATOM})[ \t]*"
)


class Mailbox(NamedTuple):
    name: str | None
    address: str


def header_values(message: EmailMessage, name: str) -> list[str]:
    """The raw values of every field with this name, in order, without parsing them."""
    wanted = name.lower()
    return [str(value) for key, value in message.raw_items() if key.lower() == wanted]


def clean_line(text: str, limit: int) -> str:
    """One printable line: controls and bidi overrides removed, whitespace runs folded."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace()
        or (unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _BIDI_CONTROLS)
    )
    return _WHITESPACE.sub(" ", kept).strip()[:limit]


def clean_subject(raw: str | None) -> str:
    """The decoded subject as one printable line (RFC 2047 words, 8-bit bytes, folding)."""
    return clean_line(decode_header_text(raw), MAX_SUBJECT_CHARS) if raw else ""


def extract_message_ids(raw: str | None) -> list[str]:
    """Message-IDs without angle brackets from Message-ID, In-Reply-To or References."""
    if not raw:
        return []
    value = decode_header_text(raw) if not raw.isascii() else unfold(raw)
    candidates = _ANGLE_ID.findall(value)
    if not candidates:
        # Some mailers leave out the brackets (RFC 5322 §3.6.4 requires them).
        candidates = [token.strip("\"',;") for token in value.split() if "@" in token]
    ids: dict[str, None] = {}  # ordered and free of duplicates
    for candidate in candidates[-4 * MAX_REFERENCES :]:
        message_id = "".join(ch for ch in candidate if ch.isprintable() and not ch.isspace())
        if message_id and len(message_id) <= MAX_MESSAGE_ID_CHARS:
            ids[message_id] = None
    return list(ids)[-MAX_REFERENCES:]


def parse_date(raw: str | None) -> datetime | None:
    """The Date field as an aware UTC datetime; a zone of -0000 is read as UTC (RFC 5322 §3.3)."""
    if not raw:
        return None
    value = clean_line(unfold(raw), 200)
    try:
        moment = utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            moment = datetime.fromisoformat(value)  # some scripts send ISO 8601
        except ValueError:
            return None
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_mailboxes(field: str, raws: Iterable[str]) -> list[Mailbox]:
    """The mailboxes of address fields (From, To, Cc, Reply-To), groups flattened."""
    mailboxes: dict[str, Mailbox] = {}
    for raw in raws:
        for mailbox in _parse_field(field, raw):
            mailboxes.setdefault(mailbox.address, mailbox)
    return list(mailboxes.values())


def normalise_address(local: str, domain: str) -> str | None:
    """`local@domain` with the domain lower-cased (RFC 5321 §2.4), or None if it is not one."""
    local = _text(local).strip()
    domain = _text(domain).strip().rstrip(".").lower()
    address = f"{local}@{domain}"
    if not local or not domain or "@" in domain or len(address) > MAX_ADDRESS_CHARS:
        return None
    if any(ch.isspace() or not ch.isprintable() or ch in '<>()[]\\,;:"' for ch in domain):
        return None
    if any(ch.isspace() or not ch.isprintable() or ch in "<>" for ch in local):
        return None
    return address


def _parse_field(field: str, raw: str) -> list[Mailbox]:
    raw = raw[:MAX_ADDRESS_FIELD_CHARS]
    simple = _SIMPLE_MAILBOX.fullmatch(raw)
    if simple is not None and "=?" not in raw:
        # One plain mailbox, as nearly every From is: read without the stdlib's parser,
        # which costs a fifth of parsing a whole message (the same result:
        # tests/test_inbound_headers.py compares the two).
        name = (simple["name"] or "").strip('"')
        found = [
            (
                name,
                simple["local"] or simple["bare_local"],
                simple["domain"] or simple["bare_domain"],
            )
        ]
    else:
        found = _parse_strictly(field, raw)
    mailboxes = []
    for name, local, domain in found:
        address = normalise_address(local, domain)
        if address is not None:
            display = clean_line(_text(name), MAX_NAME_CHARS) if name else ""
            mailboxes.append(Mailbox(display or None, address))
    return mailboxes


def _parse_strictly(field: str, raw: str) -> list[tuple[str, str, str]]:
    """(display name, local part, domain) of each mailbox, by the stdlib's RFC 5322 parser."""
    try:
        if len(raw) > MAX_STRICT_PARSE_CHARS:
            raise ValueError("too long for the RFC 5322 parser")
        header = INBOUND_POLICY.header_factory(field, unfold(raw))
        return [(a.display_name, a.username, a.domain) for a in header.addresses]
    except Exception:  # the stdlib parser has had IndexError/AttributeError bugs on hostile input
        return [_split_lenient(name, address) for name, address in utils.getaddresses([raw])]


def _split_lenient(name: str, address: str) -> tuple[str, str, str]:
    local, _, domain = address.rpartition("@")
    return decode_header_text(name), local, domain


def _text(value: str) -> str:
    """Undo the surrogate escapes the parser leaves for 8-bit bytes in a header (RFC 6532)."""
    if value.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_text(raw_bytes(value), None).text
