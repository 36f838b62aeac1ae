"""Full-text search over tickets on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

Operators search in Norwegian: inflected forms, æøå, partial words and addresses must
find the ticket; the best match comes first with the text around it; deleted tickets and
erased text are gone from the results (and, on SQLite, from the index).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlmodel import col

from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.config import Settings
from helpdesk.db import transaction
from helpdesk.migrate import upgrade_database
from helpdesk.models import Message, Operator, Ticket
from helpdesk.tickets import queries, search_index
from helpdesk.tickets.search_index import parse_query
from tests.conftest import SECRET_KEY
from tests.factories import T0, add_operator, add_ticket, bearer
from tests.test_migrations import empty_database_url  # noqa: F401 - a fixture


async def _operator(runtime: Runtime) -> Operator:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Operator))
        if found is not None:
            return found
    await add_operator(runtime)
    return await _operator(runtime)


async def _search(runtime: Runtime, q: str, cursor: str | None = None, limit: int = 25):
    operator = await _operator(runtime)
    async with runtime.sessions() as session:
        return await queries.list_tickets(
            session, operator=operator, q=q, cursor=cursor, limit=limit
        )


async def _numbers(runtime: Runtime, q: str) -> list[int]:
    return [row.ticket.number for row in (await _search(runtime, q)).items]


async def test_inflected_norwegian_words_find_each_other(runtime: Runtime) -> None:
    certificate = await add_ticket(
        runtime, subject="Spørsmål", text="Jeg har ikke fått kursbeviset for HMS-kurset."
    )
    plain = await add_ticket(runtime, subject="Faktura", text="Hvor er kursbevis og faktura?")
    await add_ticket(runtime, subject="Passord", text="Jeg har glemt passordet mitt.")

    assert sorted(await _numbers(runtime, "kursbevis")) == sorted(
        [certificate.number, plain.number]
    )
    assert sorted(await _numbers(runtime, "kursbeviset")) == sorted(
        [certificate.number, plain.number]
    )
    assert await _numbers(runtime, "passord") == [(await _passord_number(runtime))]


async def _passord_number(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        number = await session.scalar(select(Ticket.number).where(Ticket.subject == "Passord"))
        assert number is not None
        return number


async def test_partial_words_and_norwegian_letters_match(runtime: Runtime) -> None:
    ticket = await add_ticket(
        runtime, subject="Førstehjelpskurs på Ålesund", text="Kan jeg bytte til kurset i Tromsø?"
    )
    await add_ticket(runtime, subject="Annet", text="Noe helt annet.")

    assert await _numbers(runtime, "førstehj") == [ticket.number]
    assert await _numbers(runtime, "ålesund") == [ticket.number]
    assert await _numbers(runtime, "TROMSØ") == [ticket.number]
    assert await _numbers(runtime, "kurset tromsø") == [ticket.number]
    assert await _numbers(runtime, "tromsø bergen") == []


async def test_addresses_and_ticket_numbers_are_searchable(runtime: Runtime) -> None:
    ticket = await add_ticket(runtime, requester="ola.nordmann@firma.no", text="Hei")
    other = await add_ticket(runtime, requester="kari@example.no", text="Hei")

    assert await _numbers(runtime, "ola.nordmann@firma.no") == [ticket.number]
    assert await _numbers(runtime, "ola") == [ticket.number]
    assert await _numbers(runtime, "firma.no") == [ticket.number]
    assert await _numbers(runtime, f"#{other.number}") == [other.number]


async def test_best_match_comes_first_with_a_marked_snippet(runtime: Runtime) -> None:
    passing = await add_ticket(
        runtime,
        subject="Spørsmål om kurs",
        text="Jeg lurer på noe. Forresten, refusjon?",
        now=T0 + timedelta(hours=1),
    )
    focused = await add_ticket(
        runtime,
        subject="Refusjon av kursavgift",
        text="Jeg ber om refusjon. Refusjon fordi kurset ble avlyst, refusjon til kontoen.",
        now=T0,
    )

    page = await _search(runtime, "refusjon")

    assert [row.ticket.number for row in page.items] == [focused.number, passing.number]
    assert page.items[0].rank is not None and page.items[1].rank is not None
    assert page.items[0].rank > page.items[1].rank
    snippet = page.items[0].snippet
    assert snippet is not None
    marked = [snippet.text[a:b].lower() for a, b in snippet.highlights()]
    assert marked and all(word.startswith("refusjon") for word in marked)
    assert "\x02" not in snippet.text and "\x03" not in snippet.text


async def test_search_pages_are_stable_with_a_cursor(runtime: Runtime) -> None:
    for n in range(7):
        await add_ticket(
            runtime, subject=f"Kursbevis {n}", text="kursbevis", now=T0 + timedelta(minutes=n)
        )
    seen: list[int] = []
    cursor = None
    while True:
        page = await _search(runtime, "kursbevis", cursor=cursor, limit=3)
        seen += [row.ticket.number for row in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert len(seen) == 7 and len(set(seen)) == 7


async def test_deleted_tickets_and_erased_text_vanish_from_search(runtime: Runtime) -> None:
    gone = await add_ticket(runtime, subject="Slett meg", text="hemmelig personnummer 123")
    erased = await add_ticket(runtime, subject="Rett meg", text="mitt hemmelige telefonnummer")
    assert len(await _numbers(runtime, "hemmelig")) == 2

    async with transaction(runtime.sessions) as session:
        await session.execute(delete(Ticket).where(col(Ticket.id) == gone.id))
        await session.execute(
            update(Message).where(col(Message.ticket_id) == erased.id).values(text="[fjernet]")
        )
        await search_index.purge_deleted(session)

    assert await _numbers(runtime, "hemmelig") == []
    assert await _numbers(runtime, "fjernet") == [erased.number]
    if runtime.settings.is_sqlite:
        # fts5vocab lists the terms the index itself still holds.
        async with runtime.sessions() as session:
            await session.execute(
                text("CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, message_search, row)")
            )
            terms = await session.scalar(
                text("SELECT count(*) FROM temp.words WHERE term LIKE 'hemmelig%'")
            )
        assert terms == 0


async def test_api_list_uses_the_same_search(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    token = await add_operator(runtime, email="api@kurs.example")
    ticket = await add_ticket(runtime, subject="Hjelp", text="Jeg har ikke fått kursbeviset.")
    await add_ticket(runtime, subject="Annet", text="Noe annet.")

    response = await client.get("/api/v1/tickets", params={"q": "kursbevis"}, headers=bearer(token))

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["number"] for item in items] == [ticket.number]
    assert "kursbeviset" in items[0]["search"]["snippet"]
    start, end = items[0]["search"]["highlights"][0]
    assert items[0]["search"]["snippet"][start:end].lower().startswith("kursbevis")


async def test_a_search_of_only_punctuation_finds_nothing(runtime: Runtime) -> None:
    await add_ticket(runtime)

    assert await _numbers(runtime, "!!! ???") == []
    typed = parse_query("svar til Kari@Example.NO")
    assert (typed.words, typed.addresses) == (("svar", "til"), ("kari@example.no",))


async def test_search_works_on_a_migrated_database(
    empty_database_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Migration 0010's hand-written search objects work like those create_all makes."""
    await upgrade_database(empty_database_url)
    settings = Settings(database_url=empty_database_url, data_dir=tmp_path, secret_key=SECRET_KEY)
    runtime = build_runtime(settings)
    try:
        ticket = await add_ticket(runtime, text="Jeg har ikke fått kursbeviset.")
        await add_ticket(runtime, subject="Annet", text="Noe annet.")
        assert await _numbers(runtime, "kursbeviset") == [ticket.number]
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("max_all", "max_hits", "common_found"),
    [(1, 3, 3), (10_000, 2000, 12)],
    ids=["newest-rows-walk", "rarest-term-lookup"],
)
async def test_large_table_search_plans_find_the_same_tickets(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    max_all: int,
    max_hits: int,
    common_found: int,
) -> None:
    """PostgreSQL judges a word's frequency on the newest rows (tiny windows here): a
    common word ranks only the newest matches, a rare search finds every match."""
    monkeypatch.setattr(search_index, "WINDOW", 4)
    monkeypatch.setattr(search_index, "MAX_ALL", max_all)
    monkeypatch.setattr(search_index, "MAX_HITS", max_hits)
    wanted, numbers = [], []
    for n in range(12):
        text_ = "ordre 4711 er betalt" if n % 4 == 0 else f"ordre {n} og kursbevis"
        ticket = await add_ticket(
            runtime, subject=f"Sak {n}", text=text_, now=T0 + timedelta(minutes=n)
        )
        numbers.append(ticket.number)
        if n % 4 == 0:
            wanted.append(ticket.number)

    assert sorted(await _numbers(runtime, "ordre 4711")) == sorted(wanted)
    if runtime.settings.is_sqlite:
        return  # FTS5 ranks every match; these plans are PostgreSQL's
    common = await _numbers(runtime, "ordre")
    assert len(common) == common_found
    if common_found < 12:  # the walk: the newest tickets' messages, not older ones
        assert sorted(common) == numbers[-common_found:]
    # PostgreSQL drops Norwegian stop words; one must not be taken for the rarest term.
    assert sorted(await _numbers(runtime, "og ordre 4711")) == sorted(wanted)
    assert await _numbers(runtime, "og") == []
