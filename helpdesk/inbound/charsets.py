"""Turn the bytes of a mail part or header into text, whatever charset they claim to be in.

Mail in the wild often lies about its charset (RFC 2045 §5.1 and RFC 2046 §4.1.2 define the
label; nothing enforces it): "us-ascii" or "iso-8859-1" over UTF-8 bytes, windows-1252 quotes
under an iso-8859-1 label, made-up labels such as "x-unknown" or "unknown-8bit". Decoding
never fails here; it falls back step by step and says when it had to.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

# Labels Python does not know, mapped as the WHATWG Encoding Standard (what browsers do) maps them.
_ALIASES = {
    "iso-8859-8-i": "iso8859-8",
    "windows-874": "cp874",
    "latin-9": "iso8859-15",
    "x-gbk": "gbk",
    "x-sjis": "shift_jis",
    "x-mac-roman": "mac-roman",
    "x-iso-8859-1": "iso8859-1",
    "iso-10646-ucs-2": "utf-16-be",
}
# Legacy charsets widened to the supersets mailers actually send (WHATWG does the same): the
# "us-ascii" and "iso-8859-1" labels mean windows-1252, which only adds printable characters
# (curly quotes, dashes, the euro sign) in 0x80-0x9F where Latin-1 has control codes.
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
# Labels that carry no information at all.
_UNKNOWN_LABELS = frozenset(
    "unknown unknown-8bit x-unknown x-user-defined default charset none 8bit binary "  # noqa: SIM905
    "7bit cp0 undefined".split()
)
# Python text codecs that are not charsets of mail and must never decode a payload.
_REFUSED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)
# Single-byte codecs decode any byte sequence, so "the declared one fails" never happens with
# them; valid UTF-8 with non-ASCII characters under such a label is practically always
# mislabelled UTF-8, because real Latin-1 text almost never forms valid UTF-8 sequences.
_SINGLE_BYTE_PREFIXES = (
    "ascii",
    "iso8859-",
    "cp125",
    "cp874",
    "koi8",
    "mac-",
    "cp437",
    "cp737",
    "cp775",
    "cp85",
    "cp86",
)
_MIXED_ERRORS = "helpdesk-windows-1252"
_LATIN1_ERRORS = "helpdesk-latin-1"


class DecodedText(NamedTuple):
    text: str
    charset: str
    defect: str | None


def resolve_charset(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it is missing or unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if not name or name in _UNKNOWN_LABELS or len(name) > 40:
        return None
    name = _ALIASES.get(name, name)
    for candidate in (name, name.removeprefix("x-")):
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if info._is_text_encoding and info.name not in _REFUSED_CODECS:  # type: ignore[attr-defined]
            return _SUPERSETS.get(info.name, info.name)
    return None


def decode_text(data: bytes, declared: str | None) -> DecodedText:
    """Decode bytes: declared charset first, then UTF-8, then windows-1252, then Latin-1."""
    codec = resolve_charset(declared)
    defect = None
    if declared and codec is None and declared.strip().lower() not in _UNKNOWN_LABELS:
        defect = f"unknown charset {_printable(declared)!r}"
    if codec is not None and not _is_single_byte(codec):
        try:
            return DecodedText(data.decode(codec), codec, None)
        except (UnicodeDecodeError, LookupError):
            defect = f"content is not valid {_printable(declared)}"
    if data.isascii():
        return DecodedText(data.decode("ascii"), "ascii", defect)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if codec is not None and defect is None:
            defect = f"declared {_printable(declared)} but the content is UTF-8"
        return DecodedText(text, "utf-8", defect)
    if codec is not None and _is_single_byte(codec):
        return DecodedText(data.decode(codec, errors=_LATIN1_ERRORS), codec, defect)
    return DecodedText(data.decode("utf-8", errors=_MIXED_ERRORS), "utf-8+windows-1252", defect)


def _is_single_byte(codec: str) -> bool:
    return codec.startswith(_SINGLE_BYTE_PREFIXES)


def _printable(label: str | None) -> str:
    return "".join(ch for ch in (label or "")[:40] if ch.isprintable())


def _decode_as_windows_1252(error: UnicodeError) -> tuple[str, int]:
    """Error handler: bytes that are not UTF-8 are read as windows-1252, else as Latin-1."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return chunk.decode("cp1252", errors=_LATIN1_ERRORS), error.end


def _decode_as_latin1(error: UnicodeError) -> tuple[str, int]:
    """Error handler: bytes a single-byte codec leaves undefined are read as Latin-1."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_MIXED_ERRORS, _decode_as_windows_1252)
codecs.register_error(_LATIN1_ERRORS, _decode_as_latin1)
