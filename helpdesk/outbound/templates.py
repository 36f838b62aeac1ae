"""Jinja2 templates of outgoing mail: `mail/<name>.<locale>.txt` and `.html`.

One environment per mail folder, built on first use (never at import) and cached: HTML
templates autoescape, text templates do not. Locales are nb and en; nn uses nb, and mail
to somebody whose locale we do not know is in English.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from helpdesk import resources

MAIL_LOCALES = ("nb", "en")
_LOCALE_FALLBACK = {"nb": "nb", "nn": "nb", "no": "nb", "en": "en"}
_MONTHS_NB = (
    "jan.",
    "feb.",
    "mars",
    "apr.",
    "mai",
    "juni",
    "juli",
    "aug.",
    "sep.",
    "okt.",
    "nov.",
    "des.",
)


@dataclass(frozen=True)
class RenderedMail:
    """The two alternatives of one mail body."""

    text: str
    html: str


def mail_locale(locale: str | None) -> str:
    """The template locale for a learner's locale: nb for nb/nn, English otherwise."""
    key = (locale or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return _LOCALE_FALLBACK.get(key, "en")


@cache
def mail_environment(directory: Path) -> Environment:
    """The Jinja environment of one mail folder (cached; templates load lazily)."""
    environment = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() per render
    )
    environment.filters["local_time"] = local_time
    environment.filters["quote"] = quote_lines
    environment.filters["paragraphs"] = html_paragraphs
    return environment


def render_mail(
    name: str, locale: str | None, context: dict[str, Any], directory: Path | None = None
) -> RenderedMail:
    """Render `<name>.<locale>.txt` and `.html` with the same context."""
    environment = mail_environment(directory or resources.mail_dir())
    chosen = mail_locale(locale)
    return RenderedMail(
        text=environment.get_template(f"{name}.{chosen}.txt").render(context, locale=chosen),
        html=environment.get_template(f"{name}.{chosen}.html").render(context, locale=chosen),
    )


def _oslo() -> Any:
    try:
        return ZoneInfo("Europe/Oslo")
    except ZoneInfoNotFoundError:  # a slim image without tzdata: UTC is still correct
        return UTC


def local_time(moment: datetime, locale: str = "en") -> str:
    """A time as the learner reads it: Norwegian time, written the local way."""
    local = moment.astimezone(_oslo())
    if locale == "nb":
        month = _MONTHS_NB[local.month - 1]
        return f"{local.day}. {month} {local.year} kl. {local:%H:%M}"
    return f"{local.day} {local:%b %Y, %H:%M} ({local:%Z})"


def quote_lines(text: str) -> str:
    """Plain-text quoting: every line prefixed with "> " (RFC 3676 style)."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def html_paragraphs(text: str) -> Markup:
    """Escaped text as HTML paragraphs: blank lines separate, single newlines break."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(
            Markup("<br>\n").join(escape(line) for line in block.split("\n"))
        )
        for block in blocks
    )
