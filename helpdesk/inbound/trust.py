"""Whether a message's From can be believed: our own MTA's DMARC verdict (issue 3 item 7).

With `HELPDESK_AUTHSERV_ID` set, the `Authentication-Results` header (RFC 8601) that our MTA
stamped decides: `dmarc=fail` marks the sender unverified, so the message never threads by
subject token and never counts as the learner for privacy purposes. Without it, From is taken
as is. Headers stamped by anyone else are ignored: anybody can write one.

Which header is "ours"? RFC 8601 §5 makes our border MTA delete (or rename) any incoming
header that claims our authserv-id, and every MTA prepends its own header at the top. So a
header with our id is either ours or a forgery our MTA failed to remove, and a forgery always
sits below the header our MTA added itself. We therefore take the *topmost* DMARC result
among headers carrying our id, skipping foreign headers above it (a filter inside our own
network may stamp with another id after our MTA), and do not only look at the very first
header: that would miss a genuine `dmarc=fail` whenever such a filter stamps above ours.
This is safe because only a fail changes anything — a forged `dmarc=pass` below a foreign
header can at most restore what having no result at all gives (From taken as is), and a
forged fail only hurts the forger. Where our MTA added no DMARC result there is no verdict,
and From is taken as is with a reason that says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

_METHOD = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` statement, e.g. `dmarc=fail (p=reject) header.from=example.com`."""

    method: str  # lower-cased, without a method version
    result: str  # lower-cased
    reason: str = ""
    properties: dict[str, str] = field(default_factory=dict)  # "header.from" → "example.com"
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthenticationResults:
    """One parsed Authentication-Results header."""

    authserv_id: str  # "" when the header names none (Microsoft 365 omits it)
    results: tuple[MethodResult, ...]


def sender_verified(message: Message, authserv_id: str | None) -> tuple[bool, str]:
    """(verified, reason): False only when our own MTA's topmost DMARC result is a fail."""
    if not authserv_id:
        return True, "no authserv-id configured"
    ours = authserv_id.strip().lower()
    for value in authentication_results_headers(message):
        header = parse_authentication_results(value)
        dmarc = [r for r in header.results if r.method == "dmarc"]
        if header.authserv_id.lower() != ours or not dmarc:
            continue
        verdict = next((r for r in dmarc if r.result == "fail"), dmarc[0])
        return verdict.result != "fail", _describe(verdict, header.authserv_id)
    return True, f"no DMARC result from {authserv_id}; From taken as is"


def authentication_results_headers(message: Message) -> list[str]:
    """The raw Authentication-Results values, topmost first, unfolded."""
    return [
        re.sub(r"\r?\n(?=[ \t])", "", str(value))
        for name, value in message.raw_items()
        if name.lower() == "authentication-results"
    ]


def parse_authentication_results(value: str) -> AuthenticationResults:
    """Parse one header per RFC 8601 §2.2, tolerating what real MTAs write."""
    groups = _split(_tokens(value))
    head = [t for t in groups[0] if t.kind != "comment"]
    if head and not any(t.text == "=" and t.kind == "special" for t in head):
        # authserv-id [CFWS authres-version]; a "=" here means the id was left out.
        authserv_id, statements = head[0].text, groups[1:]
    else:
        authserv_id, statements = "", groups
    results = tuple(r for g in statements if (r := _method_result(g)) is not None)
    return AuthenticationResults(authserv_id, results)


def _describe(verdict: MethodResult, authserv_id: str) -> str:
    domain = verdict.properties.get("header.from", "")
    comment = f" ({'; '.join(verdict.comments)})" if verdict.comments else ""
    about = f" for {domain}" if domain else ""
    why = f": {' '.join(verdict.reason.split())}" if verdict.reason else ""
    return f"dmarc={verdict.result}{comment}{about} according to {authserv_id}{why}"


# --- a small RFC 8601 tokenizer: CFWS, comments, quoted strings, ";" and "=" ------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted", "special" (";" or "="), "comment"
    text: str
    spaced: bool  # whitespace or a comment came right before it


def _tokens(value: str) -> Iterator[_Token]:
    i, spaced = 0, False
    while i < len(value):
        char = value[i]
        if char in " \t\r\n":
            i, spaced = i + 1, True
            continue
        if char == "(":
            text, i = _read_delimited(value, i, "(", ")")
            yield _Token("comment", " ".join(text.split()), spaced)
            spaced = True
            continue
        if char == '"':
            text, i = _read_delimited(value, i, '"', '"')
            yield _Token("quoted", text, spaced)
        elif char in ";=":
            yield _Token("special", char, spaced)
            i += 1
        elif char == ")":  # a stray closing parenthesis: skip it, it closes nothing
            i, spaced = i + 1, True
            continue
        else:
            end = i
            while end < len(value) and value[end] not in ' \t\r\n();="':
                end += 1
            yield _Token("word", value[i:end], spaced)
            i = end
        spaced = False


def _read_delimited(value: str, start: int, opener: str, closer: str) -> tuple[str, int]:
    """A comment (nesting) or quoted string from `start`; backslash escapes; unterminated ends."""
    depth, i, text = 1, start + 1, []
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            text.append(value[i + 1])
            i += 2
            continue
        if char == closer:
            depth -= 1
            if depth == 0:
                return "".join(text), i + 1
        elif char == opener and opener != closer:
            depth += 1
        text.append(char)
        i += 1
    return "".join(text), i


def _split(tokens: Iterator[_Token]) -> list[list[_Token]]:
    groups: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "special" and token.text == ";":
            groups.append([])
        else:
            groups[-1].append(token)
    return groups


def _method_result(group: list[_Token]) -> MethodResult | None:
    """`method[/version] = result [reason=value] [ptype.property=value ...]`."""
    words = [t for t in group if t.kind != "comment"]
    equals = next((i for i, t in enumerate(words) if t.kind == "special"), None)
    if equals is None or equals + 1 >= len(words):
        return None  # "none" (no-result) or garbage
    method = "".join(t.text for t in words[:equals]).partition("/")[0].strip().lower()
    if not _METHOD.match(method):
        return None
    properties = _properties(words[equals + 2 :])
    return MethodResult(
        method=method,
        result=words[equals + 1].text.lower(),
        reason=properties.pop("reason", ""),
        properties=properties,
        comments=tuple(t.text for t in group if t.kind == "comment"),
    )


def _properties(words: list[_Token]) -> dict[str, str]:
    """`key=value` pairs; a value runs on through glued tokens (`header.b=abc==`)."""
    properties: dict[str, str] = {}
    i = 0
    while i < len(words):
        equals = next((j for j in range(i, len(words)) if words[j].kind == "special"), None)
        if equals is None or equals + 1 >= len(words):
            break
        key = "".join(t.text for t in words[i:equals]).lower()
        end = equals + 2
        while end < len(words) and not words[end].spaced:
            end += 1
        properties.setdefault(key, "".join(t.text for t in words[equals + 1 : end]))
        i = end
    return properties
