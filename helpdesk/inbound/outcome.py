"""What ingesting one message came to, and the one error that means "try again later"."""

from __future__ import annotations

from dataclasses import dataclass

INGEST_OUTCOMES = ("created", "appended", "duplicate", "quarantined", "ignored")


class IngestUnavailable(Exception):
    """Our side failed (database or storage): the same message must be offered again."""


@dataclass(frozen=True)
class IngestResult:
    status: str  # one of INGEST_OUTCOMES
    ticket: int | None
    reason: str

    def as_json(self) -> dict[str, object]:
        """The line `helpdesk ingest` prints (DESIGN §5)."""
        return {"status": self.status, "ticket": self.ticket, "reason": self.reason}
