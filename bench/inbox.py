"""Inbox server time on a large PostgreSQL database: queue pages, a deep cursor, search.

1,000,000 tickets and 5,000,000 messages are generated with set-based SQL (INSERT …
SELECT generate_series; Norwegian-ish text with a skewed word distribution, so some words
are common and some rare) into a template database, kept between runs, and copied with
CREATE DATABASE … TEMPLATE for each run. Each case is one GET of an inbox page through the
application in this process (session check, queries, counts, rendering; no network), timed
from request to complete response body.

    .venv/bin/python bench/inbox.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
    … --rebuild            # seed the template again
    … --tickets 100000     # a smaller template (its own name)

Due times are approximated in SQL (created + 1 day / + 3 days) rather than computed in
business hours: the benchmark measures reading them, not the calendar. Older solved
tickets are closed, as retention's auto-close (7 days after solving) leaves them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch_db import drop_postgres  # noqa: E402  (bench/ is on sys.path)

import helpdesk.models  # noqa: E402,F401
from helpdesk.app import create_app  # noqa: E402
from helpdesk.bootstrap import build_runtime  # noqa: E402
from helpdesk.config import Settings  # noqa: E402
from helpdesk.db import transaction  # noqa: E402
from helpdesk.operators import service as operators  # noqa: E402
from helpdesk.tickets.queries import BY_ACTIVITY, encode_cursor  # noqa: E402

PASSWORD = "bench-password-123"
# Common words first: a word's index is drawn as n·u³, so the first ones are frequent.
_VOCABULARY = (
    "jeg hei og ikke har det på til er med kurset for som kan en vi takk å av "
    "hilsen fått om dere mitt meg når innlogging spørsmål faktura kurs bevis "
    "hjelp hvordan passord sertifikat dato arbeidsgiver deltaker betaling "
    "kursbeviset eksamen prøven endre navn bedrift timer uke mandag fredag "
    "førstehjelp truck hms stillas arbeid høyde kran varme arbeider fagbrev "
    "kompetanse påmelding avmelding refusjon kvittering ordrenummer tilgang "
    "modul video oppgave svar retting fullført resultat karakter godkjent "
    "stryk repetisjon nettkurs klasserom lokasjon oslo bergen trondheim "
    "stavanger tromsø kristiansand ålesund bodø drammen fredrikstad "
    "kursbevisene sertifikatet fakturaen betalingen innloggingen eksamenen "
    "påmeldingen refusjonen kvitteringen tilgangen modulen oppgaven "
    "reklamasjon purring inkasso kreditnota organisasjonsnummer ehf "
    "fakturaadresse kontaktperson avdeling lisens lisensene vedlegg skjermbilde"
)
WORDS = _VOCABULARY.split()
SUBJECTS = [
    "Kursbevis mangler",
    "Faktura til arbeidsgiver",
    "Får ikke logget inn",
    "Spørsmål om prøveeksamen",
    "Endre navn på bevis",
    "Refusjon av kursavgift",
    "Tilgang til modul",
    "Påmelding til kurs i Bergen",
]


def _sql_array(items: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + item.replace("'", "''") + "'" for item in items) + "]"


def seed_statements(tickets: int) -> list[str]:
    """The set-based SQL that fills an empty schema (operators already exist: ids 1-20)."""
    words, subjects = _sql_array(WORDS), _sql_array(SUBJECTS)
    span = tickets * 90  # one new ticket every 90 s on average: ~2.9 years for 1M
    return [
        f"""INSERT INTO learners (external_id, email, email_key, name, locale, organisation,
            created_at, updated_at)
        SELECT 'L-' || g, 'elev' || g || '@example.no', 'elev' || g || '@example.no',
            'Elev ' || g, 'nb', CASE WHEN g % 3 = 0 THEN 'Bedrift ' || (g % 997) END,
            now(), now()
        FROM generate_series(1, {max(tickets // 5, 10)}) g""",
        f"""INSERT INTO tickets (number, subject, status, channel, priority, learner_id,
            requester, requester_name, participants, assignee_id, tags, needs_review,
            created_at, updated_at, last_message_at, first_response_due_at,
            first_response_at, resolution_due_at, resolved_at)
        SELECT 1000 + g,
            ({subjects})[1 + g % {len(SUBJECTS)}] || CASE WHEN g % 7 = 0 THEN ' (ordre '
                || (100000 + g % 90000) || ')' ELSE '' END,
            s.status,
            CASE WHEN g % 10 < 7 THEN 'email' WHEN g % 10 < 9 THEN 'widget' ELSE 'form' END,
            CASE WHEN g % 50 = 0 THEN 'urgent' WHEN g % 10 = 1 THEN 'high' ELSE 'normal' END,
            CASE WHEN g % 4 <> 0 THEN 1 + g % {max(tickets // 5, 10)} END,
            'elev' || (g % {max(tickets // 5, 10)}) || '@example.no',
            'Elev ' || (g % {max(tickets // 5, 10)}),
            '[]'::jsonb,
            CASE WHEN s.status = 'new' OR (s.status = 'open' AND g % 3 = 0) THEN NULL
                 ELSE 1 + g % 20 END,
            CASE g % 40 WHEN 0 THEN '["faktura"]'::jsonb WHEN 1 THEN '["vip", "bedrift"]'::jsonb
                 ELSE '[]'::jsonb END,
            g % 1000 = 0,
            c.at, c.at, c.at + (g % 4000) * interval '1 minute',
            c.at + interval '1 day',
            CASE WHEN s.status <> 'new' THEN c.at + (g % 600) * interval '1 minute' END,
            c.at + interval '3 days',
            CASE WHEN s.status IN ('solved', 'closed') THEN c.at + interval '2 days' END
        FROM generate_series(1, {tickets}) g
        CROSS JOIN LATERAL (SELECT now() - interval '5 days'
            - ({tickets} - g) * interval '{span // tickets} seconds' AS at) c
        CROSS JOIN LATERAL (SELECT CASE
            WHEN g > {tickets} - {tickets // 50} THEN
                (ARRAY['new', 'open', 'open', 'pending', 'solved'])[1 + g % 5]
            WHEN g % 100 = 0 THEN 'open'
            ELSE 'closed' END AS status) s""",
        f"""INSERT INTO messages (ticket_id, direction, author_kind, author_name, author_email,
            operator_id, text, reply_text, machine, sender_verified, created_at)
        SELECT t.id,
            CASE WHEN k % 2 = 1 THEN 'inbound' WHEN k = 4 THEN 'note' ELSE 'outbound' END,
            CASE WHEN k % 2 = 1 THEN 'learner' ELSE 'operator' END,
            CASE WHEN k % 2 = 1 THEN t.requester_name ELSE 'Agent ' || (1 + t.id % 20) END,
            CASE WHEN k % 2 = 1 THEN t.requester END,
            CASE WHEN k % 2 = 0 THEN 1 + t.id % 20 END,
            b.body, b.body,
            CASE WHEN k = 5 AND t.id % 200 = 7 THEN 'auto-reply' END,
            true,
            t.created_at + (k - 1) * interval '3 hours'
        FROM tickets t
        CROSS JOIN generate_series(1, 5) k
        CROSS JOIN LATERAL (
            SELECT array_to_string(ARRAY(
                SELECT ({words})[1 + floor({len(WORDS)} * power(random(), 3))::int]
                FROM generate_series(1, 12 + (t.id + k) % 30)
            ), ' ') || CASE WHEN (t.id + k) % 11 = 0 THEN ' ordre ' || (100000 + t.id % 90000)
                ELSE '' END AS body
        ) b""",
    ]


async def build_template(server_url: str, name: str, tickets: int) -> None:
    """Create and fill the template database (about 25 minutes for 1M tickets on 2 cores)."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = _database(server_url, name)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        dropped = await _drop_bulk_indexes(engine)
        runtime = build_runtime(
            Settings(database_url=url, secret_key="bench-secret-key-0123456789")
        )
        async with transaction(runtime.sessions) as session:
            for n in range(20):
                role = "admin" if n == 0 else "agent"
                await operators.create_operator(
                    session, f"agent{n}@kurs.example", f"Agent {n}", role, PASSWORD
                )
        await runtime.close()
        for statement in seed_statements(tickets):
            started = time.perf_counter()
            async with engine.begin() as connection:
                await connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
                await connection.execute(text(statement))
            print(f"  seeded in {time.perf_counter() - started:.0f} s: {statement.split()[2]}")
        started = time.perf_counter()
        await _create_indexes(engine, dropped)
        print(f"  indexes in {time.perf_counter() - started:.0f} s")
    finally:
        await engine.dispose()
    await _admin(_database(server_url, name), "VACUUM ANALYZE")


async def _drop_bulk_indexes(engine: AsyncEngine) -> list[str]:
    """Drop the secondary indexes of tickets and messages (loading first is much faster);
    their definitions, to create them again afterwards."""
    async with engine.begin() as connection:
        found = list(
            await connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename IN ('tickets', 'messages') AND indexname NOT IN "
                    "(SELECT conname FROM pg_constraint)"
                )
            )
        )
        for name, _ in found:
            await connection.execute(text(f'DROP INDEX "{name}"'))
    return [definition for _, definition in found]


async def _create_indexes(engine: AsyncEngine, definitions: list[str]) -> None:
    for definition in definitions:
        async with engine.begin() as connection:
            await connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            await connection.execute(text(definition))


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _database(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _exists(server_url: str, name: str) -> bool:
    engine = create_async_engine(server_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            return found is not None
    finally:
        await engine.dispose()


async def _cursor_at(engine: AsyncEngine, where: str, offset: int) -> tuple[str, int]:
    """A cursor `offset` rows into a list (or halfway, if it is shorter), and the offset."""
    async with engine.connect() as connection:
        count = await connection.scalar(text(f"SELECT count(*) FROM tickets WHERE {where}"))
        offset = min(offset, (count or 0) // 2)
        row = (
            await connection.execute(
                text(
                    f"SELECT last_message_at, id FROM tickets WHERE {where} "
                    "ORDER BY last_message_at DESC, id DESC OFFSET :offset LIMIT 1"
                ),
                {"offset": offset},
            )
        ).one()
    return encode_cursor(BY_ACTIVITY, (row[0], row[1])), offset


async def _sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/inbox/login")
    token = form.text.split('name="_csrf" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/inbox/login",
        data={"_csrf": token, "email": "agent1@kurs.example", "password": PASSWORD},
    )
    assert response.status_code == 303, response.text[:300]


def _statement_clock(engine: AsyncEngine) -> list[float]:
    """Seconds spent in each SQL statement since the list was last cleared."""
    spent: list[float] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(connection: Any, *_: Any) -> None:
        connection.info["statement_started"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _stop(connection: Any, *_: Any) -> None:
        spent.append(time.perf_counter() - connection.info.pop("statement_started"))

    return spent


async def measure(url: str, runs: int) -> list[dict[str, Any]]:
    """p50/p95 of each case, in milliseconds, through the application in this process."""
    settings = Settings(database_url=url, secret_key="bench-secret-key-0123456789")
    runtime = build_runtime(settings)
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    results = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _sign_in(client)
        unassigned = "assignee_id IS NULL AND status IN ('new', 'open')"
        shallow, shallow_at = await _cursor_at(runtime.engine, unassigned, 5_000)
        deep, deep_at = await _cursor_at(runtime.engine, "true", 500_000)
        cases = [
            ("Unassigned, first page", {"queue": "unassigned"}, 50),
            (
                f"Unassigned, cursor after {shallow_at:,} rows",
                {"queue": "unassigned", "cursor": shallow},
                50,
            ),
            (f"All tickets, cursor after {deep_at:,} rows", {"queue": "all", "cursor": deep}, 50),
            ("Breached SLA, first page", {"queue": "breaches"}, 50),
            ("Search: rare word (reklamasjon)", {"q": "reklamasjon"}, 300),
            ("Search: order number (ordre 123456)", {"q": "ordre 123456"}, 300),
            ("Search: inflected, mid frequency (kursbeviset)", {"q": "kursbeviset"}, 300),
            ("Search: address (elev4711@example.no)", {"q": "elev4711@example.no"}, 300),
            (
                "Search: within a queue and filter (faktura, open)",
                {"q": "faktura", "queue": "open"},
                300,
            ),
        ]
        database = _statement_clock(runtime.engine)
        for name, params, goal in cases:
            for _ in range(3):  # warm caches and connections
                await client.get("/inbox", params=params)
            timings, in_database = [], []
            for _ in range(runs):
                database.clear()
                started = time.perf_counter()
                response = await client.get("/inbox", params=params)
                timings.append((time.perf_counter() - started) * 1000)
                in_database.append(sum(database) * 1000)
                assert response.status_code == 200, response.text[:300]
            result = {
                "case": name,
                "p50": statistics.median(timings),
                "p95": statistics.quantiles(timings, n=20)[18],
                "db_p50": statistics.median(in_database),
                "db_p95": statistics.quantiles(in_database, n=20)[18],
                "goal": goal,
                "rows": response.text.count('class="ticket-row'),
            }
            results.append(result)
            print(
                f"| {name} | {result['p50']:.0f} | {result['p95']:.0f} | {result['db_p50']:.0f} "
                f"| {result['db_p95']:.0f} | {goal} | {result['rows']} |"
            )
    await runtime.close()
    return results


async def _match_counts(url: str) -> None:
    """How many messages each searched word is in (how common the benchmark's words are)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            total = await connection.scalar(text("SELECT count(*) FROM messages"))
            for term in ("reklamasjon:*", "kursbeviset:*", "faktura:*", "ordre:* & 123456:*"):
                found = await connection.scalar(
                    text(
                        "SELECT count(*) FROM messages "
                        "WHERE search_vector @@ to_tsquery('helpdesk_search', :term)"
                    ),
                    {"term": term},
                )
                print(f"{term}: in {found:,} of {total:,} messages ({100 * found / total:.1f} %)")
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postgres", required=True, help="server URL (postgresql+asyncpg://…)")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    template = f"helpdesk_bench_inbox_{args.tickets}"
    if args.rebuild or not await _exists(args.postgres, template):
        print(
            f"seeding template {template} ({args.tickets:,} tickets, {5 * args.tickets:,} messages)"
        )
        started = time.perf_counter()
        await build_template(args.postgres, template, args.tickets)
        print(f"template ready in {time.perf_counter() - started:.0f} s")
    copy = f"bench_inbox_{int(time.time())}"
    started = time.perf_counter()
    await _admin(args.postgres, f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
    print(f"copied the template in {time.perf_counter() - started:.0f} s")
    try:
        print("| case | page p50 ms | page p95 ms | SQL p50 ms | SQL p95 ms | goal ms | rows |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        await measure(_database(args.postgres, copy), args.runs)
        await _match_counts(_database(args.postgres, copy))
    finally:
        await drop_postgres(args.postgres, copy)


if __name__ == "__main__":
    asyncio.run(main())
