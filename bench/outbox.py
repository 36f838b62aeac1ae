"""Outbox delivery throughput: messages/second to a loopback aiosmtpd, against a bare send loop.

The relay is the test suite's aiosmtpd peer (STARTTLS with a self-signed certificate,
AUTH PLAIN), run in a separate process as a real relay would be (in a thread of this
process it would compete with the sender for the GIL). Two measurements of the same N
messages in the same run:

- bare: one aiosmtplib connection, `sendmail` in a loop — the least any delivery costs;
- outbox: N queued `OutboundEmail` rows delivered by `deliver_all_due` (claim with a
  lease, send over one reused connection, record the outcome and the delivery log, one
  short transaction per message), with 1 and with 2 workers racing.

The ratio outbox/bare is what the outbox's bookkeeping costs on top of SMTP itself.

    .venv/bin/python bench/outbox.py                      # SQLite, 2,000 messages
    .venv/bin/python bench/outbox.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
    .venv/bin/python bench/outbox.py --write               # also update bench/RESULTS.md

Without --postgres, HELPDESK_BENCH_DATABASE_URL or HELPDESK_TEST_DATABASE_URL (a server
URL) adds the PostgreSQL variant.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import logging
import multiprocessing
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import func, select
from sqlmodel import SQLModel, col

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_db import drop_postgres, fresh_postgres  # noqa: E402  (bench/ is on sys.path)

import helpdesk.models  # noqa: E402,F401
from helpdesk.adapters.clock import utcnow  # noqa: E402
from helpdesk.adapters.smtp import SmtpTransport  # noqa: E402
from helpdesk.bootstrap import Runtime, build_runtime  # noqa: E402
from helpdesk.config import Settings  # noqa: E402
from helpdesk.models import OutboundEmail  # noqa: E402
from helpdesk.outbound.delivery import deliver_all_due  # noqa: E402
from tests.peers.smtp import (  # noqa: E402
    Certificate,
    SmtpPeer,
    free_port,
    make_self_signed_certificate,
)

SUPPORT = "support@kurs.example"
RESULTS = ROOT / "bench" / "RESULTS.md"


def build_messages(count: int) -> list[tuple[str, str, bytes]]:
    """(Message-ID, recipient, raw) of reply-sized Norwegian mail, ~2 KB each."""
    messages = []
    for number in range(count):
        message = EmailMessage(policy=email.policy.SMTP)
        recipient = f"elev{number % 400}@example.no"
        message_id = f"{uuid.uuid4().hex}.{number}@kurs.example"
        message["From"] = f"Kurs support <{SUPPORT}>"
        message["To"] = recipient
        message["Subject"] = f"Re: Kursbevis mangler [#{1000 + number}]"
        message["Message-ID"] = f"<{message_id}>"
        body = "Hei!\n\nKursbeviset ditt for HMS-kurset ligger nå på Min side. " * 12
        message.set_content(body + "\n\nHilsen støtte\n")
        messages.append((message_id, recipient, message.as_bytes()))
    return messages


async def run_bare(peer: SmtpPeer, messages: list[tuple[str, str, bytes]]) -> float:
    """One connection, sendmail in a loop: the floor."""
    smtp = peer.settings()
    client = aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        start_tls=True,
        tls_context=peer.certificate.client_context(),
    )
    started = time.perf_counter()
    await client.connect()
    for _, recipient, raw in messages:
        await client.sendmail(SUPPORT, [recipient], raw)
    await client.quit()
    return len(messages) / (time.perf_counter() - started)


async def queue_all(runtime: Runtime, messages: list[tuple[str, str, bytes]]) -> None:
    async with runtime.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    due = utcnow() - timedelta(seconds=1)
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            OutboundEmail(recipients=[r], rfc_message_id=m, raw=raw, next_attempt_at=due)
            for m, r, raw in messages
        )


async def run_outbox(
    url: str, data_dir: Path, peer: SmtpPeer, messages: list[tuple[str, str, bytes]], workers: int
) -> float:
    settings = Settings(
        database_url=url, data_dir=data_dir, secret_key="b" * 32, support_address=SUPPORT
    )
    runtimes = [build_runtime(settings) for _ in range(workers)]
    await queue_all(runtimes[0], messages)
    transports = [
        SmtpTransport(peer.settings(), tls_context=peer.certificate.client_context())
        for _ in runtimes
    ]
    started = time.perf_counter()
    reports = await asyncio.gather(
        *(deliver_all_due(r, t, batch=50) for r, t in zip(runtimes, transports, strict=True))
    )
    elapsed = time.perf_counter() - started
    for transport in transports:
        await transport.close()
    async with runtimes[0].sessions() as session:
        sent = await session.scalar(select(func.count()).where(col(OutboundEmail.status) == "sent"))
    for runtime in runtimes:
        await runtime.close()
    delivered = sum(r.sent for r in reports)
    if sent != len(messages) or delivered != len(messages):
        raise SystemExit(f"expected {len(messages)} sent, got {sent} rows / {delivered} reported")
    return len(messages) / elapsed


async def outbox_rate(
    server: str | None, peer: SmtpPeer, messages: list[tuple[str, str, bytes]], workers: int
) -> float:
    """One outbox run on a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        name = None
        if server is None:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'outbox.db'}"
        else:
            name, url = await fresh_postgres(server, "bench_outbox")
        try:
            return await run_outbox(url, Path(tmp) / "var", peer, messages, workers)
        finally:
            if server is not None and name is not None:
                await drop_postgres(server, name)


async def measure(
    label: str,
    server: str | None,
    peer: SmtpPeer,
    messages: list[tuple[str, str, bytes]],
    repeat: int,
) -> list[str]:
    """Median rates of `repeat` alternating bare/outbox runs, for 1 and 2 workers."""
    rows = []
    for workers in (1, 2):
        # Bare and outbox runs alternate: on a shared machine both drift with the load,
        # and adjacent runs see about the same load; medians damp the outliers.
        bare, outbox = [], []
        for _ in range(repeat):
            bare.append(await run_bare(peer, messages))
            outbox.append(await outbox_rate(server, peer, messages, workers))
        rate, floor = statistics.median(outbox), statistics.median(bare)
        ratio = statistics.median(o / b for o, b in zip(outbox, bare, strict=True))
        rows.append(
            f"| {label} | {workers} | {len(messages)} | {rate:.0f} | {floor:.0f} | {ratio:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def write_results(section: str) -> None:
    """Replace this benchmark's section of bench/RESULTS.md, leaving the others alone."""
    header = "# Benchmark results\n\nMeasured by the scripts in bench/; each owns one section.\n"
    current = RESULTS.read_text() if RESULTS.exists() else header
    pattern = re.compile(r"^## Outbox\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(updated)


def serve_relay(port: int, certificate: Certificate, ready: Any, stop: Any, received: Any) -> None:
    """The relay's process: run the peer until told to stop, then report what it got."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's AUTH deprecation noise
    peer = SmtpPeer(port=port, certificate=certificate)
    peer.start()
    ready.set()
    stop.wait()
    peer.stop()
    received.value = len(peer.received)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2_000)
    parser.add_argument("--postgres", help="server URL; runs the PostgreSQL variant too")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    server = (
        args.postgres
        or os.environ.get("HELPDESK_BENCH_DATABASE_URL")
        or os.environ.get("HELPDESK_TEST_DATABASE_URL")
    )
    load = os.getloadavg()[0]
    messages = build_messages(args.count)
    size = sum(len(raw) for _, _, raw in messages) / len(messages)
    with tempfile.TemporaryDirectory() as tmp:
        peer = SmtpPeer(port=free_port(), certificate=make_self_signed_certificate(Path(tmp)))
        context = multiprocessing.get_context("spawn")
        ready, stop, received = context.Event(), context.Event(), context.Value("i", 0)
        relay = context.Process(
            target=serve_relay, args=(peer.port, peer.certificate, ready, stop, received)
        )
        relay.start()
        try:
            if not ready.wait(30):
                raise SystemExit("the relay did not start")
            print(
                "| database | workers | messages | outbox msg/s | bare aiosmtplib msg/s | ratio |"
            )
            rows = asyncio.run(measure("SQLite", None, peer, messages, args.repeat))
            if server:
                rows += asyncio.run(measure("PostgreSQL", server, peer, messages, args.repeat))
        finally:
            stop.set()
            relay.join(30)
    # bare + outbox, with 1 and with 2 workers, `repeat` times, per database
    runs = 4 * args.repeat * (2 if server else 1)
    if received.value != runs * len(messages):
        raise SystemExit(f"relay received {received.value}, expected {runs * len(messages)}")
    section = (
        "## Outbox\n\n"
        f"`bench/outbox.py`: {args.count} queued replies (~{size / 1024:.1f} KB each, one "
        "recipient) delivered to aiosmtpd on loopback (STARTTLS, AUTH PLAIN; the relay runs "
        "in its own process) by `deliver_all_due` (batch 50, one reused SMTP "
        "connection per worker), against a bare aiosmtplib `sendmail` loop over one "
        f"connection; medians of {args.repeat} alternating runs of each (the ratio is the "
        "median of the paired runs' ratios). Machine: "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the start (the machine is "
        "shared, so absolute rates drift between runs; the ratio is the figure to "
        "compare).\n\n"
        "What the outbox adds per message: one fenced UPDATE of its row and one delivery-log "
        "INSERT, written beside the sending loop in group commits (SQLAlchemy Core over "
        "aiosqlite/asyncpg, all in the sender's single Python thread); per batch of 50 one "
        "claim transaction. Two workers share the machine's two cores with the relay.\n\n"
        "| database | workers | messages | outbox msg/s | bare aiosmtplib msg/s | ratio |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    if args.write:
        write_results(section)


if __name__ == "__main__":
    main()
