"""Readable plain text from the HTML part of a mail, for `text` and reply extraction.

Written on the stdlib `html.parser` rather than a library: html2text is GPL-3 and
inscriptis needs lxml, and mail HTML needs only paragraphs, line breaks, lists, links and
quotes. Blockquotes become "> " lines so that quoted history in HTML-only mail can be
recognised by `extract_reply` like quoted plain text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "address article aside blockquote center dd div dl dt figure footer form h1 h2 h3 "  # noqa: SIM905
    "h4 h5 h6 header hr li main nav ol p pre section table tr ul".split()
)
_PARAGRAPHS = frozenset(
    ["blockquote", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p", "pre", "table", "ul"]
)
_HIDDEN = frozenset(["head", "script", "style", "template", "title", "xml"])
_VOID = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
)
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0]+")
_INVISIBLE = str.maketrans("", "", "\u200b\u200c\ufeff\u00ad")
_BLANK_RUNS = re.compile(r"\n{3,}")
_FEED_CHUNK = 1 << 16
# Deeper nesting adds nothing readable, and hostile HTML must not make the work quadratic.
_MAX_NESTING = 10


def html_to_text(html: str) -> str:
    """The text of an HTML fragment or document, with its structure as plain-text layout."""
    converter = _TextConverter()
    try:
        # Fed in slices: html.parser keeps unparsed input in one string it re-slices.
        for start in range(0, len(html), _FEED_CHUNK):
            converter.feed(html[start : start + _FEED_CHUNK])
        converter.close()
    except (AssertionError, ValueError, RecursionError):  # html.parser's remaining failure modes
        pass
    return converter.result()


class _TextConverter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        # The open line as fragments: += on an attribute copies the whole line every time.
        self._line: list[str] = []
        self._line_has_text = False
        self._line_open = False
        self._pending_breaks = 0
        self._pending_depth = 0
        self._quote_depth = 0
        self._hidden: list[str] = []
        self._pre = 0
        self._lists: list[int] = []  # 0 for <ul>, else the next number of an <ol>
        self._links: list[tuple[str, list[str]]] = []  # href and the label written so far

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden.clear()  # an unclosed <head> must not hide the whole mail
        if tag in _HIDDEN:
            if tag not in _VOID and len(self._hidden) < _MAX_NESTING:
                self._hidden.append(tag)
            return
        if self._hidden:
            return
        if tag in _BLOCKS:
            self._break(self._break_size(tag))
        if tag == "br":
            self._hard_break()
        elif tag == "blockquote":
            self._quote_depth += 1
        elif tag == "pre":
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._lists.append(0 if tag == "ul" else 1)
        elif tag == "li":
            self._write_marker()
        elif tag in ("td", "th") and self._line_has_text:
            self._line.append(" ")
        elif tag == "a" and len(self._links) < _MAX_NESTING:
            self._links.append((dict(attrs).get("href") or "", []))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:
                while self._hidden and self._hidden.pop() != tag:
                    pass
            return
        if self._hidden:
            return
        if tag == "blockquote" and self._quote_depth:
            self._break(2)
            self._quote_depth -= 1
        elif tag == "pre" and self._pre:
            self._pre -= 1
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            if self._lists:
                self._break(1)
                return
        elif tag == "a" and self._links:
            self._write_link_target(*self._links.pop())
        if tag in _BLOCKS:
            self._break(self._break_size(tag))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        data = data.translate(_INVISIBLE)
        if self._pre:
            first, *rest = data.replace("\r\n", "\n").split("\n")
            self._write(first)
            for line in rest:
                self._hard_break()
                self._write(line)
            return
        text = _SPACES.sub(" ", data)
        if text.strip() or not (self._line and self._line[-1].endswith(" ")):
            self._write(text)

    def result(self) -> str:
        self._flush_line()
        lines = [line.rstrip() for line in self._lines]
        return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")

    def _write(self, text: str, keep_indent: bool = False) -> None:
        if self._pending_breaks or not self._line_open:
            text = text if self._pre or keep_indent else text.lstrip(" ")
            if not text:
                return
            self._start_line()
        self._line.append(text)
        self._line_has_text = self._line_has_text or bool(text.strip())
        for _, label in self._links:
            label.append(text)

    def _start_line(self) -> None:
        if self._line_open:
            self._lines.append("".join(self._line))
            blank = ("> " * min(self._pending_depth, self._quote_depth, _MAX_NESTING)).rstrip()
            self._lines.extend([blank] * (self._pending_breaks - 1))
        self._pending_breaks = 0
        self._line = [self._prefix()] if self._quote_depth else []
        self._line_has_text = False
        self._line_open = True

    def _break(self, count: int) -> None:
        if self._line_has_text or self._pending_breaks:
            self._note_depth()
            self._pending_breaks = max(self._pending_breaks, count)

    def _hard_break(self) -> None:
        self._note_depth()
        if self._pending_breaks:
            self._pending_breaks += 1
        else:
            self._pending_breaks = 1 if self._line_has_text else 2

    def _note_depth(self) -> None:
        # A blank line between quote levels belongs to the shallower one.
        if self._pending_breaks:
            self._pending_depth = min(self._pending_depth, self._quote_depth)
        else:
            self._pending_depth = self._quote_depth

    def _break_size(self, tag: str) -> int:
        nested_list = tag in ("ul", "ol") and bool(self._lists)
        return 2 if tag in _PARAGRAPHS and not nested_list else 1

    def _flush_line(self) -> None:
        if self._line_open:
            self._lines.append("".join(self._line))
        self._line = []
        self._line_has_text = False
        self._line_open = False

    def _prefix(self) -> str:
        return "> " * min(self._quote_depth, _MAX_NESTING)

    def _write_marker(self) -> None:
        self._break(1)
        if self._lists and self._lists[-1]:
            marker = f"{self._lists[-1]}. "
            self._lists[-1] += 1
        else:
            marker = "- "
        indent = "  " * min(len(self._lists) - 1, _MAX_NESTING)
        self._write(indent + marker, keep_indent=True)

    def _write_link_target(self, href: str, label_parts: list[str]) -> None:
        href = href.strip()
        label = "".join(label_parts).strip()
        if not href.lower().startswith(("http://", "https://", "mailto:")):
            return
        shown = href[7:] if href.lower().startswith("mailto:") else href
        if shown.rstrip("/") in label or not shown:
            return
        self._write(f" ({shown})" if label else shown)
