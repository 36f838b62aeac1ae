"""A stand-in for the ingest pipeline: commits each distinct message once, by SHA-256.

Backed by a SQLite file, so that what a killed process committed survives it
(`tests/peers/killed_fetcher.py`). Like the real pipeline it reports a second delivery
of the same bytes as `duplicate` instead of storing it again.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

Hook = Callable[[bytes, str], Awaitable[None]]


class BadMessage(Exception):
    """What a pipeline bug on one message looks like to the fetcher: not an outage."""


class Sha256Ingest:
    def __init__(
        self,
        path: Path,
        *,
        before_commit: Hook | None = None,
        after_commit: Hook | None = None,
        poison: bytes | None = None,
    ) -> None:
        self.path = path
        self.before_commit = before_commit
        self.after_commit = after_commit
        self.poison = poison
        self.statuses: list[str] = []
        with closing(self._connect()) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ingested"
                " (sha256 TEXT PRIMARY KEY, raw BLOB NOT NULL, source TEXT NOT NULL)"
            )

    async def __call__(self, raw: bytes, source: str) -> str:
        if self.poison is not None and self.poison in raw:
            raise BadMessage("this message breaks the pipeline")
        if self.before_commit is not None:
            await self.before_commit(raw, source)
        digest = hashlib.sha256(raw).hexdigest()
        with closing(self._connect()) as db:  # autocommit: committed when execute returns
            inserted = db.execute(
                "INSERT OR IGNORE INTO ingested VALUES (?, ?, ?)", (digest, raw, source)
            ).rowcount
        status = "created" if inserted else "duplicate"
        self.statuses.append(status)
        if self.after_commit is not None:
            await self.after_commit(raw, source)
        return status

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def stored(self) -> list[bytes]:
        """Every distinct message committed so far, in commit order."""
        with closing(self._connect()) as db:
            return [row[0] for row in db.execute("SELECT raw FROM ingested ORDER BY rowid")]


def support_mail(number: int, body: str = "Hei, jeg finner ikke kursbeviset mitt.") -> bytes:
    """A learner's message to support; `number` makes it distinct."""
    return (
        f"From: Kari Nordmann <kari.{number}@example.no>\r\n"
        "To: support@kurs.example\r\n"
        f"Subject: Kursbevis {number}\r\n"
        f"Message-ID: <learner-{number}@example.no>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
