"""Prometheus metrics: what this process counted (served at `/metrics` by
helpdesk.metrics_api, together with queue figures read from the database at scrape time).

Counters and histograms live in this process (`prometheus_client`'s default registry).
`helpdesk serve --workers N` runs N processes behind one port, so there they are written
to `PROMETHEUS_MULTIPROC_DIR` (set by the CLI before the workers start) and summed at
scrape time. Figures that describe shared state — outbox depth, privacy deadlines,
tickets needing review — come from the database on each scrape, so every process reports
the same truth however many there are.

No personal data: labels are routes (templates like `/api/v1/tickets/{number:int}`),
statuses and kinds, never paths with values or addresses.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

HTTP_REQUESTS = Counter(
    "helpdesk_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "helpdesk_http_request_duration_seconds",
    "Time to answer an HTTP request (streams: time to the first byte).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INBOUND_MESSAGES = Counter(
    "helpdesk_inbound_messages_total",
    "Inbound messages ingested, by outcome (created, appended, duplicate, quarantined, ignored).",
    ["status"],
)
OUTBOX_DELIVERIES = Counter(
    "helpdesk_outbox_deliveries_total",
    "Delivery attempts of outgoing mail, by result (sent, retrying, failed).",
    ["result"],
)
SSE_CONNECTIONS = Gauge(
    "helpdesk_sse_connections",
    "Open Server-Sent Events streams, by stream (inbox, widget).",
    ["stream"],
    multiprocess_mode="livesum",
)
RETENTION_DELETED = Counter(
    "helpdesk_retention_deleted_total",
    "Records deleted by retention runs, by category.",
    ["category"],
)


def http_route(scope: Any) -> str:
    """The route template of a request; unmatched paths share one label (bounded cardinality)."""
    template = scope.get("path_template")
    return template if isinstance(template, str) and template else "unmatched"


def process_registry() -> CollectorRegistry:
    """This process's metrics, or all worker processes' summed in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


Event = TypeVar("Event")


async def counted_stream(stream: str, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """Pass a Server-Sent Events stream through, counted in `helpdesk_sse_connections`."""
    gauge = SSE_CONNECTIONS.labels(stream)
    gauge.inc()
    try:
        async for event in events:
            yield event
    finally:
        gauge.dec()
