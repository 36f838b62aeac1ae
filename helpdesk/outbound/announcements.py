"""Telling open ticket pages that a reply's delivery status changed (queued → sent, …).

Delivery writes its outcomes with Core statements on a connection, not through a session,
so it cannot use `helpdesk.live.announce`; the outcome writer looks up the tickets inside
its transaction and publishes after the commit. Only outbox rows that carry a message
shown on a ticket page count (not acknowledgements or notifications).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from helpdesk.adapters.pubsub import PubSub
from helpdesk.outbound.leases import OUTBOX


async def tickets_of_replies(
    connection: AsyncConnection, outbound_ids: Collection[int]
) -> list[int]:
    """The tickets whose replies are among these outbox rows."""
    if not outbound_ids:
        return []
    rows = await connection.execute(
        select(OUTBOX.c.ticket_id)
        .where(
            OUTBOX.c.id.in_(outbound_ids),
            OUTBOX.c.message_id.is_not(None),
            OUTBOX.c.ticket_id.is_not(None),
        )
        .distinct()
    )
    return [int(ticket_id) for (ticket_id,) in rows]


async def announce_delivery(pubsub: PubSub, ticket_ids: Collection[int]) -> None:
    """Nudge each ticket's channel: open pages re-read their replies' delivery status."""
    for ticket_id in ticket_ids:
        await pubsub.publish(f"ticket:{ticket_id}", {"type": "delivery"})
