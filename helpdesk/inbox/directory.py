"""Operators as the inbox lists them: assignee choices and the admin overview."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Operator


async def active_operators(session: AsyncSession) -> list[Operator]:
    """Operators a ticket can be assigned to, by name."""
    query = select(Operator).where(col(Operator.active).is_(True)).order_by(col(Operator.name))
    return list(await session.scalars(query))


async def all_operators(session: AsyncSession) -> list[Operator]:
    """Every operator, active first, then by name (admin overview)."""
    query = select(Operator).order_by(col(Operator.active).desc(), col(Operator.name))
    return list(await session.scalars(query))
