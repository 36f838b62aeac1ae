"""Inbound throughput: messages/second through `ingest_raw`, against a floor in the same run.

The corpus is generated: new tickets, replies with In-Reply-To/References, HTML mail,
attachments and a few malformed messages. The floor is the least any ingest must do —
parse with the stdlib and commit the raw bytes, one transaction per message — so the
ratio shows what threading, classification and filing cost on top. The ingest process's
own CPU time per message (all its threads; PostgreSQL is another process) gives its rate
per core.

Both run with the concurrency `helpdesk ingest` uses on that database (`--concurrency`
overrides it): on PostgreSQL a few unrelated messages in flight at once
(`helpdesk.inbound.bulk`), the floor with as many transactions in flight; on SQLite one
at a time.

Ingest only queues each acknowledgement (an unwritten outbox row); the outbox worker
writes them before delivery. That step is timed separately after the ingest run, so its
cost is reported rather than hidden.

    .venv/bin/python bench/ingest.py                       # SQLite, 10,000 messages
    .venv/bin/python bench/ingest.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import hashlib
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table
from sqlmodel import SQLModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mail_factory import make_mail  # noqa: E402
from scratch_db import drop_postgres, fresh_postgres  # noqa: E402  (bench/ is on sys.path)

import helpdesk.models  # noqa: E402,F401
from helpdesk.bootstrap import build_runtime  # noqa: E402
from helpdesk.config import Settings  # noqa: E402
from helpdesk.db import create_engine  # noqa: E402
from helpdesk.inbound.bulk import concurrency_for, ingest_many  # noqa: E402
from helpdesk.outbound.acknowledgements import write_acknowledgements  # noqa: E402

LEARNERS = [f"elev{i}@example.no" for i in range(4000)]
SUBJECTS = [
    "Kursbevis mangler",
    "Faktura til arbeidsgiver",
    "Får ikke logget inn",
    "Refund for cancelled date",
    "Spørsmål om prøveeksamen",
    "Endre navn på bevis",
]


def build_corpus(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    sent: list[tuple[str, str]] = []  # (message-id, sender)
    corpus: list[bytes] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.02:
            corpus.append(b"\x00garbage " + rng.randbytes(200))
            continue
        sender = rng.choice(LEARNERS)
        message_id = f"<{uuid.UUID(int=rng.getrandbits(128))}@mail.example.no>"
        kwargs: dict = {
            "sender": sender,
            "message_id": message_id,
            "subject": f"{rng.choice(SUBJECTS)} {i}",
            "body": "Hei!\n\n" + "Jeg lurer på noe om kurset mitt. " * rng.randint(2, 30),
        }
        if sent and roll < 0.45:
            parent, parent_sender = rng.choice(sent[-500:])
            kwargs.update(
                in_reply_to=parent,
                references=parent,
                sender=parent_sender,
                subject="Re: " + kwargs["subject"],
                body="Takk!\n\nOn Mon, Support wrote:\n> " + "tidligere svar " * 10,
            )
        if roll > 0.85:
            kwargs["html"] = "<p>Hei <b>support</b></p><p>" + "tekst " * 50 + "</p>"
        if roll > 0.93:
            kwargs["attachments"] = [
                ("kvittering.pdf", "application/pdf", rng.randbytes(30_000), None)
            ]
        corpus.append(make_mail(**kwargs))
        sent.append((message_id, kwargs["sender"]))
    return corpus


async def run_floor(url: str, corpus: list[bytes], concurrency: int) -> float:
    """Parse with the stdlib and insert the raw bytes, one commit per message.

    Through the application's own engine (`helpdesk.db.create_engine`: on SQLite WAL and
    synchronous=NORMAL, on PostgreSQL the same pool settings), so the floor does not pay
    for durability settings the application does not use, nor skip what it pays for.
    """
    engine = create_engine(url)
    metadata = MetaData()
    table = Table(
        "floor_raw",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("sha256", String(64)),
        Column("raw", LargeBinary),
    )
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    statement = table.insert()
    slots = asyncio.Semaphore(concurrency)

    async def one(raw: bytes) -> None:
        async with slots:
            email.message_from_bytes(raw, policy=email.policy.default)
            async with engine.begin() as connection:
                row = {"sha256": hashlib.sha256(raw).hexdigest(), "raw": raw}
                await connection.execute(statement, row)

    started = time.perf_counter()
    await asyncio.gather(*(one(raw) for raw in corpus))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return len(corpus) / elapsed


@dataclass
class IngestRun:
    rate: float  # messages/second through ingest_many (ingest_raw for each)
    cpu_per_message: float  # seconds of this process's CPU (all its threads) per message
    concurrency: int
    outcomes: dict[str, int]
    acknowledgements: int  # written by the outbox worker's step afterwards
    acknowledgement_rate: float


async def run_ingest(
    url: str, data_dir: Path, corpus: list[bytes], concurrency: int | None
) -> IngestRun:
    runtime = build_runtime(
        Settings(
            database_url=url,
            data_dir=data_dir,
            secret_key="b" * 32,
            support_address="support@kurs.example",
        )
    )
    async with runtime.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    outcomes: dict[str, int] = {}
    width = concurrency or concurrency_for(runtime)
    started, cpu_started = time.perf_counter(), time.process_time()
    async for result in ingest_many(runtime, ((raw, "bench") for raw in corpus), concurrency=width):
        outcomes[result.status] = outcomes.get(result.status, 0) + 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    written = await write_acknowledgements(runtime)
    writing = time.perf_counter() - started
    await runtime.close()
    return IngestRun(
        len(corpus) / elapsed,
        cpu / len(corpus),
        width,
        outcomes,
        written,
        written / writing if written else 0,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--postgres", help="server URL; runs the PostgreSQL variant too")
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL variant")
    parser.add_argument(
        "--concurrency", type=int, help="messages in flight (default: what helpdesk ingest uses)"
    )
    args = parser.parse_args()
    corpus = build_corpus(args.count)
    print(f"corpus: {len(corpus)} messages, {sum(map(len, corpus)) / 1e6:.1f} MB")
    targets = [] if args.no_sqlite else [("SQLite", None)]
    targets += [("PostgreSQL", args.postgres)] if args.postgres else []
    for label, server in targets:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if server is None:
                floor_url = f"sqlite+aiosqlite:///{root / 'floor.db'}"
                ingest_url = f"sqlite+aiosqlite:///{root / 'ingest.db'}"
                names: list[str] = []
            else:
                floor_name, floor_url = await fresh_postgres(server, "bench_ingest")
                ingest_name, ingest_url = await fresh_postgres(server, "bench_ingest")
                names = [floor_name, ingest_name]
            try:
                load_before = os.getloadavg()[0]
                run = await run_ingest(ingest_url, root / "var", corpus, args.concurrency)
                floor = await run_floor(floor_url, corpus, run.concurrency)
                load_after = os.getloadavg()[0]
            finally:
                for name in names:
                    await drop_postgres(server, name)  # type: ignore[arg-type]
        print(
            f"{label}, {run.concurrency} in flight: "
            f"ingest {run.rate:.0f} msg/s, floor {floor:.0f} msg/s, "
            f"ratio {run.rate / floor:.2f}; the ingest process's CPU "
            f"{run.cpu_per_message * 1000:.1f} ms per message "
            f"({1 / run.cpu_per_message:.0f} msg/s per core); "
            f"outcomes {dict(sorted(run.outcomes.items()))}; "
            f"then {run.acknowledgements} acknowledgements written by the outbox worker's "
            f"step at {run.acknowledgement_rate:.0f}/s; "
            f"load average {load_before:.1f} -> {load_after:.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
