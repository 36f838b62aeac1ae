"""Email addresses never reach the logs in clear."""

from __future__ import annotations

import logging

from helpdesk.redaction import RedactingFilter, redact_addresses


def test_addresses_are_redacted_keeping_the_domain() -> None:
    assert redact_addresses("from kari.nordmann@example.no to ola@kurs.no") == (
        "from k***@example.no to o***@kurs.no"
    )


def test_log_records_pass_through_the_redacting_filter() -> None:
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "sender %s", ("kari@example.no",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "sender k***@example.no"


def test_exception_text_is_redacted_too() -> None:
    try:
        raise ValueError("recipient kari@example.no refused")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RedactingFilter().filter(record)
    assert "k***@example.no" in record.exc_text and "kari@" not in record.exc_text
