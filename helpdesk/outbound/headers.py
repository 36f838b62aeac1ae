"""Header values of outgoing mail made from user input, and the policy that writes them.

Names, subjects and filenames come from learners and operators. Anything that could end a
header line (CR, LF, and the other control and line-separator characters some software
treats as line breaks) is replaced before a value reaches `email.headerregistry`, and so
is anything the stdlib would decode into such characters (an encoded-word typed as text),
so user input can never add a header; the registry then encodes what is left (RFC 2047,
RFC 2231). `compose` checks the result once more on the wire form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from email import _header_value_parser as value_parser
from email.charset import Charset
from email.header import Header
from email.headerregistry import Address, AddressHeader, HeaderRegistry, UnstructuredHeader
from email.policy import SMTP
from email.utils import formataddr
from functools import lru_cache
from typing import Any

# Cc: C0/C1 controls and DEL; Cs: lone surrogates (not encodable); Zl/Zp: U+2028/U+2029.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_REPLY_PREFIX = re.compile(
    # "Re:", "RE :", "Re[2]:", "Re(3):", "SV:", "AW:", "Antw:", "VS:", "Auto:", …, repeated.
    r"^(?:\s*(?:re|sv|aw|antw|vs|odp|res|rif|ynt|auto)\s*(?:\[\d+\]|\(\d+\))?\s*:)+\s*",
    re.IGNORECASE,
)
_TICKET_TOKEN = re.compile(r"\s*\[#\d+\]")
# A msg-id we are willing to echo: printable ASCII with an "@", no spaces or angle brackets.
_MESSAGE_ID = re.compile(r"^[!-;=?-~]+@[!-;=?-~]+$")
MAX_SUBJECT = 250
MAX_DISPLAY_NAME = 120
MAX_MESSAGE_ID = 250
MAX_REFERENCES = 10
MAX_FILENAME = 150
_UTF8 = Charset("utf-8")


class UnsendableAddress(ValueError):
    """An address that cannot be written into a header of mail we can send."""


def header_safe(value: str | None, limit: int | None = None) -> str:
    """One line of text for a header: controls and line separators become spaces."""
    if not value:
        return ""
    cleaned = "".join(
        " " if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in value
    )
    line = " ".join(cleaned.split())
    line = line[:limit].rstrip() if limit is not None else line
    # The stdlib's header parser decodes RFC 2047 encoded-words found in the value it is
    # given (even inside quoted display names and filenames) and folds the result back
    # unencoded, so "=?utf-8?q?=0D=0ABcc:...?=" would become a real CRLF and a new header
    # (the class of bug behind CVE-2024-6923). A word joiner after "=" keeps the text readable
    # but makes it no encoded-word.
    return line.replace("=?", "=\u2060?")


# Cached: our own addresses are in every mail, and `Address` parses its addr-spec with the
# stdlib's (slow) header grammar each time. Address objects are immutable; refusals raise
# and so are never cached.
@lru_cache(maxsize=4096)
def mailbox(address: str, name: str | None = None) -> Address:
    """An `Address` for a header; the display name is made safe, the address must be sendable.

    Internationalised domains go out as IDNA (xn--…); a non-ASCII local part would need
    SMTPUTF8, which we do not use, so it is refused like any malformed address.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or header_safe(address) != address.strip():
        raise UnsendableAddress("not an address")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
        return Address(
            display_name=header_safe(name, MAX_DISPLAY_NAME), addr_spec=f"{local}@{ascii_domain}"
        )
    except (UnicodeError, ValueError, TypeError, IndexError) as exc:
        raise UnsendableAddress(str(exc) or "not an address") from None


def is_sendable(address: str) -> bool:
    """True when `mailbox(address)` would accept it."""
    try:
        mailbox(address)
    except UnsendableAddress:
        return False
    return True


def base_subject(subject: str | None) -> str:
    """The subject without reply prefixes (Re:, SV:, AW:, …) and ticket tokens ([#N])."""
    line = header_safe(subject)
    while True:
        stripped = _TICKET_TOKEN.sub("", _REPLY_PREFIX.sub("", line)).strip()
        if stripped == line:
            return line
        line = stripped


def reply_subject(subject: str | None, ticket_number: int, prefix: str = "Re:") -> str:
    """`Re: <subject> [#N]`: one prefix, one token of this ticket, never piled up."""
    base = base_subject(subject)[:MAX_SUBJECT].rstrip() or "(no subject)"
    return f"{prefix} {base} [#{ticket_number}]"


def message_id_list(ids: Sequence[str], limit: int = MAX_REFERENCES) -> list[str]:
    """Usable msg-ids without brackets, duplicates dropped; at most `limit`, first and last kept.

    RFC 5322 §3.6.4 builds References as the parent's References plus its Message-ID;
    long threads are trimmed in the middle (as Thunderbird does), since the first id
    names the thread and the last ones its closest ancestors.
    """
    usable: list[str] = []
    for raw in ids:
        value = raw.strip().removeprefix("<").removesuffix(">")
        if len(value) <= MAX_MESSAGE_ID and _MESSAGE_ID.match(value) and value not in usable:
            usable.append(value)
    if len(usable) <= limit:
        return usable
    return [usable[0], *usable[len(usable) - (limit - 1) :]]


def safe_filename(filename: str | None, fallback: str = "attachment") -> str:
    """An attachment name for Content-Disposition: one line, no path, not too long."""
    name = header_safe(filename).replace("/", "_").replace("\\", "_").strip(". ")
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 10 else ""
        name = name[: MAX_FILENAME - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name or fallback


class _MessageIdListHeader(UnstructuredHeader):
    """In-Reply-To / References: msg-ids folded between ids, never RFC 2047-encoded.

    The stdlib treats these as unstructured text and encodes an id longer than a line
    (Outlook's often are) as an encoded-word, which breaks threading in every client.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        ids = message_id_list(str(value).split(), limit=10**6)
        kwds["decoded"] = " ".join(f"<{i}>" for i in ids)
        kwds["parse_tree"] = value_parser.get_unstructured(kwds["decoded"])

    def fold(self, *, policy: Any) -> str:
        label = f"{self.name}:"  # type: ignore[attr-defined]
        width = policy.max_line_length or 78
        lines = [label]
        for token in str(self).split():
            if lines[-1] != label and len(lines[-1]) + 1 + len(token) > width:
                lines.append(f" {token}")
            else:
                lines[-1] += f" {token}"
        return policy.linesep.join(lines) + policy.linesep


class _TextHeader(UnstructuredHeader):
    """Subject: folded by the classic `email.header.Header`, which round-trips exactly.

    The modern folder moves a subject that does not fit the first line whole onto the
    next (parsed back with a leading space) and may put a space between adjacent
    encoded-words; the classic one encodes non-ASCII text as whole encoded-words.
    """

    def fold(self, *, policy: Any) -> str:
        value = str(self)
        charset = "us-ascii" if value.isascii() else "utf-8"
        folded = Header(
            value,
            charset,
            maxlinelen=policy.max_line_length or 78,
            header_name=self.name,  # type: ignore[attr-defined]
        ).encode(linesep=policy.linesep)
        return f"{self.name}: {folded}{policy.linesep}"  # type: ignore[attr-defined]


class _MailboxListHeader(AddressHeader):
    """From/To/Cc/Reply-To: folded only between addresses and between encoded-words.

    The modern folder drops the quotes of a long display name that needs folding, so
    "evil@example.net, Kari" could turn into an extra address; here an ASCII name is
    quoted by `formataddr` and kept on one line, a non-ASCII one becomes encoded-words.
    """

    def fold(self, *, policy: Any) -> str:
        width = policy.max_line_length or 78
        label = f"{self.name}:"  # type: ignore[attr-defined]
        lines = [label]
        addresses = list(self.addresses)  # type: ignore[attr-defined]
        for index, address in enumerate(addresses):
            pieces = _address_pieces(address)
            if index < len(addresses) - 1:
                pieces[-1] += ","
            for piece in pieces:
                if lines[-1] != label and len(lines[-1]) + 1 + len(piece) > width:
                    lines.append(f" {piece}")
                else:
                    lines[-1] += f" {piece}"
        return policy.linesep.join(lines) + policy.linesep


def _address_pieces(address: Address) -> list[str]:
    """An address as unbreakable pieces; encoded-words of at most 75 characters (RFC 2047)."""
    name, addr_spec = address.display_name, address.addr_spec
    if not name:
        return [addr_spec]
    if name.isascii():
        return [formataddr((name, addr_spec))]
    # header_encode_lines yields None only when a line cannot hold one character.
    words = [w for w in _UTF8.header_encode_lines(name, iter(lambda: 75, None)) if w is not None]
    return [*words, f"<{addr_spec}>"]


def _header_registry() -> HeaderRegistry:
    registry = HeaderRegistry()
    registry.map_to_type("subject", _TextHeader)  # type: ignore[arg-type]
    for name in ("from", "to", "cc", "reply-to"):
        registry.map_to_type(name, _MailboxListHeader)  # type: ignore[arg-type]
    registry.map_to_type("in-reply-to", _MessageIdListHeader)  # type: ignore[arg-type]
    registry.map_to_type("references", _MessageIdListHeader)  # type: ignore[arg-type]
    return registry


# RFC 5322 with CRLF line ends, as SMTP wants them; raw bytes stored in the outbox use it too.
MAIL_POLICY = SMTP.clone(header_factory=_header_registry())
