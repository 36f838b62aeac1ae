"""Find the text of a message and its attachments in the MIME tree (RFC 2046, RFC 2387).

multipart/alternative: the text/plain alternative is the text; the richest other one gives
the HTML. multipart/related: the root part is the body and the rest are its inline
resources. Other multiparts (mixed, report, signed, digest, unknown): inline text/plain and
text/html parts are body, everything else is an attachment. message/rfc822 parts are
attachments as a whole; we never descend into a forwarded message's own attachments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from helpdesk.inbound.mime import (
    children_of,
    content_id_of,
    content_type_of,
    is_attachment,
    param_of,
)

MAX_DEPTH = 40
MAX_PARTS = 2000
_TOO_BIG = "MIME structure too deep or too large; the rest is only in the raw message"
_BODY_TYPES = ("text/plain", "text/html")
# Other renderings of the same content inside multipart/alternative: dropped, not attached.
_RENDERINGS = frozenset(
    "text/plain text/html text/enriched text/richtext text/watch-html text/x-amp-html".split()  # noqa: SIM905
)


@dataclass
class MessageParts:
    plain: list[Message] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)
    attachments: list[Message] = field(default_factory=list)
    seen: list[Message] = field(default_factory=list)  # every part looked at, for its defects
    defects: list[str] = field(default_factory=list)


def collect_parts(message: Message) -> MessageParts:
    """Sort every part of the message into body text, body HTML and attachments."""
    parts = MessageParts()
    _visit(message, parts, depth=0)
    return parts


def _visit(part: Message, parts: MessageParts, depth: int) -> None:
    if depth > MAX_DEPTH or len(parts.seen) >= MAX_PARTS:
        if _TOO_BIG not in parts.defects:
            parts.defects.append(_TOO_BIG)
        return
    parts.seen.append(part)
    content_type = content_type_of(part)
    children = children_of(part)
    if content_type.startswith("multipart/") and children:
        _visit_multipart(content_type, children, part, parts, depth)
    elif content_type.startswith("multipart/"):
        # No boundary, or no parts found: RFC 2046 §5.1.7 — read it as text/plain.
        parts.defects.append(f"{content_type} without readable parts; its content is kept as text")
        parts.plain.append(part)
    elif content_type in _BODY_TYPES and not is_attachment(part):
        (parts.plain if content_type == "text/plain" else parts.html).append(part)
    else:
        parts.attachments.append(part)


def _visit_multipart(
    content_type: str, children: list[Message], part: Message, parts: MessageParts, depth: int
) -> None:
    if content_type == "multipart/alternative":
        _visit_alternative(children, parts, depth)
    elif content_type == "multipart/related":
        root = _related_root(children, param_of(part, "start"))
        for child in children:
            if child is root or content_type_of(child).startswith("multipart/"):
                _visit(child, parts, depth + 1)
            else:
                _visit_resource(child, parts)
    else:
        for child in children:
            _visit(child, parts, depth + 1)


def _visit_alternative(children: list[Message], parts: MessageParts, depth: int) -> None:
    plain = next(
        (c for c in children if content_type_of(c) == "text/plain" and not is_attachment(c)),
        None,
    )
    if plain is not None:
        parts.seen.append(plain)
        parts.plain.append(plain)
    richer = [c for c in children if c is not plain and _is_rendering(c)]
    if richer:
        branch = MessageParts(seen=parts.seen, defects=parts.defects)
        _visit(richer[-1], branch, depth + 1)  # RFC 2046 §5.1.4: the last is the richest
        parts.html.extend(branch.html)
        parts.attachments.extend(branch.attachments)
        if plain is None:
            parts.plain.extend(branch.plain)
    for child in children:
        if child is not plain and not _is_rendering(child):
            _visit_resource(child, parts)  # e.g. the text/calendar of an invitation


def _visit_resource(part: Message, parts: MessageParts) -> None:
    if len(parts.seen) < MAX_PARTS:
        parts.seen.append(part)
        parts.attachments.append(part)


def _is_rendering(part: Message) -> bool:
    content_type = content_type_of(part)
    return content_type.startswith("multipart/") or (
        content_type in _RENDERINGS and not is_attachment(part)
    )


def _related_root(children: list[Message], start: str | None) -> Message:
    """The `start` part of multipart/related, else its first part (RFC 2387 §3.2)."""
    if start:
        wanted = start.strip().strip("<>")
        for child in children:
            if content_id_of(child) == wanted:
                return child
    return children[0]
