"""Many processes, one system (issue 9): two `helpdesk serve --workers 2`, two workers, one
scheduler and one IMAP fetcher — compose.yaml's command lines, started natively — on a
PostgreSQL and a Redis of the test's own, with a real Dovecot mailbox and SMTP relay.

Proves: ticket numbers stay unique when tickets arrive everywhere at once; a live update
caused on one web process reaches a widget listening on another; each outgoing mail is
sent by exactly one of the two workers; retention runs never overlap; /metrics of a
multi-process server adds up its processes.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from tests.mail_factory import make_mail
from tests.production_set import ProcessSet
from tests.test_failures import count_each, wait_until_delivered

if TYPE_CHECKING:  # imported by pytest_plugins, which must be the first to import it
    from tests.peers.dovecot import DovecotAccount
    from tests.peers.private_services import PrivatePostgres, PrivateRedis
    from tests.peers.smtp import Certificate, SmtpPeer

pytest_plugins = ["tests.peers.dovecot", "tests.peers.private_services", "tests.peers.smtp"]

WIDGET_PER_WEB = 6
PIPED = 4
FETCHED = 8


def start_set(
    postgres: PrivatePostgres, redis: PrivateRedis, peer: SmtpPeer, certificate: Certificate,
    dovecot: DovecotAccount, directory: Path,
) -> tuple[ProcessSet, str, str, str]:
    smtp = peer.settings()
    processes = ProcessSet(
        database_url=postgres.url, redis_url=redis.url, directory=directory,
        extra_env={
            "HELPDESK_SMTP_URL": f"smtp://{smtp.username}:{smtp.password}@127.0.0.1:{peer.port}",
            "SSL_CERT_FILE": str(certificate.cert_path),
            "HELPDESK_IMAP_URL": (f"imap://{dovecot.user}:{dovecot.password}@127.0.0.1:"
                                  f"{dovecot.port}/INBOX?tls=off"),
            "HELPDESK_ACKNOWLEDGEMENTS": "off",  # count only the operators' replies
        },
    )
    processes.run("migrate")
    token = processes.operator_token()
    web_a = processes.start_web("web-a")  # compose.yaml's command: two processes each
    web_b = processes.start_web("web-b")
    processes.start_service("worker", "worker-1")
    processes.start_service("worker", "worker-2")
    processes.start_service("scheduler")
    processes.start_service("mail-fetcher")
    return processes, token, web_a, web_b


def start_widget_conversation(base: str, k: int) -> dict[str, str]:
    response = httpx.post(f"{base}/api/v1/widget/conversations", timeout=30, json={
        "name": f"Elev {k}", "email": f"elev{k}@example.no",
        "message": f"Hei, jeg lurer på kurset (widget {k}).",
    })
    assert response.status_code == 201, response.text
    body = response.json()
    return {"conversation": body["conversation"]["id"], "token": body["token"]}


def all_tickets(base: str, token: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    with httpx.Client(base_url=base, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        while True:
            params = {"cursor": cursor} if cursor else {}
            page = http.get("/api/v1/tickets", params=params).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def wait_for_ticket_count(base: str, token: str, expected: int, timeout: float = 90) -> list:
    deadline = time.monotonic() + timeout
    while True:
        tickets = all_tickets(base, token)
        if len(tickets) >= expected or time.monotonic() > deadline:
            return tickets
        time.sleep(1)


def listen_for_reply(base: str, conversation: dict[str, str], heard: list[dict],
                     ready: threading.Event) -> None:
    """A widget client: reads the conversation's Server-Sent Events until an operator
    message arrives (or 60 s pass)."""
    url = f"{base}/api/v1/widget/conversations/{conversation['conversation']}/events"
    headers = {"Authorization": f"Bearer {conversation['token']}"}
    deadline = time.monotonic() + 60
    with httpx.stream("GET", url, headers=headers, timeout=70) as stream:
        ready.set()
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "message":
                message = json.loads(line.partition(":")[2])
                if message.get("direction") == "outbound":
                    heard.append(message)
                    return
            if time.monotonic() > deadline:
                return


def inbox_session(base: str) -> httpx.Client:
    """A browser signed in to the inbox of one web process (the CLI-made operator)."""
    browser = httpx.Client(base_url=base, timeout=30)
    form = browser.get("/inbox/login").text
    csrf = re.search(r'name="_csrf" value="([^"]*)"', form)
    assert csrf is not None
    signed_in = browser.post("/inbox/login", data={
        "_csrf": csrf.group(1), "email": "agent@kurs.example",
        "password": "correct horse battery staple"})
    assert signed_in.status_code == 303, signed_in.text
    return browser


def watch_queue_counts(browser: httpx.Client, counts: list[dict], ready: threading.Event,
                       enough: int) -> None:
    """The queue page's live stream: collects `counts` events until `enough` arrived."""
    with browser.stream("GET", "/inbox/events", params={"queue": "unassigned"},
                        timeout=70) as stream:
        ready.set()
        event = None
        deadline = time.monotonic() + 60
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "counts":
                counts.append(json.loads(line.partition(":")[2]))
                if len(counts) >= enough:
                    return
            if time.monotonic() > deadline:
                return


async def retention_runs(url: str) -> list[tuple[object, object]]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT started_at, finished_at FROM retention_runs ORDER BY started_at")
    finally:
        await connection.close()
    return [(row[0], row[1]) for row in rows]


SEND_RETENTION_TASKS = """
import asyncio, sys
from helpdesk.broker import build_broker
from helpdesk.config import load_settings
from helpdesk.retention.tasks import run_policy

async def main():
    broker = build_broker(load_settings())
    await broker.startup()
    for _ in range(int(sys.argv[1])):
        await run_policy.on(broker).kiq()
    await broker.shutdown()

asyncio.run(main())
"""


def test_two_web_processes_two_workers_a_scheduler_and_a_fetcher_work_as_one_system(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, smtp_peer: SmtpPeer,
    smtp_certificate: Certificate, dovecot: DovecotAccount, tmp_path: Path,
) -> None:
    processes, token, web_a, web_b = start_set(
        private_postgres, private_redis, smtp_peer, smtp_certificate, dovecot, tmp_path
    )
    try:
        # Tickets arrive everywhere at once: widget on both web processes, mail piped by
        # an MTA into `helpdesk ingest`, mail fetched by IMAP.
        def pipe(k: int) -> None:
            mail = make_mail(sender=f"Per {k} <per{k}@example.no>",
                             subject=f"Faktura {k}", message_id=f"<piped-{k}@example.no>")
            processes.run("ingest", stdin=mail)

        def fetch(k: int) -> None:
            dovecot.append(make_mail(sender=f"Kari {k} <kari{k}@example.no>",
                                     subject=f"Kursbevis {k}", message_id=f"<imap-{k}@example.no>"))

        with ThreadPoolExecutor(max_workers=12) as pool:
            widget_a = [pool.submit(start_widget_conversation, web_a, k)
                        for k in range(WIDGET_PER_WEB)]
            widget_b = [pool.submit(start_widget_conversation, web_b, 100 + k)
                        for k in range(WIDGET_PER_WEB)]
            piped = [pool.submit(pipe, k) for k in range(PIPED)]
            fetched = [pool.submit(fetch, k) for k in range(FETCHED)]
            conversations = [f.result() for f in widget_a + widget_b]
            for f in piped + fetched:
                f.result()
        expected = 2 * WIDGET_PER_WEB + PIPED + FETCHED
        tickets = wait_for_ticket_count(web_b, token, expected)
        numbers = [t["number"] for t in tickets]
        assert len(numbers) == expected, processes.log("mail-fetcher")[-2000:]
        assert len(set(numbers)) == expected  # unique, whoever created them

        # Live updates cross processes: the widget listens on web A, the operator
        # answers through web B.
        conversation = conversations[0]
        heard: list[dict] = []
        ready = threading.Event()
        listener = threading.Thread(target=listen_for_reply,
                                    args=(web_a, conversation, heard, ready))
        listener.start()
        assert ready.wait(30)
        time.sleep(0.5)
        widget_ticket = next(t for t in tickets if t["requester"] == "elev0@example.no")
        with httpx.Client(base_url=web_b, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            answered = http.post(f"/api/v1/tickets/{widget_ticket['number']}/replies",
                                 json={"body": "Hei! Kurset starter mandag."})
            assert answered.status_code == 201, answered.text
            sent_at = time.monotonic()
            listener.join(60)
            assert heard and "Kurset starter mandag" in json.dumps(heard[0])
            assert time.monotonic() - sent_at < 10

            # An operator's queue page on web A updates its counts live when a ticket is
            # created through web B (sooner than its 15 s heartbeat re-read).
            browser = inbox_session(web_a)
            counts: list[dict] = []
            watching = threading.Event()
            watcher = threading.Thread(target=watch_queue_counts,
                                       args=(browser, counts, watching, 2))
            watcher.start()
            assert watching.wait(30)
            time.sleep(1)
            created_at = time.monotonic()
            start_widget_conversation(web_b, 500)
            watcher.join(60)
            browser.close()
            assert len(counts) == 2, counts
            assert time.monotonic() - created_at < 10
            assert sum(counts[1].values()) > sum(counts[0].values()), counts

            # Each reply on an email ticket is sent by exactly one of the two workers.
            email_tickets = [t for t in tickets if t["channel"] == "email"]
            phrases = []
            for k, ticket in enumerate(email_tickets):
                base = web_a if k % 2 else web_b
                phrase = f"Svar {k} fra kundeservice."
                response = httpx.post(f"{base}/api/v1/tickets/{ticket['number']}/replies",
                                      json={"body": phrase}, timeout=30,
                                      headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 201, response.text
                phrases.append(phrase)
        bodies = wait_until_delivered(smtp_peer, phrases, timeout=120)
        assert count_each(bodies, phrases) == {phrase: 1 for phrase in phrases}

        # Retention runs sent to both workers at once never overlap.
        subprocess.run([sys.executable, "-c", SEND_RETENTION_TASKS, "4"],
                       env=processes.env(), check=True, timeout=60, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = asyncio.run(retention_runs(private_postgres.url))
            if runs and all(finished for _, finished in runs):
                time.sleep(2)  # let any queued duplicate arrive
                runs = asyncio.run(retention_runs(private_postgres.url))
                break
            time.sleep(0.5)
        assert runs, processes.log("worker-1")[-2000:]
        for (_, finished), (started, _) in zip(runs, runs[1:], strict=False):
            assert finished is not None and finished <= started, runs

        # /metrics of one server adds up both of its worker processes.
        for _ in range(20):
            httpx.get(f"{web_a}/healthz", timeout=10)
        metrics = httpx.get(f"{web_a}/metrics", timeout=30).text
        healthz = [line for line in metrics.splitlines()
                   if line.startswith("helpdesk_http_requests_total{") and '"/healthz"' in line]
        assert healthz and sum(float(line.rsplit(" ", 1)[1]) for line in healthz) >= 20
        for name in ("web-a", "web-b", "worker-1", "worker-2", "scheduler", "mail-fetcher"):
            assert "Traceback" not in processes.log(name), (name, processes.log(name)[-3000:])
    finally:
        processes.stop_all()
