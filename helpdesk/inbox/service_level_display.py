"""How a ticket's service-level due times read in the inbox: met, missed, due soon or later.

Registered as the template global `service_levels(ticket)`, so the queue rows rendered by
the pages and by live updates show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from helpdesk.tickets.service_levels import ACTIVE_STATUSES, due_states

SOON = timedelta(hours=1)


@dataclass(frozen=True)
class DueView:
    """One due time as shown: label, when, state (met, missed, overdue, soon, due)."""

    label: str
    due_at: datetime
    state: str
    text: str


def _remaining(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 600:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"


def service_level_views(ticket: Any, now: datetime | None = None) -> list[DueView]:
    """The ticket's due times for display (nothing for tickets without them)."""
    at = now or datetime.now(UTC)
    views = []
    for state in due_states(ticket):
        if state.done_at is not None:
            kind = "missed" if state.breached(at) else "met"
            text = "missed" if kind == "missed" else "met"
        elif ticket.status not in ACTIVE_STATUSES:
            continue
        elif state.due_at <= at:
            kind, text = "overdue", f"overdue by {_remaining(at - state.due_at)}"
        else:
            kind = "soon" if state.due_at - at <= SOON else "due"
            text = f"due in {_remaining(state.due_at - at)}"
        views.append(DueView(state.label, state.due_at, kind, text))
    return views


def configure_template_engine(engine: Any) -> None:
    """Litestar `engine_callback`: `service_levels(ticket)` and `is_past(moment)` in templates.

    Templates ship with the code, so Jinja need not stat() each template file (and every
    file it includes) on every render to see whether it changed; a template edited while
    `helpdesk serve` runs takes effect at the next start.
    """
    engine.engine.globals["service_levels"] = service_level_views
    engine.engine.globals["is_past"] = is_past
    engine.engine.auto_reload = False


def is_past(moment: datetime | None) -> bool:
    """True once `moment` has come (an overdue privacy request, say)."""
    return moment is not None and moment <= datetime.now(UTC)
