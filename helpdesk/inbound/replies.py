"""The new part of a reply, without quoted history and signature (for `reply_text`).

The full text is always kept next to it; this is only what the inbox shows before the
operator expands the quoted part. So every rule leans towards keeping text: quoted lines
are history only when nothing but quotes follows them (bottom-posted and interleaved
answers are kept whole), a weak attribution line ("… wrote:" with no date or address)
counts only when quoted lines follow it, and forwarded mail is never cut.
"""

from __future__ import annotations

import re

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
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    reply = "\n".join(_without_signature(lines[: _history_start(lines)])).strip("\n")
    return reply if reply.strip() else text


def _history_start(lines: list[str]) -> int:
    """The index of the first line of quoted history, or len(lines) when there is none."""
    for index, line in enumerate(lines):
        plain = _plain(line)
        if _FORWARD.match(plain):
            return len(lines)  # a forward: what follows is the content, not history
        if _SEPARATOR.match(plain) or _is_header_block(lines, index):
            return index - 1 if index and _RULE.match(_plain(lines[index - 1])) else index
        span = _attribution_span(lines, index)
        if span and _history_follows(lines, index + span, strong=_is_strong(lines, index, span)):
            return index
        if _is_quoted(line) and _only_quotes_from(lines, index):
            return index
    return len(lines)


def _attribution_span(lines: list[str], index: int) -> int:
    """How many lines (1-3) an attribution such as "On … wrote:" at `index` spans; 0 if none."""
    if _is_quoted(lines[index]):
        return 0
    joined = _plain(lines[index])
    for span in (1, 2, 3):
        if span > 1:
            if index + span > len(lines) or not _plain(lines[index + span - 1]):
                return 0
            joined = f"{joined} {_plain(lines[index + span - 1])}"
        if len(joined) > _MAX_ATTRIBUTION_CHARS:
            return 0
        if _ATTRIBUTION_END.search(joined):
            return span
        if span == 1 and not (_ATTRIBUTION_START.match(joined) or "@" in joined):
            return 0  # only Gmail-style attributions wrap, and they start like one
    return 0


def _is_strong(lines: list[str], index: int, span: int) -> bool:
    """Clients write an address, or a date and a time, into their attribution lines."""
    joined = " ".join(_plain(line) for line in lines[index : index + span])
    return "@" in joined or bool(_ATTRIBUTION_START.match(joined) and _TIME.search(joined))


def _history_follows(lines: list[str], start: int, strong: bool) -> bool:
    following = next((i for i in range(start, len(lines)) if _plain(lines[i])), None)
    if following is None:
        return False
    if _is_quoted(lines[following]):
        return _only_quotes_from(lines, following)
    return strong  # Outlook, Apple and iOS often put the old message below unquoted


def _is_header_block(lines: list[str], index: int) -> bool:
    """An Outlook-style "From:/Sent:/To:/Subject:" block (or Fra:/Sendt:/Til:/Emne:)."""
    if not _HEADER_FROM.match(_plain(lines[index])):
        return False
    found: set[str] = set()
    for line in lines[index + 1 : index + 8]:
        plain = _plain(line)
        found.update(name for name, field in _HEADER_FIELDS.items() if field.match(plain))
    return len(found) >= 2


def _only_quotes_from(lines: list[str], start: int) -> bool:
    return all(_is_quoted(line) or not _plain(line) for line in lines[start:])


def _without_signature(lines: list[str]) -> list[str]:
    """Drop a trailing "Sent from my iPhone" line and an RFC 3676 §4.3 "-- " signature."""
    while lines and not _plain(lines[-1]):
        lines = lines[:-1]
    if lines and _MOBILE_SIGNATURE.match(_plain(lines[-1])):
        lines = lines[:-1]
    for index in range(len(lines) - 1, max(len(lines) - _MAX_SIGNATURE_LINES - 1, -1), -1):
        if lines[index].rstrip() in ("--", "-- ") or lines[index] == "-- ":
            if any(_plain(line) for line in lines[:index]):
                return lines[:index]
            break
    return lines


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _plain(line: str) -> str:
    return line.replace("\u00a0", " ").replace("\u200b", "").strip()
