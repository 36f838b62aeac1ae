"""The privacy API's JSON shapes: the request resource of DESIGN §8 and request bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import PrivacyRequest, Ticket
from helpdesk.tickets.schemas import PrivacyRequestOut

Kind = Literal["access", "rectification", "erasure", "restriction", "objection", "portability"]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]

__all__ = ["PrivacyRequestOut", "privacy_request_of", "privacy_request_out"]


class PrivacyRequestIn(Struct, forbid_unknown_fields=True):
    kind: Kind


class FulfilIn(Struct, forbid_unknown_fields=True):
    """Rectification: the corrected fields; objection: what the operator decided."""

    name: str | None = None
    email: str | None = None
    organisation: str | None = None
    decision: Literal["restrict", "erase", "stop"] | None = None


class RefuseIn(Struct, forbid_unknown_fields=True):
    reason: Reason


class ExtendIn(Struct, forbid_unknown_fields=True):
    months: Annotated[int, Meta(ge=1, le=2)]
    reason: Reason


class PrivacyRequestListOut(Struct):
    items: list[PrivacyRequestOut]
    next_cursor: str | None = None


class MentionsOut(Struct):
    """Other tickets that still mention an erased learner, to redact."""

    tickets: list[int]


def privacy_request_out(request: PrivacyRequest, ticket_number: int) -> PrivacyRequestOut:
    """The resource of DESIGN §8."""
    assert request.id is not None
    return PrivacyRequestOut(
        id=request.id,
        ticket=ticket_number,
        kind=request.kind,
        status=request.status,
        received_at=request.received_at,
        due_at=request.due_at,
        extended_until=request.extended_until,
        verified_at=request.verified_at,
        completed_at=request.completed_at,
        outcome=request.outcome,
    )


async def privacy_request_of(session: AsyncSession, ticket: Ticket) -> PrivacyRequestOut | None:
    """The `privacy_request` of a ticket's detail (DESIGN §8), or None."""
    request = await session.scalar(
        select(PrivacyRequest).where(col(PrivacyRequest.ticket_id) == ticket.id)
    )
    return privacy_request_out(request, ticket.number) if request is not None else None
