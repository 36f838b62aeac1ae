"""`ingest_raw`: one received message in, exactly one recorded outcome out.

Zulip-style two phases: a cheap check (size) before parsing, then the authoritative
decision on the raw bytes inside one database transaction. The raw bytes are committed
with the ticket and message: in the message's `InboundMail` row, or for a large message in
a file written first that the row points at (helpdesk/inbound/raw_mail.py). So a crash
anywhere before the commit means the message is simply ingested again on the next try,
and after it, recognised as a duplicate.

Two kinds of failure, as in Zulip's gateway: the sender's (malformed, oversized, hostile
mail — quarantined for an operator, never an exception) and ours (database or storage
unavailable — `IngestUnavailable`, which the MTA pipe turns into EX_TEMPFAIL and the IMAP
fetcher into a retry, without marking the message processed).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import StoredFile, content_address
from helpdesk.bootstrap import Runtime
from helpdesk.db import execute_core, is_service_unavailable, transaction
from helpdesk.inbound import filing
from helpdesk.inbound.linking import any_order_named, order_candidates
from helpdesk.inbound.outcome import IngestResult, IngestUnavailable
from helpdesk.inbound.parse import ParsedMessage, parse_message
from helpdesk.inbound.raw_mail import kept_in_row
from helpdesk.inbound.rules import RATE_LIMIT_WINDOW, RuleContext, classify
from helpdesk.inbound.threading import (
    ThreadingContext,
    ThreadingInput,
    closest_stored_ticket,
    find_thread,
    referenced_ids,
    stored_ticket_params,
)
from helpdesk.inbound.trust import sender_verified
from helpdesk.metrics import INBOUND_MESSAGES
from helpdesk.models import InboundMail, Learner, Ticket
from helpdesk.models.rows import defer_inserts

log = logging.getLogger("helpdesk.inbound")


async def ingest_raw(
    runtime: Runtime,
    raw: bytes,
    source: str,
    *,
    max_message_bytes: int | None = None,
) -> IngestResult:
    """Store, parse, classify, thread and file one message; see the module docstring."""
    result = await _ingest(runtime, raw, source, max_message_bytes)
    INBOUND_MESSAGES.labels(result.status).inc()
    return result


async def _ingest(
    runtime: Runtime, raw: bytes, source: str, max_message_bytes: int | None
) -> IngestResult:
    address = content_address("raw", raw)
    limit = max_message_bytes or runtime.settings.max_message_bytes
    oversized = len(raw) > limit
    # An oversized message is kept whole but only its headers are read (bounded memory).
    parsed = parse_message(_headers_only(raw) if oversized else raw)
    # Mail that will be quarantined keeps its original as a file: it is attached to its
    # ticket for operators to download.
    in_row = kept_in_row(len(raw)) and not oversized and not parsed.unparseable
    # A file is written (and fsynced) in a thread while the message is looked up and
    # filed; the transaction waits for the write before it commits, so the file is on
    # disk before anything that points at it is.
    writing = (
        None
        if in_row
        else asyncio.ensure_future(asyncio.to_thread(runtime.storage.put, "raw", raw))
    )
    received = _Raw(address, raw if in_row else None, writing)
    try:
        return await _ingest_stored(runtime, parsed, received, source, limit if oversized else None)
    except IntegrityError:
        # A concurrent ingest of the same message committed first.
        await received.on_disk()
        return await _report_duplicate(runtime, parsed, address)
    except Exception as exc:
        if is_service_unavailable(exc):  # connection errors included
            raise IngestUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        if isinstance(exc, OSError):  # an attachment's file
            raise _storage_unavailable(exc) from exc
        raise


def _headers_only(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    return raw[: end if 0 <= end < 256 * 1024 else 256 * 1024] + b"\r\n\r\n"


@dataclass(frozen=True)
class _Raw:
    """A message's raw bytes on their way to being stored."""

    address: StoredFile  # digest and size; the path if they go to a file
    in_row: bytes | None  # the bytes, when they go into the InboundMail row
    writing: asyncio.Future[StoredFile] | None  # the file's write, otherwise

    async def on_disk(self) -> None:
        """Wait for the file's write; at once for bytes in a row."""
        if self.writing is None:
            return
        try:
            await self.writing
        except OSError as exc:
            raise _storage_unavailable(exc) from exc


def _storage_unavailable(exc: OSError) -> IngestUnavailable:
    return IngestUnavailable(f"storage unavailable: {exc.strerror or exc}")


async def _ingest_stored(
    runtime: Runtime,
    parsed: ParsedMessage,
    raw: _Raw,
    source: str,
    exceeded_limit: int | None,
) -> IngestResult:
    """Decide and file inside one transaction."""
    settings = runtime.settings
    now = runtime.clock.now()
    stored = raw.address
    # Without a Message-ID and sender, duplicates are found by the SHA-256 of the bytes.
    by_hash = None if parsed.message_id and parsed.from_address else stored
    decide = exceeded_limit is None and not parsed.unparseable
    if decide:
        verified, trust_reason = sender_verified(parsed.email, settings.authserv_id)
        wanted = _threading_input(parsed, verified)
    ids = referenced_ids(wanted) if decide else []
    orders = order_candidates(parsed) if decide else []
    async with transaction(runtime.sessions) as session:
        defer_inserts(session)  # audit events, the InboundMail row…: written at commit
        known = await _look_up(
            session, parsed, by_hash.sha256 if by_hash else None, now, ids, orders
        )
        if known.duplicate is not None:
            await raw.on_disk()
            return _duplicate_result(known.duplicate)
        if decide:
            machine = classify(
                parsed.email,
                RuleContext(
                    support_address=settings.support_address,
                    secret_key=settings.secret_key,
                    recent_from_sender=known.recent_from_sender,
                ),
            )
            threading = ThreadingContext(
                session,
                settings.secret_key,
                settings.support_address,
                stored_ticket=(known.stored_ticket,) if ids else None,
            )
            match = await find_thread(wanted, threading)
        # Its InboundMail row is written by the Filer once the outcome is known.
        received = filing.Received(
            stored=stored,
            raw=raw.in_row,
            source=source[:200],
            received_at=now,
            rfc_message_id=_cap(parsed.message_id, 998),
            sender=_cap(parsed.from_address, 320),
        )
        filer = filing.Filer(
            session,
            runtime,
            received,
            parsed,
            learner_id=known.learner_id,
            named_orders=orders if known.orders_named else [],
        )
        if exceeded_limit is not None:
            size = f"{stored.size / (1024 * 1024):.1f} MB"
            why = f"message is {size}, over the size limit"
            result = await filer.quarantine(why, exceeded_limit=exceeded_limit)
        elif parsed.unparseable:
            result = await filer.quarantine(parsed.unparseable_reason or "could not be parsed")
        elif machine is not None:
            result = await filer.file_machine_mail(machine, match)
        else:
            result = await filer.file_human_mail(match, threading.notes, verified, trust_reason)
        await raw.on_disk()  # a file is on disk before the commit, or nothing commits
        return result


def _threading_input(parsed: ParsedMessage, verified: bool) -> ThreadingInput:
    # In-Reply-To first, then References newest first: the closest ancestor wins.
    referenced = list(dict.fromkeys([*parsed.in_reply_to, *reversed(parsed.references)]))
    return ThreadingInput(
        sender=parsed.from_address,
        sender_verified=verified,
        referenced_ids=referenced,
        recipients=[*parsed.to, *parsed.cc, *_delivered_to(parsed)],
        subject=parsed.subject,
    )


def _delivered_to(parsed: ParsedMessage) -> list[str]:
    # Bcc'd or forwarded copies only show the reply address in Delivered-To / X-Original-To.
    # header_all never raises, unlike EmailMessage.get_all on hostile headers.
    values = [*parsed.header_all("Delivered-To"), *parsed.header_all("X-Original-To")]
    return [v.strip().strip("<>").lower() for v in values if "@" in v][:10]


@dataclass(frozen=True)
class _Known:
    """What the database knows about a message, read in one round trip."""

    duplicate: tuple[datetime, int | None] | None
    recent_from_sender: int
    learner_id: int | None
    # The ticket of the closest message it refers to that we have (threading rule 1).
    stored_ticket: int | None
    # Whether any order number candidate of the message is an order of ours.
    orders_named: bool


async def _look_up(
    session: AsyncSession,
    parsed: ParsedMessage,
    sha256: str | None,
    now: datetime,
    referenced: Sequence[str],
    order_numbers: Sequence[str],
) -> _Known:
    """The duplicate check, the sender's recent count and learner, the referenced ticket,
    whether the message names an order of ours.

    Each is a scalar subquery on its own index, asked in one SELECT: one statement instead
    of five is most of what they cost (each pays a round trip and SQLAlchemy's execution).
    """
    sender = parsed.from_address
    by_message_id = bool(parsed.message_id and parsed.from_address)
    params: dict[str, Any] = _duplicate_params(parsed, sha256)
    if sender:
        params.update(sender=sender, since=now - RATE_LIMIT_WINDOW, sender_key=sender.lower())
    params.update(stored_ticket_params(referenced))
    if order_numbers:
        params["order_numbers"] = list(order_numbers)
    statement = _look_up_statement(
        by_message_id, bool(sender), len(referenced), bool(order_numbers)
    )
    found = (await execute_core(session, statement, params)).one()._mapping
    return _Known(
        duplicate=(
            (found["received_at"], found["number"]) if found["received_at"] is not None else None
        ),
        recent_from_sender=int(found.get("recent") or 0),
        learner_id=found.get("learner"),
        stored_ticket=found.get("stored"),
        orders_named=bool(found.get("orders_named")),
    )


@functools.lru_cache(maxsize=512)
def _look_up_statement(
    by_message_id: bool, with_sender: bool, referenced: int, with_orders: bool
) -> Select[Any]:
    """`_look_up`'s SELECT, built once per shape (building costs more than running it)."""
    columns: dict[str, Any] = {
        "received_at": _duplicate_query(by_message_id, col(InboundMail.received_at)),
        "number": _duplicate_query(by_message_id, col(Ticket.number)),
    }
    if with_sender:
        columns["recent"] = (
            select(func.count())
            .select_from(InboundMail)
            .where(
                col(InboundMail.sender) == bindparam("sender"),
                col(InboundMail.received_at) > bindparam("since"),
            )
        )
        columns["learner"] = select(col(Learner.id)).where(
            col(Learner.email_key) == bindparam("sender_key")
        )
    stored = [closest_stored_ticket(referenced).label("stored")] if referenced else []
    orders = [any_order_named().label("orders_named")] if with_orders else []
    return select(
        *(query.scalar_subquery().label(name) for name, query in columns.items()),
        *stored,
        *orders,
    )


def _duplicate_query(by_message_id: bool, column: Any) -> Select[Any]:
    """DESIGN §7: same Message-ID from the same sender, else the same raw bytes."""
    query = (
        select(column)
        .select_from(InboundMail)
        .outerjoin(Ticket, col(Ticket.id) == col(InboundMail.ticket_id))
    )
    if by_message_id:
        query = query.where(
            col(InboundMail.sender) == bindparam("dup_sender"),
            col(InboundMail.rfc_message_id) == bindparam("dup_message_id"),
        )
    else:
        query = query.where(col(InboundMail.sha256) == bindparam("dup_sha256"))
    return query.order_by(col(InboundMail.id)).limit(1)


def _duplicate_params(parsed: ParsedMessage, sha256: str | None) -> dict[str, Any]:
    if parsed.message_id and parsed.from_address:
        return {
            "dup_sender": _cap(parsed.from_address, 320),
            "dup_message_id": _cap(parsed.message_id, 998),
        }
    return {"dup_sha256": sha256}


async def _find_duplicate(
    session: AsyncSession, parsed: ParsedMessage, sha256: str
) -> tuple[datetime, int | None] | None:
    """When the original of a duplicate arrived and its ticket number, or None."""
    by_message_id = bool(parsed.message_id and parsed.from_address)
    query = _duplicate_query(by_message_id, col(InboundMail.received_at))
    params = _duplicate_params(parsed, sha256)
    row = (await session.execute(query.add_columns(col(Ticket.number)), params)).first()
    return (row[0], row[1]) if row else None


def _duplicate_result(found: tuple[datetime, int | None]) -> IngestResult:
    received_at, number = found
    day = received_at.strftime("%Y-%m-%d %H:%M UTC")
    return IngestResult("duplicate", number, f"duplicate of a message received {day}")


async def _report_duplicate(
    runtime: Runtime, parsed: ParsedMessage, stored: StoredFile
) -> IngestResult:
    async with transaction(runtime.sessions) as session:
        found = await _find_duplicate(session, parsed, stored.sha256)
    if found is None:  # the unique violation was something else: let it surface
        raise IngestUnavailable("conflicting concurrent write; retry")
    return _duplicate_result(found)


def _cap(value: str | None, length: int) -> str | None:
    return value[:length] if value else value
