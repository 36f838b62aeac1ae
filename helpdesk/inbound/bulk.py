"""Ingesting many messages (`helpdesk ingest` with several files or an mbox): unrelated
messages concurrently, related ones one after the other, outcomes in input order.

One message's ingest spends a good part of its time waiting on database round trips;
with a few in flight, one message's wait is another's parse (bench/ingest.py). Two
messages are *related* when one may depend on the other's outcome: the same sender (the
duplicate check, the per-sender rate limit, subject tokens of that sender's tickets) or a
shared Message-ID (a reply and the message it answers, or a message and its duplicate).
A message starts only when nothing related is in flight and every message before it has
started, so related messages are ingested exactly as they would be one by one.

SQLite allows one writer at a time, so there messages go one by one.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable

from helpdesk.bootstrap import Runtime
from helpdesk.inbound.outcome import IngestResult
from helpdesk.inbound.pipeline import ingest_raw

# In flight at once on PostgreSQL: enough to overlap round trips with parsing; more only
# queues on the one Python thread (bench/ingest.py measured 2, 4 and 8).
POSTGRES_CONCURRENCY = 4

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")
_MESSAGE_ID = re.compile(rb"<([^<>\s]{1,998})>")
_ADDRESS = re.compile(rb"[^\s<>@,;:\"()\[\]]+@[^\s<>@,;:\"()\[\]]+")
_ID_FIELDS = (b"message-id", b"in-reply-to", b"references")
_HEAD_SCANNED = 256 * 1024


def concurrency_for(runtime: Runtime) -> int:
    """How many messages `ingest_many` keeps in flight on this runtime's database."""
    return 1 if runtime.engine.dialect.name == "sqlite" else POSTGRES_CONCURRENCY


def relation_keys(raw: bytes) -> frozenset[bytes]:
    """Keys two related messages share: the sender's address and every Message-ID named.

    Read from the raw header block without parsing it properly, so it errs towards
    relating messages: a key is only ever too broad (lower-cased Message-IDs, every
    address in From, one shared key for all mail without a readable sender).
    """
    end = _HEADER_END.search(raw, 0, _HEAD_SCANNED)
    head = _FOLD.sub(b" ", raw[: end.start() if end else _HEAD_SCANNED])
    keys: set[bytes] = set()
    sender_found = False
    for line in head.split(b"\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in _ID_FIELDS:
            keys.update(b"id:" + found.lower() for found in _MESSAGE_ID.findall(value))
        elif name == b"from":
            senders = _ADDRESS.findall(value)
            keys.update(b"from:" + address.lower() for address in senders)
            sender_found = sender_found or bool(senders)
    if not sender_found:
        keys.add(b"from:")
    return frozenset(keys)


async def ingest_many(
    runtime: Runtime, messages: Iterable[tuple[bytes, str]], *, concurrency: int
) -> AsyncIterator[IngestResult]:
    """Ingest (raw bytes, source) pairs; yields each outcome in input order.

    An exception (e.g. `IngestUnavailable`) is raised where that message's outcome would
    have been yielded; the messages after it that were in flight are cancelled, and like
    every message not reported they are simply ingested again (or found to be duplicates)
    on the next run.
    """
    started: deque[asyncio.Task[IngestResult]] = deque()
    in_flight: Counter[bytes] = Counter()
    finished = asyncio.Event()

    async def run(raw: bytes, source: str, keys: frozenset[bytes]) -> IngestResult:
        try:
            return await ingest_raw(runtime, raw, source)
        finally:
            for key in keys:  # forgotten at zero: an mbox of a million messages stays small
                in_flight[key] -= 1
                if not in_flight[key]:
                    del in_flight[key]
            finished.set()

    def running() -> int:
        return sum(not task.done() for task in started)

    try:
        for raw, source in messages:
            keys = relation_keys(raw) if concurrency > 1 else frozenset()
            while running() >= concurrency or any(key in in_flight for key in keys):
                finished.clear()
                await finished.wait()
                while started and started[0].done():
                    yield started.popleft().result()
            in_flight.update(keys)
            started.append(asyncio.create_task(run(raw, source, keys)))
            while started and started[0].done():
                yield started.popleft().result()
        while started:
            yield await started.popleft()
    finally:
        for task in started:
            task.cancel()
        if started:
            await asyncio.wait(started)
            for task in started:  # reported through the first failure, not again
                if not task.cancelled():
                    task.exception()
