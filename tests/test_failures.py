"""Failures in production (issue 9): PostgreSQL restarted under load, Redis restarted, a
worker killed mid-delivery. Each runs the real processes (tests/production_set.py) against
a PostgreSQL cluster and a Redis server of the test's own, so the machine's shared
services are never restarted, and a real SMTP relay (aiosmtpd) that counts what it got.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from tests.mail_factory import make_mail
from tests.production_set import ProcessSet

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.private_services import PrivatePostgres, PrivateRedis
    from tests.peers.smtp import Certificate, SmtpPeer

pytest_plugins = ["tests.peers.private_services", "tests.peers.smtp"]


def process_set(
    postgres: PrivatePostgres, redis: PrivateRedis, peer: SmtpPeer, certificate: Certificate,
    directory: Path,
) -> ProcessSet:
    smtp = peer.settings()
    return ProcessSet(
        database_url=postgres.url,
        redis_url=redis.url,
        directory=directory,
        extra_env={
            "HELPDESK_SMTP_URL": f"smtp://{smtp.username}:{smtp.password}@127.0.0.1:{peer.port}",
            "SSL_CERT_FILE": str(certificate.cert_path),  # how an operator trusts a private CA
            "HELPDESK_ACKNOWLEDGEMENTS": "off",  # count only the operators' replies
        },
    )


def open_ticket(processes: ProcessSet) -> int:
    mail = make_mail(message_id="<first@mail.example.no>", subject="Kursbevis mangler")
    outcome = json.loads(processes.run("ingest", stdin=mail).stdout)
    assert outcome["status"] == "created"
    return int(outcome["ticket"])


def delivered_bodies(peer: SmtpPeer) -> list[str]:
    bodies = []
    for mail in list(peer.received):
        parsed = message_from_bytes(mail.content, policy=policy.default)
        body = parsed.get_body(("plain",))
        text = body.get_content() if body is not None else ""  # type: ignore[union-attr]
        bodies.append(text.replace("\r\n", "\n"))
    return bodies


def wait_until_delivered(peer: SmtpPeer, phrases: list[str], timeout: float = 90) -> list[str]:
    """Every phrase in some delivered mail (or the timeout); returns the delivered bodies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bodies = delivered_bodies(peer)
        if all(count_each(bodies, phrases).values()):
            return bodies
        time.sleep(0.5)
    return delivered_bodies(peer)


def count_each(bodies: list[str], phrases: list[str]) -> dict[str, int]:
    """How many delivered mails carry each phrase as their reply (the quoted history of
    later replies repeats earlier ones, so only the text above the signature counts)."""
    replies = [body.split("\n-- \n", 1)[0].strip() for body in bodies]
    return {phrase: replies.count(phrase) for phrase in phrases}


async def inbound_counts(url: str, message_ids: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT rfc_message_id, count(*) FROM messages WHERE rfc_message_id = ANY($1)"
            " GROUP BY rfc_message_id", message_ids,
        )
    finally:
        await connection.close()
    found = {row[0]: row[1] for row in rows}
    return {message_id: found.get(message_id, 0) for message_id in message_ids}


def test_postgresql_restart_under_load_gives_clean_503s_recovers_and_loses_nothing(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, smtp_peer: SmtpPeer,
    smtp_certificate: Certificate, tmp_path: Path,
) -> None:
    processes = process_set(private_postgres, private_redis, smtp_peer, smtp_certificate, tmp_path)
    # A delivery run that PostgreSQL's restart cut short keeps its rows leased until the
    # lease ends (ten minutes by default); then the scheduled sweep sends them. A short
    # lease keeps this test short; the mechanism is the same.
    processes.extra_env["HELPDESK_OUTBOX_LEASE_SECONDS"] = "15"
    try:
        processes.run("migrate")
        token = processes.operator_token()
        number = open_ticket(processes)
        base = processes.start_web("web", workers=1)
        processes.start_service("worker")
        processes.start_service("scheduler")

        statuses: list[int] = []
        accepted: list[str] = []
        inbound_ids: list[str] = []
        ingest_exits: list[int] = []
        stop = threading.Event()
        refused_request, deferred_mail = threading.Event(), threading.Event()

        def restart_postgres() -> None:
            time.sleep(2)
            private_postgres.stop()
            # Down until both a request and a piped mail have met it (the machine may be
            # slow to start `helpdesk ingest`; a fixed sleep could miss the window).
            refused_request.wait(60)
            deferred_mail.wait(60)
            private_postgres.start()

        def pipe_mail_like_an_mta() -> None:
            # Postfix's pipe retries a message whose command exits 75 (EX_TEMPFAIL).
            k = 0
            while not stop.is_set():
                message_id = f"load-{k}@mail.example.no"
                mail = make_mail(message_id=f"<{message_id}>", subject=f"Ny henvendelse {k}")
                while True:
                    exit_code = processes.run("ingest", stdin=mail, check=False).returncode
                    ingest_exits.append(exit_code)
                    if exit_code == 75:
                        deferred_mail.set()
                    if exit_code != 75:
                        break
                    time.sleep(0.5)
                assert exit_code == 0
                inbound_ids.append(message_id)
                k += 1

        restarter = threading.Thread(target=restart_postgres)
        mta = threading.Thread(target=pipe_mail_like_an_mta)
        restarter.start()
        mta.start()
        with httpx.Client(base_url=base, timeout=15,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            k = 0
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline or restarter.is_alive():
                phrase = f"Load reply {k}."
                response = http.post(f"/api/v1/tickets/{number}/replies", json={"body": phrase})
                statuses.append(response.status_code)
                if response.status_code == 201:
                    accepted.append(phrase)
                else:
                    assert response.status_code == 503, processes.log("web")[-4000:]
                    refused_request.set()
                    assert response.json()["error"] == "unavailable"
                    assert response.headers["retry-after"]
                k += 1
                time.sleep(0.05)
            # Recovered: reads and writes work again.
            assert http.get(f"/api/v1/tickets/{number}").status_code == 200
        stop.set()
        restarter.join()
        mta.join()

        assert 503 in statuses, "the restart was not noticed: no request failed"
        assert statuses[-1] == 201
        assert 75 in ingest_exits, "no mail arrived while PostgreSQL was down"
        bodies = wait_until_delivered(smtp_peer, accepted, timeout=180)
        counts = count_each(bodies, accepted)
        missing = [phrase for phrase, n in counts.items() if n != 1]
        assert not missing, (missing, accepted, processes.log("worker")[-3000:])
        assert len(bodies) == len(accepted), "a reply that was refused with 503 went out"
        inbound = asyncio.run(inbound_counts(private_postgres.url, inbound_ids))
        assert inbound == {message_id: 1 for message_id in inbound_ids}
        assert "Traceback" not in processes.log("web")
    finally:
        processes.stop_all()


def widget_listener(base: str, heard: list[str], ready: threading.Event) -> dict[str, str]:
    """A learner's widget conversation and a thread reading its live events into `heard`."""
    started = httpx.post(f"{base}/api/v1/widget/conversations", timeout=30, json={
        "name": "Elev", "email": "elev@example.no", "message": "Hei, når starter kurset?"})
    assert started.status_code == 201, started.text
    conversation = {"id": started.json()["conversation"]["id"], "token": started.json()["token"]}

    def listen() -> None:
        url = f"{base}/api/v1/widget/conversations/{conversation['id']}/events"
        with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=None),
                          headers={"Authorization": f"Bearer {conversation['token']}"}) as stream:
            ready.set()
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    heard.append(json.loads(line[5:])["text"])
                    if len(heard) >= 3:  # the learner's own message and two replies
                        return

    threading.Thread(target=listen, daemon=True).start()
    return conversation


def test_redis_restart_loses_no_reply_and_live_updates_resume(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, smtp_peer: SmtpPeer,
    smtp_certificate: Certificate, tmp_path: Path,
) -> None:
    processes = process_set(private_postgres, private_redis, smtp_peer, smtp_certificate, tmp_path)
    try:
        processes.run("migrate")
        token = processes.operator_token()
        number = open_ticket(processes)
        base = processes.start_web("web", workers=1)
        processes.start_service("worker")
        processes.start_service("scheduler")
        heard: list[str] = []
        listening = threading.Event()
        widget_listener(base, heard, listening)
        assert listening.wait(30)
        widget_number = max(t["number"] for t in httpx.get(
            f"{base}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"},
            timeout=30).json()["items"])
        accepted = []
        with httpx.Client(base_url=base, timeout=15,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            for k in range(5):
                phrase = f"Before the restart {k}."
                assert http.post(f"/api/v1/tickets/{number}/replies",
                                 json={"body": phrase}).status_code == 201
                accepted.append(phrase)
            private_redis.stop()
            # While Redis is down, replies are still accepted: they are in the database's
            # outbox; only the immediate "deliver now" nudge and the live nudge are lost.
            for k in range(5):
                phrase = f"During the restart {k}."
                response = http.post(f"/api/v1/tickets/{number}/replies", json={"body": phrase})
                assert response.status_code == 201, response.text
                accepted.append(phrase)
            assert http.post(f"/api/v1/tickets/{widget_number}/replies",
                             json={"body": "Svar mens Redis var borte."}).status_code == 201
            time.sleep(2)
            private_redis.start()
            # The widget's stream resyncs when its process reconnects to Redis: the reply
            # written during the outage arrives without the learner doing anything.
            deadline = time.monotonic() + 30
            while "Svar mens Redis var borte." not in heard and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "Svar mens Redis var borte." in heard, heard
            for k in range(5):
                phrase = f"After the restart {k}."
                assert http.post(f"/api/v1/tickets/{number}/replies",
                                 json={"body": phrase}).status_code == 201
                accepted.append(phrase)
            sent = time.monotonic()
            assert http.post(f"/api/v1/tickets/{widget_number}/replies",
                             json={"body": "Svar etter at Redis kom tilbake."}).status_code == 201
            while "Svar etter at Redis kom tilbake." not in heard and time.monotonic() < sent + 10:
                time.sleep(0.1)
            # Live again, through Redis (the stream has no periodic re-read to fall back on).
            assert "Svar etter at Redis kom tilbake." in heard, heard
        bodies = wait_until_delivered(smtp_peer, accepted, timeout=150)
        counts = count_each(bodies, accepted)
        assert counts == {phrase: 1 for phrase in accepted}, (
            processes.log("worker")[-3000:], processes.log("scheduler")[-2000:]
        )
    finally:
        processes.stop_all()


def test_worker_killed_mid_delivery_neither_loses_nor_doubles_the_mail(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, smtp_peer: SmtpPeer,
    smtp_certificate: Certificate, tmp_path: Path,
) -> None:
    processes = process_set(private_postgres, private_redis, smtp_peer, smtp_certificate, tmp_path)
    processes.extra_env["HELPDESK_OUTBOX_LEASE_SECONDS"] = "5"
    stalled = threading.Event()
    release = threading.Event()
    smtp_peer.data_hook = lambda: (stalled.set(), release.wait(60))
    try:
        processes.run("migrate")
        token = processes.operator_token()
        number = open_ticket(processes)
        base = processes.start_web("web", workers=1)
        processes.start_service("worker", "worker-1")
        with httpx.Client(base_url=base, timeout=15,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            response = http.post(f"/api/v1/tickets/{number}/replies",
                                 json={"body": "The one and only reply."})
            assert response.status_code == 201
        assert stalled.wait(60), "the worker never reached DATA"
        processes.kill("worker-1", signal.SIGKILL)  # between DATA and the relay's answer
        smtp_peer.data_hook = None
        release.set()  # the relay never answered 250: the mail was not accepted
        processes.start_service("worker", "worker-2")
        processes.start_service("scheduler")  # its outbox sweep finds the orphaned row
        bodies = wait_until_delivered(smtp_peer, ["The one and only reply."], timeout=120)
        assert count_each(bodies, ["The one and only reply."]) == {"The one and only reply.": 1}
    finally:
        release.set()
        processes.stop_all()
