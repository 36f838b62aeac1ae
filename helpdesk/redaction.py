"""Keep personal data out of logs: email addresses are redacted (DESIGN §7)."""

from __future__ import annotations

import logging
import re

_ADDRESS = re.compile(r"([A-Za-z0-9._%+\-]{1,64})@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


def redact_addresses(text: str) -> str:
    """`kari.nordmann@example.no` → `k***@example.no`."""
    return _ADDRESS.sub(lambda m: f"{m.group(1)[0]}***@{m.group(2)}", text)


_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites every record's message with addresses redacted, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_addresses(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Exception messages quote addresses too (e.g. a refused recipient).
            record.exc_text = redact_addresses(_FORMATTER.formatException(record.exc_info))
        return True


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr through the redacting filter, as text or one JSON object per line."""
    from helpdesk.structured_logs import JsonFormatter, RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
