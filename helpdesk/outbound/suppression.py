"""The suppression list: addresses that bounced for good.

No automatic mail goes to a suppressed address; an operator's reply to one is held back
until the operator confirms it (`force`) or lifts the suppression. A hard bounce reported
by the inbound side marks the outgoing mail `bounced` and suppresses the failed recipients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.live import announce
from helpdesk.models import OutboundEmail, SuppressedAddress

MAX_REASON = 1000


@dataclass(frozen=True)
class Suppression:
    """What the operator is told about a suppressed recipient (plain data, no ORM row)."""

    address: str
    reason: str
    since: datetime


class RecipientsSuppressed(Conflict):
    """A reply would go to suppressed addresses; the operator has to confirm or lift them."""

    def __init__(self, suppressed: Sequence[SuppressedAddress]) -> None:
        addresses = ", ".join(s.address for s in suppressed)
        super().__init__(
            f'Mail to {addresses} bounced permanently. Send anyway with "force": true, '
            "or lift the suppression (DELETE /api/v1/suppressions/{address})."
        )
        # Copied now: the session is rolled back before the error becomes a response.
        self.suppressed = [Suppression(s.address, s.reason, s.created_at) for s in suppressed]


def address_key(address: str) -> str:
    """The form addresses are kept and compared in: trimmed and lower-cased."""
    return address.strip().lower()


async def suppress_address(
    session: AsyncSession,
    address: str,
    reason: str,
    source_id: int | None = None,
    *,
    now: datetime,
) -> SuppressedAddress:
    """Put an address on the list; already listed, it keeps its first reason.

    Insert-or-ignore, so two bounces for the same address processed at once never fail
    on the unique key.
    """
    key = address_key(address)
    values = {
        "address": key,
        "reason": " ".join(reason.split())[:MAX_REASON] or "hard bounce",
        "created_at": now,
        "outbound_email_id": source_id,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(SuppressedAddress)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["address"])
    )
    row = await find_suppression(session, key)
    assert row is not None
    return row


async def find_suppression(session: AsyncSession, address: str) -> SuppressedAddress | None:
    """The list entry of this address, if it is suppressed."""
    query = select(SuppressedAddress).where(col(SuppressedAddress.address) == address_key(address))
    return await session.scalar(query)


async def is_suppressed(session: AsyncSession, address: str) -> bool:
    """True when no automatic mail may go to this address."""
    return await find_suppression(session, address) is not None


async def suppressed_among(
    session: AsyncSession, addresses: Iterable[str]
) -> list[SuppressedAddress]:
    """The list entries of those of `addresses` that are suppressed, in address order."""
    keys = sorted({address_key(a) for a in addresses})
    if not keys:
        return []
    query = select(SuppressedAddress).where(col(SuppressedAddress.address).in_(keys))
    return list(await session.scalars(query.order_by(col(SuppressedAddress.address))))


async def lift_suppression(session: AsyncSession, address: str, *, actor: str) -> bool:
    """Take an address off the list (audited without the address); False if it was not on it."""
    row = await find_suppression(session, address)
    if row is None:
        return False
    await session.execute(delete(SuppressedAddress).where(col(SuppressedAddress.id) == row.id))
    await record_event(
        session,
        actor,
        "suppression.lifted",
        f"suppression:{row.id}",
        outbound_email=row.outbound_email_id,
    )
    return True


async def record_hard_bounce(
    session: AsyncSession,
    outbound_email: OutboundEmail,
    diagnostic: str,
    now: datetime,
    failed_recipients: Sequence[str] | None = None,
) -> list[SuppressedAddress]:
    """A permanent failure: the mail becomes `bounced` with the reason, recipients suppressed.

    `failed_recipients` are the addresses the bounce names; only those of this mail's
    recipients are suppressed (a Cc that bounced must not silence the requester). When
    the bounce names none of them, every recipient is suppressed.
    """
    reason = " ".join(diagnostic.split())[:MAX_REASON] or "bounced"
    outbound_email.status = "bounced"
    outbound_email.last_reply = reason
    outbound_email.updated_at = now
    if outbound_email.ticket_id is not None:  # an open ticket page shows "Bounced" live
        announce(session, f"ticket:{outbound_email.ticket_id}", {"type": "delivery"})
    recipients = [address_key(r) for r in outbound_email.recipients]
    failed = {address_key(r) for r in failed_recipients or ()}
    targets = [r for r in recipients if r in failed] or recipients
    suppressed = [
        await suppress_address(session, r, reason, outbound_email.id, now=now) for r in targets
    ]
    await record_event(
        session,
        "system",
        "outbound.bounced",
        f"outbound_email:{outbound_email.id}",
        suppressed=len(suppressed),
    )
    return suppressed
