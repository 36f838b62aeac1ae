"""Writing queued acknowledgements in the outbox worker, under the row's lease.

Ingest leaves an acknowledgement as an unwritten outbox row (`raw` is null) in the
transaction that created the ticket, so it is never lost; its recipient and Message-ID
are fixed there, so it is never sent twice. The worker that holds the row's lease decides
on it — already acknowledged, suppressed, answered automatically within four hours —
with decisions about one address serialised (`lock_address`), then writes the mail and
records it on the ticket. A refused row is deleted: no mail, as if never queued.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime
from email.errors import MessageError

from sqlalchemy import update

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import OutboundEmail
from helpdesk.outbound.automatic import (
    DEFAULT_RESPONSE_HOURS,
    lock_address,
    write_acknowledgement,
)
from helpdesk.outbound.compose import ComposeError
from helpdesk.outbound.leases import OUTBOX, ClaimedEmail, claim_due, release_claims
from helpdesk.outbound.outbox import SUPPORT_NAME

log = logging.getLogger("helpdesk.outbound.acknowledgements")


def is_unwritten(claim: ClaimedEmail) -> bool:
    """A queued acknowledgement whose mail the worker has still to write."""
    return claim.raw is None and claim.kind == "acknowledgement"


async def write_claimed(
    runtime: Runtime,
    claims: Sequence[ClaimedEmail],
    now: datetime,
    *,
    response_hours: int = DEFAULT_RESPONSE_HOURS,
    brand: str = SUPPORT_NAME,
) -> list[ClaimedEmail]:
    """The claims ready to send: unwritten acknowledgements written, refused ones dropped."""
    ready: list[ClaimedEmail] = []
    for claim in claims:
        if not is_unwritten(claim):
            ready.append(claim)
            continue
        raw = await _write(runtime, claim, now, response_hours, brand)
        if raw is not None:
            ready.append(dataclasses.replace(claim, raw=raw))
    return ready


async def write_acknowledgements(
    runtime: Runtime,
    now: datetime | None = None,
    *,
    batch: int = 50,
    response_hours: int = DEFAULT_RESPONSE_HOURS,
    brand: str = SUPPORT_NAME,
) -> int:
    """Write every due acknowledgement without sending it; returns how many were written.

    Delivery (`deliver_due`) does this itself for the rows it claims; this is for the
    tests and benchmarks that look at the written mail before anything is sent.
    """
    at = now or runtime.clock.now()
    written = 0
    while True:
        claims = await claim_due(runtime, at, batch, unwritten_only=True)
        ready = await write_claimed(runtime, claims, at, response_hours=response_hours, brand=brand)
        written += len(ready)
        async with runtime.engine.connect() as connection:
            await release_claims(connection, ready)
        if len(claims) < batch:
            return written


async def _write(
    runtime: Runtime, claim: ClaimedEmail, now: datetime, response_hours: int, brand: str
) -> bytes | None:
    settings = runtime.settings
    try:
        async with transaction(runtime.sessions) as session:
            if claim.recipients:
                await lock_address(session, settings, claim.recipients[0])
            # Still ours and still unwritten? On SQLite this write also takes the lock.
            taken = await session.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.id == claim.id,
                    OUTBOX.c.claimed_until == claim.lease_until,
                    OUTBOX.c.raw.is_(None),
                )
                .values(updated_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await session.get(OutboundEmail, claim.id)
            assert row is not None, "the row was just updated"
            refusal = await write_acknowledgement(
                session, settings, row, now, response_hours=response_hours, brand=brand
            )
            if refusal is not None:
                log.info("acknowledgement %s not sent: %s", claim.id, refusal)
                await session.delete(row)
                return None
            return row.raw
    except (ComposeError, MessageError, ValueError) as exc:
        # Text the mail cannot be written from (hostile headers): never retried.
        log.warning("acknowledgement %s could not be written: %s", claim.id, exc)
        await _give_up(runtime, claim, now, f"could not be written: {type(exc).__name__}")
        return None


async def _give_up(runtime: Runtime, claim: ClaimedEmail, now: datetime, why: str) -> None:
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == claim.id, OUTBOX.c.claimed_until == claim.lease_until)
            .values(status="failed", last_reply=why, claimed_until=None, updated_at=now)
        )
