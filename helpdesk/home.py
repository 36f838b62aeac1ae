"""The landing page at `/`: the service is up, with a glance at the ticket load."""

from __future__ import annotations

from datetime import timedelta

from litestar import get
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.clock import utcnow
from helpdesk.models import Ticket
from helpdesk.privacy.restriction import visible_to_work


@get("/", include_in_schema=False)
async def home(db_session: AsyncSession) -> Template:
    # Restricted learners' tickets count nowhere but in their privacy request (issue 7).
    visible = await visible_to_work(db_session)
    shown = () if visible is None else (visible,)
    open_tickets = await db_session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(col(Ticket.status).in_(("new", "open")), *shown)
    )
    new_today = await db_session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(col(Ticket.created_at) >= utcnow() - timedelta(days=1), *shown)
    )
    return Template(
        template_name="index.html",
        context={"open_tickets": open_tickets or 0, "new_today": new_today or 0},
    )
