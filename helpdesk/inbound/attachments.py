"""Attachments of a parsed message: safe filename, type, Content-ID and decoded content."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import Message

from helpdesk.inbound.filenames import sanitise_filename
from helpdesk.inbound.headers import clean_subject, header_values
from helpdesk.inbound.mime import (
    children_of,
    content_id_of,
    content_type_of,
    decoded_size_estimate,
    disposition_of,
    filename_of,
    payload_bytes,
)

# Re-serialise attached messages with their header fields as they came (no refolding).
_AS_SENT = policy.default.clone(refold_source="none", linesep="\r\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedAttachment:
    """A file of a message: sanitised filename, lower-case type, Content-ID without brackets."""

    filename: str
    content_type: str
    content: bytes
    size: int
    content_id: str | None = None
    inline: bool = False
    # Larger than the size limit: `content` is left empty and `size` is the estimated size.
    omitted: bool = False


def build_attachment(part: Message, max_bytes: int | None) -> ParsedAttachment:
    """The attachment a MIME part stands for, its content decoded unless it is over the limit."""
    content_type = content_type_of(part)
    content_id = content_id_of(part)
    disposition = disposition_of(part)
    name = filename_of(part)
    if name is None and content_type in ("message/rfc822", "message/global"):
        name = _attached_subject(part)
    content, size = _content(part, content_type, max_bytes)
    return ParsedAttachment(
        filename=sanitise_filename(name, content_type),
        content_type=content_type,
        content=content or b"",
        size=size,
        content_id=content_id,
        inline=disposition == "inline" or (disposition is None and content_id is not None),
        omitted=content is None,
    )


def _content(part: Message, content_type: str, max_bytes: int | None) -> tuple[bytes | None, int]:
    """The decoded content and its size; None and the (estimated) size when over the limit."""
    if content_type.startswith("message/") or children_of(part):
        content = _message_bytes(part)
    elif max_bytes is not None and (estimate := decoded_size_estimate(part)) > max_bytes:
        return None, estimate  # not decoded at all: no copy of a payload we will not keep
    else:
        content = payload_bytes(part)
    if max_bytes is not None and len(content) > max_bytes:
        return None, len(content)
    return content, len(content)


def _attached_subject(part: Message) -> str | None:
    children = children_of(part)
    subjects = header_values(children[0], "subject") if children else []  # type: ignore[arg-type]
    subject = clean_subject(subjects[0]) if subjects else ""
    return f"{subject}.eml" if subject else None


def _message_bytes(part: Message) -> bytes:
    """The body of a message/* part as bytes: the attached message, or a DSN's field blocks."""
    children = children_of(part)
    try:
        if len(children) == 1:
            return children[0].as_bytes(policy=_AS_SENT)
        if children:
            return b"".join(child.as_bytes(policy=_AS_SENT) for child in children)
    except Exception:  # the generator can fail on what the lenient parser accepted
        pass
    return payload_bytes(part)
