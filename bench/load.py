"""Load test (issue 9): a realistic mix against `helpdesk serve --workers 2` on PostgreSQL.

    .venv/bin/python bench/load.py [--rate 300] [--duration 30] [--sse 200]

What runs: a scratch PostgreSQL database on the machine's server, compose.yaml's `web`
command (two processes) and one `worker`, Redis for tasks and live updates, and a local
SMTP sink that accepts everything. Seeded with realistic tickets (piped mail) and widget
conversations. Then, for `--duration` seconds and all at once:

- HTTP with Debian's `wrk`, one wrk per kind of request so each gets its own latency
  distribution, each paced by a Lua `delay()` to its share of `--rate`:
  operator queue page, ticket page, ticket list API, replies, widget posts, widget reads;
- `--sse` widget clients holding Server-Sent Events streams open (asyncio, httpx);
- inbound mail piped with `helpdesk ingest --mbox` in batches, as an MTA would.

Prints throughput and p50/p95/p99 per endpoint; the goals are p95 < 100 ms and p99 <
250 ms at 300 requests/s. wrk and the SSE clients share the two cores with the server, so
the figures include that contention (say so when you record them in bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mailbox
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch_db import drop_postgres, fresh_postgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password-1"
OPERATOR = "load@kurs.example"

# (name, share of the rate, method) — the operator mix is read-heavy, as a day in the inbox is.
MIX = [
    ("inbox queue page", 0.25, "GET"),
    ("inbox ticket page", 0.20, "GET"),
    ("API ticket list", 0.10, "GET"),
    ("API reply", 0.10, "POST"),
    ("widget post", 0.20, "POST"),
    ("widget read", 0.15, "GET"),
]

LUA_COMMON = """
local counts = {non2xx = 0}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0 end
function delay() return %(delay_ms)d end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = (non2xx or 0) + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non2xx") or 0) end
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%f, "errors": %%d, "non2xx": %%d, '
    .. '"p50": %%f, "p95": %%f, "p99": %%f, "max": %%f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    bad, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """An SMTP server that accepts every message and counts it."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.count += 1
        return "250 OK"


def web_command(port: int) -> list[str]:
    command = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["web"]["command"]
    command = [str(part) for part in command]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


def generated_mail(count: int, directory: Path, start: int = 0) -> Path:
    """An mbox of learners' questions (Norwegian, with order numbers now and then)."""
    path = directory / f"mail-{start}.mbox"
    box = mailbox.mbox(str(path))
    subjects = ["Kursbevis mangler", "Faktura for HMS-kurs", "Får ikke logget inn",
                "Spørsmål om teoriprøven", "Bytte av kursdato", "Refusjon"]
    for k in range(start, start + count):
        body = (f"Hei!\n\n{random.choice(subjects)}: jeg trenger hjelp med ordre "
                f"{100000 + k}. Kan dere se på det?\n\nMvh\nElev {k}\n")
        raw = (f"From: Elev {k} <elev{k}@example.no>\nTo: support@kurs.example\n"
               f"Subject: {random.choice(subjects)} ({k})\nMessage-ID: <load-{k}@example.no>\n"
               f"Date: Sun, 22 Nov 2026 09:{k % 60:02d}:00 +0100\n"
               "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               f"{body}")
        box.add(mailbox.mboxMessage(raw.encode()))
    box.close()
    return path


@contextmanager
def services(args: argparse.Namespace, database_url: str, work: Path) -> Iterator[dict]:
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env |= {
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_REDIS_URL": args.redis_url,
        "HELPDESK_TASK_QUEUE": f"helpdesk-load:{os.getpid()}",
        "HELPDESK_SECRET_KEY": "load-test-secret-0123456789abcdef",
        "HELPDESK_DATA_DIR": str(work / "data"),
        "HELPDESK_SUPPORT_ADDRESS": "support@kurs.example",
        "HELPDESK_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?tls=off",
        "HELPDESK_LOG_FORMAT": "json",
        # The seeded tickets are history: acknowledging 2,000 of them would keep the
        # worker busy through the measured window.
        "HELPDESK_ACKNOWLEDGEMENTS": "off",
    }
    helpdesk = [sys.executable, "-m", "helpdesk"]
    subprocess.run([*helpdesk, "migrate"], env=env, check=True)
    subprocess.run([*helpdesk, "operator", "add", OPERATOR, "--name", "Load Agent", "--role",
                    "admin", "--password-stdin"], env=env, check=True,
                   input=f"{PASSWORD}\n".encode())
    token = subprocess.run([*helpdesk, "token", "create", OPERATOR], env=env, check=True,
                           capture_output=True).stdout.decode().strip()
    port = free_port()
    logs = open(work / "web.log", "wb")  # noqa: SIM115
    web = subprocess.Popen([*helpdesk, *web_command(port)], env=env, stdout=logs,
                           stderr=subprocess.STDOUT)
    worker = subprocess.Popen([*helpdesk, "worker"], env=env, stdout=logs,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield {"env": env, "base": base, "token": token, "sink": sink, "helpdesk": helpdesk}
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        controller.stop()


def seed(context: dict, work: Path, tickets: int, conversations: int) -> dict:
    """Tickets by piped mail, widget conversations, an inbox session; what wrk needs."""
    mbox = generated_mail(tickets, work)
    subprocess.run([*context["helpdesk"], "ingest", "--mbox", str(mbox)], env=context["env"],
                   check=True, stdout=subprocess.DEVNULL)
    base, auth = context["base"], {"Authorization": f"Bearer {context['token']}"}
    numbers: list[int] = []
    cursor = None
    while len(numbers) < tickets:
        page = httpx.get(f"{base}/api/v1/tickets", headers=auth, timeout=30,
                         params={"cursor": cursor} if cursor else {}).json()
        numbers += [item["number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    widgets = []
    for k in range(conversations):
        # Each conversation from its own client address (the proxy's X-Forwarded-For),
        # as real learners are: the widget's per-address limits stay out of the way.
        ip = f"10.{k // 250}.{k % 250}.7"
        response = httpx.post(f"{base}/api/v1/widget/conversations", timeout=30,
                              headers={"X-Forwarded-For": ip}, json={
                                  "name": f"Elev {k}", "email": f"widget{k}@example.no",
                                  "message": "Hei! Når starter neste kurs?"})
        response.raise_for_status()
        body = response.json()
        widgets.append({"id": body["conversation"]["id"], "token": body["token"], "ip": ip})
    with httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/inbox/login").text
        csrf = re.search(r'name="_csrf" value="([^"]*)"', form).group(1)  # type: ignore[union-attr]
        signed_in = browser.post("/inbox/login", data={"_csrf": csrf, "email": OPERATOR,
                                                       "password": PASSWORD})
        assert signed_in.status_code == 303, signed_in.text
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    return {"numbers": numbers, "widgets": widgets, "cookie": cookie}


def lua_list(values: list[str]) -> str:
    return "{" + ", ".join(json.dumps(value) for value in values) + "}"


def lua_script(kind: str, data: dict, token: str, delay_ms: int) -> str:
    numbers = lua_list([str(n) for n in data["numbers"]])
    widgets = "{" + ", ".join(
        "{" + f'id={json.dumps(w["id"])}, token={json.dumps(w["token"])}, ip={json.dumps(w["ip"])}'
        + "}" for w in data["widgets"]) + "}"
    requests = {
        "inbox queue page": f"""
local cookie = {json.dumps(data["cookie"])}
function request()
  return wrk.format("GET", "/inbox", {{Cookie = cookie}})
end""",
        "inbox ticket page": f"""
local cookie = {json.dumps(data["cookie"])}
local numbers = {numbers}
function request()
  n = n + 1
  return wrk.format("GET", "/inbox/tickets/" .. numbers[math.random(#numbers)], {{Cookie = cookie}})
end""",
        "API ticket list": f"""
function request()
  return wrk.format("GET", "/api/v1/tickets", {{Authorization = "Bearer {token}"}})
end""",
        "API reply": f"""
local numbers = {numbers}
function request()
  n = n + 1
  local body = '{{"body": "Hei! Vi har sendt kursbeviset på nytt (svar ' .. n .. ')."}}'
  return wrk.format("POST", "/api/v1/tickets/" .. numbers[math.random(#numbers)] .. "/replies",
    {{Authorization = "Bearer {token}", ["Content-Type"] = "application/json"}}, body)
end""",
        "widget post": f"""
local widgets = {widgets}
function request()
  n = n + 1
  local w = widgets[(n % #widgets) + 1]
  return wrk.format("POST", "/api/v1/widget/conversations/" .. w.id .. "/messages",
    {{Authorization = "Bearer " .. w.token, ["Content-Type"] = "application/json",
      ["X-Forwarded-For"] = w.ip}}, '{{"body": "Takk, et spørsmål til: ' .. n .. '"}}')
end""",
        "widget read": f"""
local widgets = {widgets}
function request()
  n = n + 1
  local w = widgets[math.random(#widgets)]
  return wrk.format("GET", "/api/v1/widget/conversations/" .. w.id .. "/messages",
    {{Authorization = "Bearer " .. w.token, ["X-Forwarded-For"] = w.ip}})
end""",
    }
    return LUA_COMMON % {"delay_ms": delay_ms} + requests[kind]


async def hold_sse(base: str, widgets: list[dict], seconds: float) -> dict[str, int]:
    """Widget clients listening for the whole run; counts streams held and events seen."""
    seen = {"open": 0, "events": 0, "failed": 0}

    async def listen(client: httpx.AsyncClient, widget: dict) -> None:
        url = f"{base}/api/v1/widget/conversations/{widget['id']}/events"
        headers = {"Authorization": f"Bearer {widget['token']}", "X-Forwarded-For": widget["ip"]}
        try:
            async with client.stream("GET", url, headers=headers) as stream:
                seen["open"] += 1
                async for line in stream.aiter_lines():
                    if line.startswith("event: message"):
                        seen["events"] += 1
        except (httpx.HTTPError, asyncio.CancelledError):
            seen["failed"] += 0 if seen["open"] else 1

    limits = httpx.Limits(max_connections=len(widgets) + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), limits=limits) as client:
        tasks = [asyncio.create_task(listen(client, w)) for w in widgets]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return seen


def pipe_mail(context: dict, work: Path, seconds: float, stop: threading.Event) -> list[int]:
    """Batches of ten mails through `helpdesk ingest --mbox` every five seconds."""
    piped: list[int] = []
    batch = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        mbox = generated_mail(10, work, start=100_000 + batch * 10)
        result = subprocess.run([*context["helpdesk"], "ingest", "--mbox", str(mbox)],
                                env=context["env"], capture_output=True)
        piped.append(result.returncode)
        batch += 1
        stop.wait(5)
    return piped


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="helpdesk-load-"))
    name, url = asyncio.run(fresh_postgres(args.database_url, "load"))
    try:
        with services(args, url, work) as context:
            data = seed(context, work, args.tickets, max(args.sse, 60))
            scripts = {}
            for kind, share, _ in MIX:
                rate = args.rate * share
                delay_ms = int(args.connections * 1000 / rate)
                script = work / f"{kind.replace(' ', '_')}.lua"
                script.write_text(lua_script(kind, data, context["token"], delay_ms))
                scripts[kind] = script
            wrk = {
                kind: subprocess.Popen(
                    ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                     "--timeout", "10s", "-s", str(script), context["base"]],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for kind, script in scripts.items()
            }
            stop = threading.Event()
            piped: list[int] = []
            mta = threading.Thread(target=lambda: piped.extend(
                pipe_mail(context, work, args.duration, stop)))
            mta.start()
            sse = asyncio.run(hold_sse(context["base"], data["widgets"][: args.sse],
                                       args.duration + 2))
            results = {}
            for kind, process in wrk.items():
                output = process.communicate()[0]
                line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
                results[kind] = json.loads(line[7:]) if line else {"output": output[-500:]}
            stop.set()
            mta.join()
            time.sleep(3)
            report(args, results, sse, piped, context["sink"].count)
    finally:
        asyncio.run(drop_postgres(args.database_url, name))
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, results: dict, sse: dict, piped: list[int],
           delivered: int) -> None:
    total = sum(r.get("requests", 0) for r in results.values())
    seconds = max((r.get("seconds", 0) for r in results.values()), default=1) or 1
    print(f"\nTarget {args.rate} req/s for {args.duration} s with {args.connections} connections "
          f"per endpoint; achieved {total / seconds:.0f} req/s over all endpoints.")
    print("| endpoint | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind, r in results.items():
        if "requests" not in r:
            print(f"| {kind} | wrk failed: {r.get('output', '')!r} |")
            continue
        print(f"| {kind} | {r['requests'] / r['seconds']:.1f} | {r['p50']:.1f} | {r['p95']:.1f}"
              f" | {r['p99']:.1f} | {r['max']:.1f} | {r['errors']} | {r['non2xx']} |")
    print(f"\nSSE widget streams held: {sse['open']} of {args.sse}, events received "
          f"{sse['events']}; mail batches piped: {len(piped)} (exit codes {sorted(set(piped))});"
          f" mails delivered to the SMTP sink: {delivered}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "HELPDESK_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get(
        "HELPDESK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--rate", type=float, default=300, help="requests per second in all")
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=4, help="per endpoint")
    parser.add_argument("--sse", type=int, default=200, help="widget SSE streams held open")
    parser.add_argument("--tickets", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/load.py needs Debian's wrk (apt-get install wrk)")
    run(args)


if __name__ == "__main__":
    main()
