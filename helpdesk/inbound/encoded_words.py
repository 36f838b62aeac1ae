"""Decode header text: RFC 2047 encoded words and raw 8-bit bytes, leniently.

The stdlib decoders trust the declared charset and raise on bad base64; mail needs more
slack. Adjacent encoded words in the same charset are joined before decoding, because many
mailers split one multi-byte character across two words (which RFC 2047 §5 forbids).
"""

from __future__ import annotations

import base64
import binascii
import re

from helpdesk.inbound.charsets import decode_text

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*?)\?=")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FOLD = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def unfold(value: str) -> str:
    """Undo header folding (RFC 5322 §2.2.3); a stray bare line break becomes a space."""
    return _LINE_BREAK.sub(" ", _FOLD.sub("", value))


def raw_bytes(value: str) -> bytes:
    """The original bytes of a header value the parser read with surrogateescape."""
    return value.encode("utf-8", errors="surrogateescape")


def decode_header_text(value: str) -> str:
    """Unfold a raw header value and decode its encoded words and any 8-bit bytes."""
    value = unfold(value)
    if "=?" not in value:
        return _decode_plain(value)
    chunks: list[tuple[bytes, str | None]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        # Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        if between and not (between.isspace() and chunks and chunks[-1][1] is not None):
            chunks.append((raw_bytes(between), None))
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 §5 allows "charset*lang"
        data = _decode_word(match.group(2), match.group(3))
        if chunks and chunks[-1][1] is not None and chunks[-1][1].lower() == charset.lower():
            chunks[-1] = (chunks[-1][0] + data, chunks[-1][1])
        else:
            chunks.append((data, charset))
        position = match.end()
    if position < len(value):
        chunks.append((raw_bytes(value[position:]), None))
    return "".join(decode_text(data, charset).text for data, charset in chunks)


def _decode_plain(value: str) -> str:
    if value.isascii():
        return value
    return decode_text(raw_bytes(value), None).text


def _decode_word(encoding: str, text: str) -> bytes:
    if encoding in "qQ":
        # RFC 2047 §4.2: "_" is a space, "=XX" a byte; a malformed escape stays literal.
        return _QP_ESCAPE.sub(
            lambda m: bytes([int(m.group(1), 16)]), raw_bytes(text.replace("_", " "))
        )
    return _decode_base64(text)


def _decode_base64(text: str) -> bytes:
    """Base64 that tolerates missing padding, stray characters and a truncated tail."""
    letters = _NOT_BASE64.sub("", text)
    if len(letters) % 4 == 1:
        letters = letters[:-1]
    try:
        return base64.b64decode(letters + "=" * (-len(letters) % 4))
    except (binascii.Error, ValueError):
        return b""
