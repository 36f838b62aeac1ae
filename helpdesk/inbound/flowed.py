"""Undo RFC 3676 format=flowed soft line breaks so paragraphs read as paragraphs."""

from __future__ import annotations

_SIGNATURE_SEPARATOR = "-- "


def unflow_text(text: str, delsp: bool) -> str:
    """Join flowed lines (RFC 3676 §4.2): a line ending in a space continues on the next one."""
    output: list[str] = []
    paragraph: list[str] = []
    paragraph_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing (§4.4)
        if paragraph and depth != paragraph_depth:
            output.append(_quote(paragraph_depth, "".join(paragraph)))  # quote depth changed (§4.5)
            paragraph = []
        paragraph_depth = depth
        flowed = content.endswith(" ") and content != _SIGNATURE_SEPARATOR
        if flowed and delsp:
            content = content[:-1]
        paragraph.append(content)
        if not flowed:
            output.append(_quote(depth, "".join(paragraph)))
            paragraph = []
    if paragraph:
        output.append(_quote(paragraph_depth, "".join(paragraph)))
    return "\n".join(output)


def _quote(depth: int, content: str) -> str:
    return f"{'>' * depth} {content}" if depth else content
