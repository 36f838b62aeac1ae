"""`GET /metrics`: this process's counters (helpdesk.metrics) plus the shared queue
figures, read from the database at each scrape so every process reports the same truth.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.deps import bearer_token, provide_runtime
from helpdesk.errors import Unauthorized
from helpdesk.metrics import process_registry
from helpdesk.models import OutboundEmail, PrivacyRequest, Ticket
from helpdesk.models.outbound import DELIVERY_STATUSES
from helpdesk.models.privacy import OPEN_STATUSES
from helpdesk.models.privacy import STATUSES as PRIVACY_STATUSES


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
