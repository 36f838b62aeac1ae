"""Safe reads of one MIME part: its type, parameters, disposition and payload.

The stdlib parses header fields lazily, on access, and a hostile field can make that raise;
each accessor here turns such a failure into the RFC 2045 default instead.
"""

from __future__ import annotations

from email import errors, utils
from email.message import Message

from helpdesk.inbound.headers import clean_line, header_values

DEFAULT_TYPE = "text/plain"  # RFC 2045 §5.2: no or unreadable Content-Type means text/plain
MAX_CONTENT_TYPE_CHARS = 255
MAX_CONTENT_ID_CHARS = 500


def content_type_of(part: Message) -> str:
    """The part's `type/subtype`, lower-case."""
    try:
        value = part.get_content_type()
    except Exception:
        return DEFAULT_TYPE
    return clean_line(value, MAX_CONTENT_TYPE_CHARS).lower() or DEFAULT_TYPE


def param_of(part: Message, name: str, header: str = "content-type") -> str | None:
    """A parameter of Content-Type or Content-Disposition, RFC 2231 decoded."""
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if isinstance(value, tuple):
        value = utils.collapse_rfc2231_value(value)
    return str(value) if value else None


def disposition_of(part: Message) -> str | None:
    """`inline`, `attachment` or None (RFC 2183)."""
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def filename_of(part: Message) -> str | None:
    """The filename parameter, else the Content-Type name parameter, undecoded beyond RFC 2231."""
    try:
        name = part.get_filename()
    except Exception:
        return None
    return str(name) if name else None


def content_id_of(part: Message) -> str | None:
    """The Content-ID without angle brackets (RFC 2392)."""
    values = header_values(part, "content-id")  # type: ignore[arg-type]
    if not values:
        return None
    value = clean_line(values[0], 2 * MAX_CONTENT_ID_CHARS).strip("<> ")
    return value[:MAX_CONTENT_ID_CHARS] or None


def is_attachment(part: Message) -> bool:
    """Whether the sender meant the part as a file rather than as the message text."""
    return disposition_of(part) == "attachment" or filename_of(part) is not None


def payload_bytes(part: Message) -> bytes:
    """The part's content with its transfer encoding undone; lenient about bad base64."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def decoded_size_estimate(part: Message) -> int:
    """The content's size without decoding it, to apply a size limit before copying."""
    try:
        payload = part.get_payload()
    except Exception:
        return 0
    if not isinstance(payload, str):
        return 0
    encodings = header_values(part, "content-transfer-encoding")  # type: ignore[arg-type]
    if encodings and encodings[0].strip().lower() == "base64":
        return len(payload) * 3 // 4
    return len(payload)


def children_of(part: Message) -> list[Message]:
    """The subparts of a multipart or message/* part; empty for a leaf."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def describe_defects(part: Message) -> list[str]:
    """The parser's defects of this part as readable sentences."""
    return [_describe(defect) for defect in getattr(part, "defects", [])]


def _describe(defect: errors.MessageDefect | Exception) -> str:
    text = str(defect).strip()
    if not text:
        doc = type(defect).__doc__ or type(defect).__name__
        text = doc.strip().splitlines()[0]
    return clean_line(text, 300)
