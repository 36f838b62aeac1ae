"""Full-text search over tickets: subject, requester, message text and authors' addresses.

The schema is in helpdesk/models/search.py. A query is split into words (letters and
digits; an address becomes its parts), and every word must match as a word prefix, so
"kursbe" finds "kursbeviset". PostgreSQL stems each word with the `helpdesk_search`
configuration (Norwegian) before the prefix match; SQLite FTS5 has no Norwegian stemmer,
so the words are stemmed here with Snowball's Norwegian stemmer and matched as prefixes:
"kursbeviset" and "kursbevis" find each other on both.

A ticket's rank is its best match (higher is better): ts_rank with subject > addresses >
text on PostgreSQL, negated bm25 on SQLite; only the newest `MAX_HITS` matching messages
and tickets are ranked, so a very common word costs no more than a rare one (add a word
to reach further back). A number alone also finds the ticket with that number. Snippets
are made for the shown page only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import snowballstemmer
from sqlalchemy import Float, Integer, Subquery, text
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models.search import SEARCH_CONFIG

MAX_WORDS = 8
# Ranking reads every match; a word in a fifth of all mail would mean a million rows. The
# newest matches of messages (and of tickets) are ranked, at most this many of each: the
# database then walks the newest rows for a common word, or the index for a rare one.
MAX_HITS = 2000
_WORD = re.compile(r"[^\W_]+")
# Marks around matched words in snippets (control characters never occur in clean text).
START, STOP = "\x02", "\x03"


@dataclass(frozen=True)
class SearchQuery:
    """The words of an operator's search, ready for either database."""

    words: tuple[str, ...]
    number: int | None
    # Whole addresses typed in the search: matched as one token, not as common parts
    # ("example", "no") that half of all mail shares.
    addresses: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.words and not self.addresses


@dataclass(frozen=True)
class Snippet:
    """Matched text around the hit: (text, matched) parts, shown with the matches marked."""

    parts: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        return "".join(part for part, _ in self.parts)

    def highlights(self) -> list[tuple[int, int]]:
        """Start and end offsets of the matched words in `text`."""
        spans, at = [], 0
        for part, matched in self.parts:
            if matched:
                spans.append((at, at + len(part)))
            at += len(part)
        return spans


_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def parse_query(q: str | None) -> SearchQuery:
    """The words and addresses of a search (lower-cased, at most eight) and a ticket number."""
    text_ = (q or "")[:500]
    addresses = tuple(dict.fromkeys(a.lower().strip(".") for a in _ADDRESS.findall(text_)))
    rest = _ADDRESS.sub(" ", text_)
    words = tuple(dict.fromkeys(w.lower()[:64] for w in _WORD.findall(rest)))
    digits = text_.strip().lstrip("#")
    number = int(digits) if digits.isdigit() and len(digits) < 10 else None
    return SearchQuery(words[:MAX_WORDS], number, addresses[:MAX_WORDS])


@cache
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("norwegian")


def fts5_query(query: SearchQuery) -> str:
    """An FTS5 MATCH expression: every word's Norwegian stem as a quoted prefix."""
    terms = []
    for word in query.words:
        stem = _stemmer().stemWord(word) if word.isalpha() and len(word) > 3 else word
        terms.append(f'"{stem}"*')
    for address in query.addresses:
        # The tokenizer splits an address into its parts; as a phrase they stay in order.
        terms.append('"' + " ".join(_WORD.findall(address)) + '"')
    return " ".join(terms)


def tsquery_text(query: SearchQuery) -> str:
    """A to_tsquery() input: every word as a prefix, every address whole, all required.

    Words are letters and digits only and addresses letters, digits and `.+-@`, so
    nothing in them is tsquery syntax.
    """
    return " & ".join(tsquery_terms(query))


def tsquery_terms(query: SearchQuery) -> list[str]:
    """Each word as a prefix term and each address as a whole token, for to_tsquery()."""
    return [f"{word}:*" for word in query.words] + [f"'{a}'" for a in query.addresses]


async def ranked_hits(session: AsyncSession, query: SearchQuery) -> Subquery:
    """(ticket_id, rank) of every ticket the search matches, one row per ticket."""
    if session.get_bind().dialect.name != "postgresql":
        sqlite = text(_SQLITE_HITS).bindparams(terms=fts5_query(query), number=query.number)
        return sqlite.columns(ticket_id=Integer, rank=Float).subquery("hits")
    messages = await _plan_table(session, "messages", query)
    tickets = await _plan_table(session, "tickets", query)
    sql = _POSTGRES_HITS.format(
        messages=_matches("messages", "ticket_id", messages),
        tickets=_matches("tickets", "id", tickets),
    )
    values: dict[str, object] = {"terms": tsquery_text(query), "number": query.number}
    for prefix, plan in (("message", messages), ("ticket", tickets)):
        if plan.floor:
            values[f"{prefix}_floor"] = plan.floor
        else:
            values[f"{prefix}_lookup"] = plan.lookup
    statement = text(sql).bindparams(**values)
    return statement.columns(ticket_id=Integer, rank=Float).subquery("hits")


@dataclass(frozen=True)
class TablePlan:
    """How one table is searched: from `floor` newest first, or all matches via `lookup`."""

    floor: int
    # The tsquery given to the GIN index when every match is ranked: the rarest term
    # alone (the others are checked on the rows it finds), so a common word in the search
    # does not make the index read its whole posting list.
    lookup: str


def _matches(table: str, ticket_column: str, plan: TablePlan) -> str:
    """The table's ranked matches: in the window newest first, or all of them.

    Without a floor there is no ORDER BY … LIMIT: for a term it misjudges as common the
    planner would otherwise walk the whole table backwards looking for rows that are not
    there, instead of asking the GIN index.
    """
    prefix = "message" if table == "messages" else "ticket"
    rank = f"ts_rank(search_vector, {_TSQUERY})::float8 AS rank"
    if plan.floor:
        return (
            f"SELECT {ticket_column} AS ticket_id, {rank} FROM {table} "
            f"WHERE search_vector @@ {_TSQUERY} AND id > :{prefix}_floor "
            f"ORDER BY id DESC LIMIT {MAX_HITS}"
        )
    lookup = f"to_tsquery('{SEARCH_CONFIG}', :{prefix}_lookup)"
    return (
        f"SELECT ticket_id, {rank} FROM (SELECT {ticket_column} AS ticket_id, search_vector "
        f"FROM {table} WHERE search_vector @@ {lookup} OFFSET 0) found "
        f"WHERE search_vector @@ {_TSQUERY}"
    )


# How a word's frequency is judged: by counting its matches among the newest WINDOW rows
# (read through the primary key, never the GIN index, so this costs the same for every
# word). A rare search (at most MAX_ALL matches expected in the table) has all its matches
# ranked, found through the GIN index by its rarest term; a common one has the newest rows
# ranked, as many as should hold about MAX_HITS matches. Bounding that walk by id also
# keeps the planner from walking the whole table when it misjudges a prefix term as common.
WINDOW = 20_000
MAX_ALL = 5_000


async def _plan_table(session: AsyncSession, table: str, query: SearchQuery) -> TablePlan:
    """Where to search this table from, judged on its newest rows."""
    terms = tsquery_terms(query)
    full = " & ".join(terms)
    newest = int(await session.scalar(text(f"SELECT max(id) FROM {table}")) or 0)
    if newest <= WINDOW:
        return TablePlan(0, full)
    # Per term: its matches, and whether it is a term at all (a stop word such as "og"
    # is dropped by to_tsquery and matches nothing: it must not be taken as the rarest).
    counts = ", ".join(
        f"count(*) FILTER (WHERE search_vector @@ to_tsquery('{SEARCH_CONFIG}', :t{n})), "
        f"numnode(to_tsquery('{SEARCH_CONFIG}', :t{n}))"
        for n in range(len(terms))
    )
    row = (
        await session.execute(
            text(
                f"SELECT count(*) FILTER (WHERE search_vector @@ {_TSQUERY}), {counts} "
                f"FROM (SELECT search_vector FROM {table} WHERE id > :floor OFFSET 0) newest"
            ).bindparams(
                floor=newest - WINDOW,
                terms=full,
                **{f"t{n}": term for n, term in enumerate(terms)},
            )
        )
    ).one()
    found = int(row[0] or 0)
    if found * newest / WINDOW <= MAX_ALL:
        real = [(int(row[1 + 2 * n] or 0), term) for n, term in enumerate(terms) if row[2 + 2 * n]]
        return TablePlan(0, min(real)[1] if real else full)
    return TablePlan(max(newest - WINDOW * MAX_HITS // max(found, 1), 0), full)


_TSQUERY = f"to_tsquery('{SEARCH_CONFIG}', :terms)"
_POSTGRES_HITS = """
SELECT ticket_id, max(rank) AS rank FROM (
  ({messages})
  UNION ALL
  ({tickets})
  UNION ALL
  SELECT t.id, 1000.0::float8 FROM tickets t WHERE t.number = :number
) matched GROUP BY ticket_id
"""
# bm25() is lower-is-better; negated so that both databases rank higher-is-better.
_SQLITE_HITS = f"""
SELECT ticket_id, max(rank) AS rank FROM (
  SELECT * FROM (
    SELECT m.ticket_id AS ticket_id, -bm25(message_search, 1.0, 2.0, 2.0) AS rank
    FROM message_search JOIN messages m ON m.id = message_search.rowid
    WHERE message_search MATCH :terms ORDER BY message_search.rowid DESC LIMIT {MAX_HITS})
  UNION ALL
  SELECT * FROM (
    SELECT ticket_search.rowid, -bm25(ticket_search, 4.0, 2.0, 2.0)
    FROM ticket_search WHERE ticket_search MATCH :terms
    ORDER BY ticket_search.rowid DESC LIMIT {MAX_HITS})
  UNION ALL
  SELECT t.id, 1000.0 FROM tickets t WHERE t.number = :number
) GROUP BY ticket_id
"""


async def snippets(
    session: AsyncSession, query: SearchQuery, ticket_ids: Sequence[int]
) -> dict[int, Snippet]:
    """The best-matching message text of each ticket, cut around the matched words."""
    if not ticket_ids or query.is_empty:
        return {}
    ids = ",".join(str(int(i)) for i in ticket_ids)
    if session.get_bind().dialect.name == "postgresql":
        statement = text(_POSTGRES_SNIPPETS.format(ids=ids)).bindparams(terms=tsquery_text(query))
    else:
        statement = text(_SQLITE_SNIPPETS.format(ids=ids)).bindparams(terms=fts5_query(query))
    found: dict[int, Snippet] = {}
    for ticket_id, marked in await session.execute(statement):
        if ticket_id not in found and marked:
            found[ticket_id] = split_marked(marked)
    return found


# The page's tickets are few: their messages are read by ticket (OFFSET 0 keeps the match
# test out of the scan, so the planner does not evaluate the whole GIN index for it).
_POSTGRES_SNIPPETS = (
    "SELECT ticket_id, ts_headline('"
    + SEARCH_CONFIG
    + "', left(text, 20000), "
    + _TSQUERY
    + """, 'StartSel="\x02", StopSel="\x03", MaxWords=30, MinWords=12')
FROM (SELECT m.ticket_id, m.id, m.text, m.search_vector FROM messages m
      WHERE m.ticket_id IN ({ids}) OFFSET 0) page_messages
WHERE search_vector @@ """
    + _TSQUERY
    + """
ORDER BY ticket_id, ts_rank(search_vector, """
    + _TSQUERY
    + ") DESC, id"
)
_SQLITE_SNIPPETS = """
SELECT m.ticket_id, snippet(message_search, 0, char(2), char(3), '…', 24)
FROM message_search JOIN messages m ON m.id = message_search.rowid
WHERE message_search MATCH :terms AND m.ticket_id IN ({ids})
ORDER BY m.ticket_id, bm25(message_search, 1.0, 2.0, 2.0), m.id
"""


def split_marked(marked: str) -> Snippet:
    """Turn text with START/STOP marks into snippet parts (marks never reach a page)."""
    parts: list[tuple[str, bool]] = []
    for index, piece in enumerate(re.split(f"[{START}{STOP}]", " ".join(marked.split()))):
        if piece:
            parts.append((piece, index % 2 == 1))
    return Snippet(tuple(parts))


async def optimise(session: AsyncSession) -> None:
    """Compact the search index so deleted text no longer lingers in it.

    SQLite: FTS5 'optimize' merges the index into one segment, dropping the entries of
    deleted or changed rows (with secure_delete on, the freed pages are zeroed). Call it
    after an erasure. PostgreSQL removes dead index entries in (auto)VACUUM, which cannot
    run inside a transaction; the rows themselves are gone at commit.
    """
    if session.get_bind().dialect.name == "sqlite":
        for table in ("ticket_search", "message_search"):
            await session.execute(text(f"INSERT INTO {table} ({table}) VALUES ('optimize')"))


async def rebuild(session: AsyncSession) -> None:
    """Re-index every ticket and message from the tables (SQLite; PostgreSQL needs none)."""
    if session.get_bind().dialect.name == "sqlite":
        for table in ("ticket_search", "message_search"):
            await session.execute(text(f"INSERT INTO {table} ({table}) VALUES ('rebuild')"))


async def purge_deleted(session: AsyncSession) -> None:
    """After deleting or redacting tickets or messages: make sure no index keeps their words.

    The triggers already removed their entries in the same transaction; this compacts the
    index (see `optimise`) so that nothing of them stays in the database file either.
    """
    await optimise(session)


def words_of(queries: Iterable[str]) -> list[str]:
    """All words of several searches (for highlighting a subject in a template)."""
    return [word for q in queries for word in parse_query(q).words]
