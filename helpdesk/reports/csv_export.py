"""The reports page's figures as CSV: one row per day, then the period's totals."""

from __future__ import annotations

import csv
import io

from helpdesk.models.tickets import CHANNELS
from helpdesk.reports.figures import Report

HEADER = [
    "date",
    *(f"tickets_{channel}" for channel in CHANNELS),
    "tickets_total",
    "median_first_response_business_hours",
    "median_resolution_business_hours",
    "first_response_breaches",
    "resolution_breaches",
]


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def report_csv(report: Report) -> str:
    """CSV text (RFC 4180, CRLF line ends) of the same figures the page shows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for day in report.days:
        writer.writerow(
            [
                day.day.isoformat(),
                *(day.volume[channel] for channel in CHANNELS),
                day.total,
                _cell(day.median_first_response),
                _cell(day.median_resolution),
                day.first_response_breaches,
                day.resolution_breaches,
            ]
        )
    by_channel = report.volume_by_channel()
    writer.writerow(
        [
            "total",
            *(by_channel[channel] for channel in CHANNELS),
            report.total,
            _cell(report.median_first_response),
            _cell(report.median_resolution),
            report.first_response_breaches,
            report.resolution_breaches,
        ]
    )
    return out.getvalue()
