"""IMAP wire details that need no connection: mailbox names and FETCH responses."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import aioimaplib

from helpdesk.adapters.imap.mailbox import MessageUnavailable


def encode_mailbox_name(name: str) -> str:
    """A mailbox name as a quoted IMAP string in modified UTF-7 (RFC 3501 §5.1.3): "Søppel"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.decode().replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return aioimaplib.quoted("".join(out))


_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID_ITEM = re.compile(rb"\bUID (\d+)")
_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\}$")


def parse_fetched_body(lines: Sequence[bytes | bytearray], uid: int) -> bytes | None:
    """The BODY[] literal of `uid` in an aioimaplib FETCH response; None if the UID is absent.

    aioimaplib returns text lines as `bytes` and each literal as one `bytearray`. Unsolicited
    FETCH responses about other messages (flag changes) may be mixed in, and the UID item may
    come before or after the body, so the response is split into items before matching.
    """
    items: list[tuple[bytearray, bytes | None]] = []
    for line in lines:
        if isinstance(line, bytearray):
            if items and _BODY_LITERAL.search(items[-1][0]) and items[-1][1] is None:
                items[-1] = (items[-1][0] + b" ", bytes(line))
            elif items:
                items[-1][0].extend(b'""')  # some other literal: keep the text parseable
        elif _FETCH_START.match(line):
            items.append((bytearray(line), None))
        elif items:
            items[-1][0].extend(line)
    for text, body in items:
        match = _UID_ITEM.search(text)
        if match and int(match.group(1)) == uid:
            if body is None:
                raise MessageUnavailable(f"UID {uid}: the server returned no message body")
            return body
    return None
