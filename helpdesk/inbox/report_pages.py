"""The reports page `/inbox/reports` and its CSV export `/inbox/reports/export.csv`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.errors import ValidationFailed
from helpdesk.inbox.auth import csrf_checked, runtime_of, signed_in
from helpdesk.inbox.rendering import page
from helpdesk.models.tickets import CHANNELS
from helpdesk.reports.csv_export import report_csv
from helpdesk.reports.figures import Period, Report, build_report, parse_period
from helpdesk.reports.svg import Series, legend, stacked_bars

_CHANNEL_NAMES = {"email": "Email", "widget": "Chat widget", "form": "Web form"}


async def _report(
    request: Request[Any, Any, Any], session: AsyncSession, first: str | None, last: str | None
) -> Report:
    runtime = runtime_of(request)
    policy = runtime.settings.service_levels
    now = runtime.clock.now()
    period = parse_period(first, last, now.astimezone(policy.hours.zone).date())
    return await build_report(session, period, policy, now)


def _charts(report: Report) -> list[dict[str, Any]]:
    labels = [f"{day.day.day}.{day.day.month}" for day in report.days]
    period = f"{report.period.first:%d.%m.%Y}–{report.period.last:%d.%m.%Y}"
    volume = [
        Series(_CHANNEL_NAMES[c], f"channel-{c}", [d.volume[c] for d in report.days])
        for c in CHANNELS
    ]
    times = [
        Series("First response", "time-first", [d.median_first_response for d in report.days]),
    ]
    resolution = [
        Series("Resolution", "time-resolution", [d.median_resolution for d in report.days])
    ]
    breaches = [
        Series("First response", "breach-first", [d.first_response_breaches for d in report.days]),
        Series("Resolution", "breach-resolution", [d.resolution_breaches for d in report.days]),
    ]
    business = f"per day in business hours, {period}"
    specs = [
        ("volume", "New tickets per day", f"New tickets per day by channel, {period}.", volume, ""),
        (
            "first-response",
            "Median first response",
            f"Median first response {business}.",
            times,
            " h",
        ),
        (
            "resolution",
            "Median resolution",
            f"Median resolution time {business}.",
            resolution,
            " h",
        ),
        (
            "breaches",
            "Service-level breaches",
            f"Tickets that missed a due time, {period}.",
            breaches,
            "",
        ),
    ]
    return [
        {
            "id": chart_id,
            "title": title,
            "svg": stacked_bars(
                chart_id=f"chart-{chart_id}",
                title=title,
                description=description,
                labels=labels,
                series=series,
                unit=unit,
            ),
            "legend": legend(series),
        }
        for chart_id, title, description, series, unit in specs
    ]


def duration_text(hours: float | None) -> str:
    """A business-time duration for people: '–', '35 min', '6.5 h'."""
    if hours is None:
        return "–"
    if hours < 1:
        return f"{round(hours * 60)} min"
    return f"{hours:.1f}".rstrip("0").rstrip(".") + " h"


class ReportPages(Controller):
    path = "/reports"
    guards = [signed_in, csrf_checked]
    include_in_schema = False

    @get("")
    async def reports(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        first: str | None = None,
        last: str | None = None,
    ) -> Template:
        """Volume per day and channel, median response times and breaches, as charts."""
        try:
            report = await _report(request, db_session, first, last)
        except ValidationFailed as failure:
            context: dict[str, Any] = {"error": failure.fields["period"]}
            context |= {"first": first, "last": last}
            return page(request, "inbox/reports.html", context, status_code=422)
        context = {
            "report": report,
            "charts": _charts(report),
            "channels": [(c, _CHANNEL_NAMES[c]) for c in CHANNELS],
            "first": report.period.first.isoformat(),
            "last": report.period.last.isoformat(),
            "error": None,
            "duration": duration_text,
        }
        return page(request, "inbox/reports.html", context)

    @get("/export.csv")
    async def reports_csv(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        first: str | None = None,
        last: str | None = None,
    ) -> Response[str]:
        """The same figures as CSV (422 with the reason as text for a bad period)."""
        try:
            report = await _report(request, db_session, first, last)
        except ValidationFailed as failure:
            return Response(failure.fields["period"], status_code=422, media_type="text/plain")
        name = f"helpdesk-report-{_file_part(report.period)}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _file_part(period: Period) -> str:
    return f"{period.first.isoformat()}-{period.last.isoformat()}"
