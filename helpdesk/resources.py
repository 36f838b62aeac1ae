"""Where the files that are not Python live: templates, mail templates and migrations.

A source checkout keeps them at the repository root, next to the package; a wheel carries
them inside the package as `helpdesk/_data/` (the force-include of pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    """The folder holding templates/, mail/, migrations/ and alembic.ini."""
    bundled = _PACKAGE / "_data"
    return bundled if bundled.is_dir() else _PACKAGE.parent


def templates_dir() -> Path:
    """Jinja2 templates of the web pages."""
    return data_root() / "templates"


def mail_dir() -> Path:
    """Jinja2 templates of outgoing email."""
    return data_root() / "mail"


def migrations_dir() -> Path:
    """Alembic's script location (env.py, versions/)."""
    return data_root() / "migrations"


def alembic_ini() -> Path:
    """Alembic's configuration file."""
    return data_root() / "alembic.ini"
