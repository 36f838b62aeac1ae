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


@get("/", include_in_schema=False)
async def home(db_session: AsyncSession) -> Template:
    open_tickets = await db_session.scalar(
        select(func.count()).select_from(Ticket).where(col(Ticket.status).in_(("new", "open")))
    )
    new_today = await db_session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(col(Ticket.created_at) >= utcnow() - timedelta(days=1))
    )
    return Template(
        template_name="index.html",
        context={"open_tickets": open_tickets or 0, "new_today": new_today or 0},
    )
