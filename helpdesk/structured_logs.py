"""Structured logs: a request id on every record, and JSON lines for log shippers.

The request id comes from a trusted proxy's `X-Request-ID` when it looks like one (so a
request can be followed from the load balancer to the database), otherwise it is made
here; it is returned in the response's `X-Request-ID`. Records are redacted before they
are formatted (helpdesk.redaction.RedactingFilter), extra fields included.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from helpdesk.redaction import redact_addresses

REQUEST_ID: ContextVar[str | None] = ContextVar("helpdesk_request_id", default=None)
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._\-]{8,64}")
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is a plain token, else a new random one."""
    if header and _ACCEPTABLE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or "-") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id and request_id != "-":
            document["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = _plain(value)
        if record.exc_info:
            document["exception"] = record.exc_text or redact_addresses(
                self.formatException(record.exc_info)
            )
        return json.dumps(document, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return redact_addresses(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_addresses(str(value))
