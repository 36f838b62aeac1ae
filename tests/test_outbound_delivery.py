"""Delivering the outbox to a real aiosmtpd: sent, retried, failed, never doubled by racing workers.

Every test runs on SQLite and PostgreSQL (the `runtime` fixture). Time is passed in
explicitly, so back-off and lease expiry are checked without sleeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio
from msgspec.structs import replace
from sqlalchemy import create_engine, select
from sqlmodel import SQLModel, col

from helpdesk.adapters.clock import utcnow
from helpdesk.adapters.smtp import (
    FileTransport,
    InMemoryTransport,
    SmtpTransport,
    TemporaryDeliveryError,
    build_transport,
)
from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.broker import build_broker
from helpdesk.config import Settings
from helpdesk.db import transaction
from helpdesk.models import OutboundEmail
from helpdesk.models.outbound import DeliveryAttempt
from helpdesk.outbound.delivery import (
    GIVE_UP_AFTER,
    claim_due,
    deliver_all_due,
    deliver_due,
    retry_delay,
)
from helpdesk.outbound.tasks import deliver_outbox, kick_delivery

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.smtp import Certificate, SmtpPeer

pytest_plugins = ["tests.peers.smtp"]

REQUESTER = "kari.nordmann@example.no"
CC = "ola.hansen@example.no"


def reply_bytes(message_id: str, to: str = REQUESTER, cc: str | None = None) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Kurs support <support@kurs.example>"
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = "Re: Når får jeg kursbeviset? [#1042]"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content("Hei!\n\nKursbeviset for HMS-kurset ligger nå på Min side.\n")
    return message.as_bytes()


async def queue_mail(
    runtime: Runtime,
    now: datetime,
    *,
    number: int = 1,
    recipients: tuple[str, ...] = (REQUESTER,),
    created_at: datetime | None = None,
    **fields: Any,
) -> OutboundEmail:
    """An outbox row as the reply service writes it: complete bytes, fixed Message-ID."""
    message_id = f"reply-{number}.sig@kurs.example"
    row = OutboundEmail(
        recipients=list(recipients),
        rfc_message_id=message_id,
        raw=reply_bytes(message_id, recipients[0], ", ".join(recipients[1:]) or None),
        next_attempt_at=now,
        created_at=created_at or now,
        **fields,
    )
    async with transaction(runtime.sessions) as session:
        session.add(row)
    return row


async def reload(runtime: Runtime, row: OutboundEmail) -> OutboundEmail:
    async with runtime.sessions() as session:
        found = await session.get(OutboundEmail, row.id)
        assert found is not None
        return found


async def delivery_log(runtime: Runtime, row: OutboundEmail) -> list[tuple[int, str, str]]:
    async with runtime.sessions() as session:
        attempts = await session.execute(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.outbound_email_id) == row.id)
            .order_by(col(DeliveryAttempt.id))
        )
        return [(a.attempt, a.recipient, a.status) for a in attempts.scalars()]


def close_to(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs(actual - expected) < timedelta(seconds=5)


@pytest.fixture
async def relay(smtp_peer: SmtpPeer, smtp_certificate: Certificate) -> AsyncIterator[SmtpTransport]:
    """The SMTP transport to the STARTTLS+AUTH peer, trusting the test's certificate."""
    transport = SmtpTransport(smtp_peer.settings(), tls_context=smtp_certificate.client_context())
    yield transport
    await transport.close()


async def test_queued_reply_reaches_the_relay_byte_identical(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    now = utcnow()
    row = await queue_mail(runtime, now, recipients=(REQUESTER, CC))

    report = await deliver_due(runtime, relay, now)

    [received] = smtp_peer.received
    assert received.content == row.raw
    assert received.mail_from == "support@kurs.example"  # bounces come back to support
    assert received.rcpt_tos == (REQUESTER, CC)
    assert received.user == smtp_peer.settings().username
    sent = await reload(runtime, row)
    assert (sent.status, sent.attempts, sent.claimed_until) == ("sent", 1, None)
    assert close_to(sent.sent_at, now)
    assert sent.last_reply == "250 2.0.0 Ok: queued as 1"
    assert report.sent == 1 and report.claimed == 1
    assert await delivery_log(runtime, row) == [(1, REQUESTER, "accepted"), (1, CC, "accepted")]


async def test_relay_down_means_retrying_in_a_minute_and_sent_when_it_returns(
    runtime: Runtime, smtp_peer_factory: Callable[..., SmtpPeer], smtp_certificate: Certificate
) -> None:
    peer = smtp_peer_factory(start=False)
    transport = SmtpTransport(peer.settings(), tls_context=smtp_certificate.client_context())
    now = utcnow()
    rows = [await queue_mail(runtime, now, number=n) for n in (1, 2)]

    down = await deliver_due(runtime, transport, now)
    for row in rows:
        waiting = await reload(runtime, row)
        assert (waiting.status, waiting.attempts) == ("retrying", 1)
        assert close_to(waiting.next_attempt_at, now + timedelta(minutes=1))
        assert waiting.last_reply and f"127.0.0.1:{peer.port}" in waiting.last_reply
        assert waiting.raw == row.raw  # nothing lost
    assert down.retrying == 2
    assert (await deliver_due(runtime, transport, now + timedelta(seconds=30))).claimed == 0

    peer.start()
    back = await deliver_due(runtime, transport, now + timedelta(seconds=61))
    await transport.close()

    assert back.sent == 2
    assert sorted(m.content for m in peer.received) == sorted(r.raw for r in rows if r.raw)
    assert [(await reload(runtime, r)).status for r in rows] == ["sent", "sent"]
    assert await delivery_log(runtime, rows[0]) == [
        (1, REQUESTER, "deferred"),
        (2, REQUESTER, "accepted"),
    ]


async def test_550_on_rcpt_fails_at_once_with_the_servers_reply(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    smtp_peer.rcpt_replies[REQUESTER] = "550 5.1.1 <kari.nordmann@example.no>: no such user"
    now = utcnow()
    row = await queue_mail(runtime, now)

    report = await deliver_due(runtime, relay, now)

    failed = await reload(runtime, row)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_reply == "550 5.1.1 <kari.nordmann@example.no>: no such user"
    assert report.failed == 1
    assert smtp_peer.received == []
    assert (await deliver_due(runtime, relay, now + timedelta(hours=1))).claimed == 0


async def test_451_on_rcpt_retries(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    smtp_peer.rcpt_replies[REQUESTER] = "451 4.7.1 greylisted, come back later"
    now = utcnow()
    row = await queue_mail(runtime, now)

    await deliver_due(runtime, relay, now)

    waiting = await reload(runtime, row)
    assert waiting.status == "retrying"
    assert waiting.last_reply == "451 4.7.1 greylisted, come back later"
    assert close_to(waiting.next_attempt_at, now + timedelta(minutes=1))


async def test_retry_goes_only_to_the_recipient_that_was_deferred(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    smtp_peer.rcpt_replies[CC] = "452 4.2.2 mailbox full"
    now = utcnow()
    row = await queue_mail(runtime, now, recipients=(REQUESTER, CC))

    await deliver_due(runtime, relay, now)
    assert (await reload(runtime, row)).status == "retrying"
    del smtp_peer.rcpt_replies[CC]
    await deliver_due(runtime, relay, now + timedelta(minutes=2))

    assert [m.rcpt_tos for m in smtp_peer.received] == [(REQUESTER,), (CC,)]
    assert (await reload(runtime, row)).status == "sent"
    assert await delivery_log(runtime, row) == [
        (1, REQUESTER, "accepted"),
        (1, CC, "deferred"),
        (2, CC, "accepted"),
    ]


async def test_racing_claims_never_share_a_row(runtime: Runtime) -> None:
    now = utcnow()
    for number in range(40):
        await queue_mail(runtime, now, number=number)
    workers = [runtime, *(build_runtime(runtime.settings) for _ in range(3))]
    for worker in workers:  # connected before the race starts
        async with worker.engine.connect():
            pass

    async def claim_until_empty(worker: Runtime) -> list[int]:
        mine: list[int] = []
        while batch := await claim_due(worker, now, batch=3):
            mine += [claim.id for claim in batch]
        return mine

    try:
        claimed = await asyncio.gather(*(claim_until_empty(w) for w in workers))
    finally:
        for worker in workers[1:]:
            await worker.close()

    ids = [row_id for mine in claimed for row_id in mine]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 40


async def test_two_workers_racing_deliver_each_message_exactly_once(
    runtime: Runtime, smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    now = utcnow() - timedelta(seconds=1)
    rows = [await queue_mail(runtime, now, number=n) for n in range(24)]
    second = build_runtime(runtime.settings)
    transports = [
        SmtpTransport(smtp_peer.settings(), tls_context=smtp_certificate.client_context())
        for _ in range(2)
    ]
    try:
        reports = await asyncio.gather(
            deliver_all_due(runtime, transports[0], batch=4),
            deliver_all_due(second, transports[1], batch=4),
        )
    finally:
        for transport in transports:
            await transport.close()
        await second.close()

    delivered = [m.content for m in smtp_peer.received]
    assert sorted(delivered) == sorted(r.raw for r in rows if r.raw)
    assert sum(r.sent for r in reports) == 24
    assert {(await reload(runtime, r)).status for r in rows} == {"sent"}


async def test_a_crashed_workers_lease_expires_and_the_resend_keeps_the_message_id(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    now = utcnow()
    row = await queue_mail(runtime, now)
    assert row.raw is not None
    # The first worker claims the row, the relay accepts the mail, then the worker dies
    # before it can mark the row as sent.
    [claim] = await claim_due(runtime, now)
    await relay.send("support@kurs.example", [REQUESTER], row.raw)

    assert (await deliver_due(runtime, relay, now + timedelta(minutes=1))).claimed == 0
    report = await deliver_due(runtime, relay, claim.lease_until + timedelta(seconds=1))

    assert report.sent == 1
    first, second = smtp_peer.received
    assert first.content == second.content == row.raw
    assert email.message_from_bytes(second.content)["Message-ID"] == f"<{row.rfc_message_id}>"
    assert (await reload(runtime, row)).status == "sent"


async def test_a_worker_that_lost_its_lease_cannot_overwrite_the_new_owner(
    runtime: Runtime,
) -> None:
    now = utcnow()
    row = await queue_mail(runtime, now)
    released = asyncio.Event()

    class StalledRelay(InMemoryTransport):
        """A relay that answers only after the lease has run out."""

        async def send(self, *args: Any) -> Any:
            await released.wait()
            return await super().send(*args)

    stalled = StalledRelay()
    slow = asyncio.create_task(deliver_due(runtime, stalled, now))
    for _ in range(100):
        if (await reload(runtime, row)).claimed_until is not None:
            break
        await asyncio.sleep(0.01)
    takeover = await deliver_due(runtime, InMemoryTransport(), now + timedelta(minutes=11))
    released.set()
    late = await slow

    assert (takeover.sent, late.lost_lease, late.sent) == (1, 1, 0)
    final = await reload(runtime, row)
    assert (final.status, final.attempts) == ("sent", 1)
    assert await delivery_log(runtime, row) == [(1, REQUESTER, "accepted")]


async def test_a_refused_cc_does_not_stop_the_reply_to_the_requester(
    runtime: Runtime, smtp_peer: SmtpPeer, relay: SmtpTransport
) -> None:
    smtp_peer.rcpt_replies[CC] = "550 5.1.1 no such user"
    now = utcnow()
    row = await queue_mail(runtime, now, recipients=(REQUESTER, CC))

    await deliver_due(runtime, relay, now)

    sent = await reload(runtime, row)
    assert sent.status == "sent"
    assert sent.last_reply == f"{CC}: 550 5.1.1 no such user"
    assert [m.rcpt_tos for m in smtp_peer.received] == [(REQUESTER,)]
    assert await delivery_log(runtime, row) == [(1, REQUESTER, "accepted"), (1, CC, "rejected")]


async def test_gives_up_after_four_days_of_temporary_failures(runtime: Runtime) -> None:
    now = utcnow()
    relay = InMemoryTransport()
    old = await queue_mail(
        runtime,
        now,
        number=1,
        created_at=now - GIVE_UP_AFTER - timedelta(minutes=1),
        status="retrying",
        attempts=40,
    )
    young = await queue_mail(
        runtime, now, number=2, created_at=now - timedelta(days=3), status="retrying", attempts=30
    )
    relay.failures += [TemporaryDeliveryError("421 4.3.2 service shutting down")] * 2

    await deliver_due(runtime, relay, now)

    given_up = await reload(runtime, old)
    assert given_up.status == "failed"
    assert given_up.last_reply == "gave up after 4 days: 421 4.3.2 service shutting down"
    still = await reload(runtime, young)
    assert still.status == "retrying"
    assert close_to(still.next_attempt_at, now + timedelta(hours=1))


def test_back_off_is_one_five_fifteen_minutes_then_hourly() -> None:
    assert [retry_delay(n) for n in range(1, 7)] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


async def test_last_retry_is_not_scheduled_past_the_four_day_deadline(runtime: Runtime) -> None:
    now = utcnow()
    created = now - GIVE_UP_AFTER + timedelta(minutes=10)
    row = await queue_mail(runtime, now, created_at=created, status="retrying", attempts=20)
    relay = InMemoryTransport()
    relay.failures.append(TemporaryDeliveryError("451 4.3.0 try later"))

    await deliver_due(runtime, relay, now)

    assert close_to((await reload(runtime, row)).next_attempt_at, created + GIVE_UP_AFTER)


async def test_without_smtp_the_outbox_becomes_readable_eml_files(runtime: Runtime) -> None:
    now = utcnow()
    row = await queue_mail(runtime, now)
    transport = build_transport(runtime.settings)
    assert isinstance(transport, FileTransport)

    await deliver_due(runtime, transport, now)

    written = runtime.settings.data_dir / "outbox" / f"{row.rfc_message_id}.eml"
    assert written.read_bytes() == row.raw
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Re: Når får jeg kursbeviset? [#1042]"
    assert (await reload(runtime, row)).status == "sent"


async def test_kick_delivers_in_the_background_right_after_a_reply(runtime: Runtime) -> None:
    row = await queue_mail(runtime, utcnow() - timedelta(seconds=1))
    relay = InMemoryTransport()

    task = await kick_delivery(runtime, transport=relay)
    again = await kick_delivery(runtime, transport=relay)  # joins the run in progress
    assert task is not None and again is task
    await asyncio.wait_for(task, timeout=10)

    assert [m.raw for m in relay.sent] == [row.raw]
    assert (await reload(runtime, row)).status == "sent"


async def test_kick_with_redis_hands_delivery_to_a_worker(runtime: Runtime) -> None:
    redis_url = os.environ.get("HELPDESK_TEST_REDIS_URL", "").strip()
    if not redis_url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but HELPDESK_TEST_REDIS_URL is not set", pytrace=False)
        pytest.skip("HELPDESK_TEST_REDIS_URL not set")
    queue = f"helpdesk-test:{uuid.uuid4().hex}"
    settings = replace(runtime.settings, redis_url=redis_url)
    broker = build_broker(settings, runtime=runtime, queue_name=queue)
    try:
        assert await kick_delivery(runtime, broker) is None
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            entries: Any = await client.xrange(queue)
            await client.delete(queue)
    finally:
        await broker.shutdown()

    [(_, fields)] = entries
    assert b"outbound.deliver_outbox" in fields[b"data"]


async def test_deliver_outbox_task_runs_every_minute_and_delivers(runtime: Runtime) -> None:
    broker = build_broker(runtime.settings, runtime=runtime)
    task = broker.find_task("outbound.deliver_outbox")
    assert task is not None
    assert task.labels["schedule"] == [{"cron": "* * * * *", "schedule_id": "deliver-outbox"}]
    row = await queue_mail(runtime, utcnow() - timedelta(seconds=1))

    counts = await deliver_outbox(runtime)

    assert counts["sent"] == 1
    assert (runtime.settings.data_dir / "outbox" / f"{row.rfc_message_id}.eml").exists()


# The command line, as an operator or a container runs it (embedded SQLite only).


def _cli_environment(tmp_path: Path, peer: SmtpPeer, certificate: Certificate) -> dict[str, str]:
    smtp = peer.settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return env | {
        "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "HELPDESK_DATA_DIR": str(tmp_path / "var"),
        "HELPDESK_SUPPORT_ADDRESS": "support@kurs.example",
        "HELPDESK_SMTP_URL": f"smtp://{smtp.username}:{smtp.password}@127.0.0.1:{peer.port}",
        "SSL_CERT_FILE": str(certificate.cert_path),  # how an operator trusts a private CA
    }


async def _cli_runtime(tmp_path: Path) -> Runtime:
    """The same embedded database the command will use, with its schema made."""
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return build_runtime(Settings(database_url=database_url, data_dir=tmp_path / "var"))


async def _send_outbox(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "helpdesk",
        "send-outbox",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_send_outbox_once_delivers_and_reports(
    tmp_path: Path, smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    runtime = await _cli_runtime(tmp_path)
    row = await queue_mail(runtime, utcnow() - timedelta(seconds=1))
    await runtime.close()

    process = await _send_outbox(_cli_environment(tmp_path, smtp_peer, smtp_certificate), "--once")
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["sent"] == 1
    assert [m.content for m in smtp_peer.received] == [row.raw]
    assert REQUESTER.encode() not in stderr  # addresses are redacted in logs


async def test_send_outbox_keeps_delivering_until_sigterm(
    tmp_path: Path, smtp_peer: SmtpPeer, smtp_certificate: Certificate
) -> None:
    runtime = await _cli_runtime(tmp_path)
    process = await _send_outbox(_cli_environment(tmp_path, smtp_peer, smtp_certificate))
    try:
        row = await queue_mail(runtime, utcnow() - timedelta(seconds=1))
        for _ in range(200):  # the loop runs every 5 s; the row is due at once
            if smtp_peer.received:
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runtime.close()

    assert [m.content for m in smtp_peer.received] == [row.raw]
    assert process.returncode == 0, stderr.decode()
