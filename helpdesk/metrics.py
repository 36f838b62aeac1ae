"""Prometheus metrics at `/metrics`: what the process counted, plus queue figures read
from the database at scrape time.

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

import hmac
import os
from datetime import datetime
from typing import Any

from litestar import Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.deps import bearer_token, provide_runtime
from helpdesk.errors import Unauthorized
from helpdesk.models import OutboundEmail, PrivacyRequest, Ticket
from helpdesk.models.outbound import DELIVERY_STATUSES
from helpdesk.models.privacy import OPEN_STATUSES
from helpdesk.models.privacy import STATUSES as PRIVACY_STATUSES

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


class DatabaseFigures:
    """Gauges read from the database at scrape time (a collector for one scrape)."""

    def __init__(self, figures: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self._figures = figures

    def collect(self) -> list[GaugeMetricFamily]:
        families = []
        for name, samples in self._figures.items():
            labels = sorted(samples[0][0]) if samples else []
            family = GaugeMetricFamily(name, _HELP[name], labels=labels)
            for label_values, value in samples:
                family.add_metric([label_values[k] for k in labels], value)
            families.append(family)
        return families


_HELP = {
    "helpdesk_outbox_emails": "Outgoing mail by delivery status (queued + retrying = queue depth).",
    "helpdesk_outbox_oldest_queued_seconds": "Age of the oldest outgoing mail still waiting.",
    "helpdesk_privacy_requests": "Privacy requests by status.",
    "helpdesk_privacy_requests_overdue": "Open privacy requests past their due (or extended) date.",
    "helpdesk_tickets_needing_review": "Tickets flagged for review (quarantined mail).",
}


async def read_database_figures(session: AsyncSession, now: datetime) -> DatabaseFigures:
    """Count the shared queues: a handful of indexed aggregate queries."""
    outbox_status = col(OutboundEmail.status)
    outbox: dict[str, int] = dict(
        (await session.execute(select(outbox_status, func.count()).group_by(outbox_status))).all()
    )
    oldest = await session.scalar(
        select(func.min(col(OutboundEmail.created_at))).where(
            outbox_status.in_(("queued", "retrying"))
        )
    )
    privacy_status = col(PrivacyRequest.status)
    privacy: dict[str, int] = dict(
        (await session.execute(
            select(privacy_status, func.count()).group_by(privacy_status)
        )).all()
    )
    deadline = func.coalesce(col(PrivacyRequest.extended_until), col(PrivacyRequest.due_at))
    overdue = await session.scalar(
        select(func.count()).where(privacy_status.in_(OPEN_STATUSES), deadline < now)
    )
    review = await session.scalar(
        select(func.count()).where(
            col(Ticket.needs_review).is_(True), col(Ticket.status) != "closed"
        )
    )
    return DatabaseFigures({
        "helpdesk_outbox_emails": [
            ({"status": s}, float(outbox.get(s, 0))) for s in DELIVERY_STATUSES
        ],
        "helpdesk_outbox_oldest_queued_seconds": [
            ({}, max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        ],
        "helpdesk_privacy_requests": [
            ({"status": s}, float(privacy.get(s, 0))) for s in PRIVACY_STATUSES
        ],
        "helpdesk_privacy_requests_overdue": [({}, float(overdue or 0))],
        "helpdesk_tickets_needing_review": [({}, float(review or 0))],
    })


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format; needs `HELPDESK_METRICS_TOKEN` as a bearer token when set."""
    runtime = provide_runtime(request.app.state)
    expected = runtime.settings.metrics_token
    if expected is not None and not _same(bearer_token(request), expected):
        raise Unauthorized("A valid metrics token is required.")
    async with runtime.sessions() as session:
        figures = await read_database_figures(session, runtime.clock.now())
    shared = CollectorRegistry()
    shared.register(figures)  # type: ignore[arg-type]
    body = generate_latest(process_registry()) + generate_latest(shared)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
