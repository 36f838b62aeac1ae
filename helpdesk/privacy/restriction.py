"""Restriction of processing (GDPR art. 18) as other capabilities must respect it.

A restricted learner's data is kept but used for nothing but their privacy request. What
that means in the helpdesk, decided here once and used everywhere:

- Ordinary work lists leave the learner's tickets (and so their messages) out: the inbox
  queues and their counts, search results, the operator API's ticket list and search, and
  the reports' figures — all through `visible_to_work`.
- Except a ticket that carries a privacy request (the request itself, and any later one
  such as asking to lift the restriction): it stays in every list, the privacy queue
  included, so the request can be handled on time.
- Opening a ticket directly (a link, its number) still works and shows the restriction
  banner saying why it is hidden elsewhere. On the learner card, an administrator (who
  handles privacy requests) still sees the learner's other tickets; other operators see
  only those of privacy requests.
- No automatic mail (acknowledgements etc.) except the mail about the request itself
  (`ticket_learner_restricted`, checked by `helpdesk.outbound.automatic`); an operator may
  still reply by hand about the request. Lifting the restriction brings everything back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.models import Learner, PrivacyRequest, Ticket


async def ticket_learner_restricted(session: AsyncSession, ticket_id: int | None) -> bool:
    """True when the ticket's learner is restricted: no automatic mail to them, except
    the mail about their privacy request (which `helpdesk.privacy.notices` sends itself)."""
    if ticket_id is None:
        return False
    restricted = await session.scalar(
        select(col(Learner.restricted_at))
        .join(Ticket, col(Ticket.learner_id) == col(Learner.id))
        .where(col(Ticket.id) == ticket_id)
    )
    return restricted is not None


async def restricted_learner_ids(session: AsyncSession) -> list[int]:
    """The ids of learners whose processing is restricted (few, usually none)."""
    found = await session.scalars(
        select(col(Learner.id)).where(col(Learner.restricted_at).is_not(None))
    )
    return [learner_id for learner_id in found if learner_id is not None]


async def visible_to_work(session: AsyncSession) -> ColumnElement[bool] | None:
    """The condition on `Ticket` that keeps restricted learners' tickets out of work lists,
    search and figures, privacy-request tickets excepted; None when nobody is restricted.

    The restricted learners are read first (a handful at most), so the lists pay nothing
    while nobody is restricted and a short NOT IN list otherwise.
    """
    restricted = await restricted_learner_ids(session)
    return visible_unless(restricted) if restricted else None


def visible_unless(restricted: Sequence[int] | BindParameter[Any]) -> ColumnElement[bool]:
    """`visible_to_work`'s condition for these restricted learners (or a bound list of them,
    for a statement built once and run many times)."""
    return or_(
        col(Ticket.learner_id).is_(None),
        col(Ticket.learner_id).not_in(restricted),
        col(Ticket.id).in_(select(col(PrivacyRequest.ticket_id))),
    )


async def hidden_from_work(session: AsyncSession, ticket: Ticket) -> bool:
    """True when `visible_to_work` leaves this ticket out (for the banner on its page)."""
    if ticket.learner_id is None or ticket.id is None:
        return False
    learner = await session.get(Learner, ticket.learner_id)
    if learner is None or learner.restricted_at is None:
        return False
    has_request = await session.scalar(
        select(col(PrivacyRequest.id)).where(col(PrivacyRequest.ticket_id) == ticket.id)
    )
    return has_request is None
