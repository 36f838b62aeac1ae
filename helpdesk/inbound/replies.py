"""The new part of a reply, without quoted history and signature (for `reply_text`).

The full text is always kept next to it; this is only what the inbox shows before the
operator expands the quoted part. So every rule leans towards keeping text: quoted lines
are history only when nothing but quotes follows them (bottom-posted and interleaved
answers are kept whole), a weak attribution line ("… wrote:" with no date or address)
counts only when quoted lines follow it, and forwarded mail is never cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "… wrote:" in English; "… skrev Kari Nordmann <kari@example.no>:" in Norwegian, Danish and
# Swedish (the name follows the verb), also "skrev følgende:", nynorsk "skreiv", German "schrieb".
_ATTRIBUTION_END = re.compile(
    r"(?:\b(?:wrote|writes|kirjoitti)|a\s+écrit)\s*:\s*$|\b(?:skrev|skreiv|schrieb)\b.{0,120}:\s*$",
    re.IGNORECASE,
)
# How attribution lines of common clients begin: "On …", "Den …", "Am …", "Le …", a weekday
# ("tir. 3. nov. 2026 kl. 10:15 skrev …", Gmail in Norwegian) or a date ("3. nov. 2026 …", iOS).
_ATTRIBUTION_START = re.compile(
    r"^(?:on|den|på|am|le|op|el|il|\d|"
    r"(?:man|tir|ons|tor|fre|lør|søn|mån|tis|tors|lör|sön|mon|tue|wed|thu|fri|sat|sun)\w*\.?\s)",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^-{3,}\s*(?:original message|opprinnelig melding|original melding|oprindelig meddelelse"
    r"|ursprungligt meddelande|ursprüngliche nachricht|message d'origine)\s*-{3,}$",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"^(?:-{3,}\s*(?:forwarded message|videresendt (?:melding|e-post)|vidaresendt melding"
    r"|videresendt meddelelse|vidarebefordrat meddelande)\s*-{3,}|begin forwarded message:"
    r"|start på videresendt melding:|videresendt melding:)$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\**\s*(?:from|fra|från|von|de)\s*:\**\s*\S", re.IGNORECASE)
_HEADER_FIELDS = {
    "sent": re.compile(r"^\**\s*(?:sent|sendt|skickat|gesendet|envoyé|date|dato|datum)\s*:", re.I),
    "to": re.compile(r"^\**\s*(?:to|til|till|an|à)\s*:", re.IGNORECASE),
    "subject": re.compile(r"^\**\s*(?:subject|emne|ämne|betreff|objet)\s*:", re.IGNORECASE),
}
_RULE = re.compile(r"^_{10,}$")
_MOBILE_SIGNATURE = re.compile(
    r"^(?:sent from|sendt fra|sendt från|skickat från|gesendet von|envoyé de"
    r"|get outlook for|hent outlook for|få outlook for)\b.{0,60}$",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_MAX_ATTRIBUTION_CHARS = 300
_MAX_SIGNATURE_LINES = 15


def extract_reply(text: str) -> str:
    """The new text of a message; the whole text when nothing is recognised or nothing is left."""
    lines = _Lines.of(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    end = _signature_start(lines, _history_start(lines))
    reply = "\n".join(lines.raw[:end]).strip("\n")
    return reply if reply.strip() else text


@dataclass(frozen=True, slots=True)
class _Lines:
    """The lines of a message with what the rules ask of them computed once (linear time)."""

    raw: list[str]
    plain: list[str]  # stripped, no-break spaces as spaces
    quoted: list[bool]
    quotes_to_end: list[bool]  # from here on only quoted or blank lines
    next_content: list[int]  # index of the next non-blank line, len(raw) if none

    @classmethod
    def of(cls, raw: list[str]) -> _Lines:
        plain = [line.replace("\u00a0", " ").replace("\u200b", "").strip() for line in raw]
        quoted = [line.startswith(">") for line in plain]
        count = len(raw)
        quotes_to_end, next_content = [True] * (count + 1), [count] * (count + 1)
        for index in range(count - 1, -1, -1):
            quotes_to_end[index] = quotes_to_end[index + 1] and (quoted[index] or not plain[index])
            next_content[index] = index if plain[index] else next_content[index + 1]
        return cls(raw, plain, quoted, quotes_to_end, next_content)


def _history_start(lines: _Lines) -> int:
    """The index of the first line of quoted history, or len(lines) when there is none."""
    for index, plain in enumerate(lines.plain):
        if _FORWARD.match(plain):
            return len(lines.raw)  # a forward: what follows is the content, not history
        if _SEPARATOR.match(plain) or _is_header_block(lines, index):
            return index - 1 if index and _RULE.match(lines.plain[index - 1]) else index
        span = _attribution_span(lines, index)
        if span and _history_follows(lines, index + span, _is_strong(lines, index, span)):
            return index
        if lines.quoted[index] and lines.quotes_to_end[index]:
            return index
    return len(lines.raw)


def _attribution_span(lines: _Lines, index: int) -> int:
    """How many lines (1-3) an attribution such as "On … wrote:" at `index` spans; 0 if none."""
    if lines.quoted[index]:
        return 0
    joined = lines.plain[index]
    for span in (1, 2, 3):
        if span > 1:
            if index + span > len(lines.raw) or not lines.plain[index + span - 1]:
                return 0
            joined = f"{joined} {lines.plain[index + span - 1]}"
        if len(joined) > _MAX_ATTRIBUTION_CHARS:
            return 0
        if _ATTRIBUTION_END.search(joined):
            return span
        if span == 1 and not (_ATTRIBUTION_START.match(joined) or "@" in joined):
            return 0  # only Gmail-style attributions wrap, and they start like one
    return 0


def _is_strong(lines: _Lines, index: int, span: int) -> bool:
    """Clients write an address, or a date and a time, into their attribution lines."""
    joined = " ".join(lines.plain[index : index + span])
    return "@" in joined or bool(_ATTRIBUTION_START.match(joined) and _TIME.search(joined))


def _history_follows(lines: _Lines, start: int, strong: bool) -> bool:
    following = lines.next_content[start]
    if following == len(lines.raw):
        return False
    if lines.quoted[following]:
        return lines.quotes_to_end[following]
    return strong  # Outlook, Apple and iOS often put the old message below unquoted


def _is_header_block(lines: _Lines, index: int) -> bool:
    """An Outlook-style "From:/Sent:/To:/Subject:" block (or Fra:/Sendt:/Til:/Emne:)."""
    if not _HEADER_FROM.match(lines.plain[index]):
        return False
    found: set[str] = set()
    for plain in lines.plain[index + 1 : index + 8]:
        found.update(name for name, field in _HEADER_FIELDS.items() if field.match(plain))
    return len(found) >= 2


def _signature_start(lines: _Lines, end: int) -> int:
    """Cut a trailing "Sent from my iPhone" line and an RFC 3676 §4.3 "-- " signature."""
    while end and not lines.plain[end - 1]:
        end -= 1
    if end and _MOBILE_SIGNATURE.match(lines.plain[end - 1]):
        end -= 1
    for index in range(end - 1, max(end - _MAX_SIGNATURE_LINES - 1, -1), -1):
        if lines.raw[index].rstrip() == "--":  # "-- ", or "--" where a mailer ate the space
            has_text_above = lines.next_content[0] < index
            return index if has_text_above else end
    return end
