"""The list of privacy requests: open ones by deadline (overdue first), then closed ones,
in keyset pages whose cursor is the position of the last row shown."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.errors import ValidationFailed
from helpdesk.models import PrivacyRequest, Ticket
from helpdesk.models.privacy import STATUSES
from helpdesk.models.types import UtcDateTime

PAGE_SIZE = 50


@dataclass(frozen=True)
class RequestPage:
    rows: list[tuple[PrivacyRequest, Ticket]]
    next_cursor: str | None


def _keys() -> tuple[Any, Any, Any]:
    closed = case((col(PrivacyRequest.status).in_(("completed", "refused")), 1), else_=0)
    deadline = func.coalesce(col(PrivacyRequest.extended_until), col(PrivacyRequest.due_at))
    return closed, deadline, col(PrivacyRequest.id)


async def list_requests(
    session: AsyncSession,
    status: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> RequestPage:
    """One page of requests, optionally of some statuses (comma-separated)."""
    limit = limit or PAGE_SIZE
    closed, deadline, ident = _keys()
    query = select(PrivacyRequest, Ticket, closed, deadline).join(
        Ticket, col(Ticket.id) == col(PrivacyRequest.ticket_id)
    )
    if status:
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        if not wanted or any(s not in STATUSES for s in wanted):
            raise ValidationFailed({"status": f"must be one of {', '.join(STATUSES)}"})
        query = query.where(col(PrivacyRequest.status).in_(wanted))
    if cursor:
        position = _decode(cursor)
        bound = tuple_(
            literal(position[0], Integer()),
            literal(position[1], UtcDateTime()),
            literal(position[2], Integer()),
        )
        query = query.where(tuple_(closed, deadline, ident) > bound)
    found = (await session.execute(query.order_by(closed, deadline, ident).limit(limit + 1))).all()
    rows = [(request, ticket) for request, ticket, _, _ in found[:limit]]
    if len(found) <= limit:
        return RequestPage(rows, None)
    last_request, _, last_closed, last_deadline = found[limit - 1]
    return RequestPage(rows, _encode(last_closed, last_deadline, last_request.id))


def _encode(closed: int, deadline: datetime, request_id: int | None) -> str:
    raw = json.dumps([closed, deadline.isoformat(), request_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, datetime, int]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        closed, deadline, request_id = json.loads(raw)
        moment = datetime.fromisoformat(deadline)
        if moment.tzinfo is None or not isinstance(closed, int) or not isinstance(request_id, int):
            raise ValueError("not our cursor")
        return closed, moment, request_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": "not a cursor returned by this list"}) from None
