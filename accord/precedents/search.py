"""Full-text search over precedents: one interface, two backends (SQLite FTS5 for the embedded
default, PostgreSQL tsvector + GIN in production), the same results contract on both.

The query syntax is the one people know from web search: words (all must match), "quoted
phrases", and -exclusions. A query that cannot be searched as written (unbalanced quotes,
operators alone, very long) is searched as best it can be, and the result says how it was
read; it is never a server error. Partners search the anonymised text only, so neither a
party's name nor a snippet can reveal one.
"""

from __future__ import annotations

import heapq
import html
import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    TextClause,
    TextualSelect,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import column as sql_column
from sqlalchemy.sql.visitors import iterate, replacement_traverse
from sqlmodel import Session, col

from accord.precedents.library import facet_token
from models.tables import Dispute, DisputeParty

MAX_QUERY = 200
START, STOP = "\x02", "\x03"
"""Snippet highlight markers: control characters no text contains, replaced after escaping."""


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """How the query was read, when it was not searchable as written."""

    @property
    def empty(self) -> bool:
        return not (self.terms or self.phrases)


_WORD = re.compile(r"[\w][\w'-]*", re.UNICODE)


def parse_query(raw: str) -> ParsedQuery:
    notes: list[str] = []
    if len(raw) > MAX_QUERY:
        raw = raw[:MAX_QUERY]
        notes.append(f"the query was cut to its first {MAX_QUERY} characters")
    if raw.count('"') % 2:
        raw += '"'
        notes.append("an unclosed quote was closed at the end")
    terms: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for negative, quoted, bare in re.findall(r'(-?)(?:"([^"]*)"|(\S+))', raw):
        words = _WORD.findall(quoted if quoted else bare)
        if not words:
            continue
        if negative:
            excluded.append(" ".join(words))
        elif quoted and len(words) > 1:
            phrases.append(" ".join(words))
        else:
            terms.extend(w for w in words if w.upper() not in ("AND", "OR", "NOT", "NEAR"))
    if not terms and not phrases and raw.strip():
        notes.append('there is nothing to search for: add a word or a "phrase"')
    return ParsedQuery(tuple(terms), tuple(phrases), tuple(excluded), tuple(notes))


def _quote(value: str) -> str:
    """An FTS5 string literal: the text is searched as words, never read as syntax."""
    return '"' + value.replace('"', '""') + '"'


def _fts5_expression(query: ParsedQuery, column: str) -> str:
    positive = " AND ".join([*map(_quote, query.terms), *map(_quote, query.phrases)])
    negative = "".join(f" NOT {_quote(e)}" for e in query.excluded)
    return f"{column} : ({positive}{negative})"


def _websearch(query: ParsedQuery) -> str:
    """The same query in the syntax PostgreSQL's websearch_to_tsquery reads."""
    parts = [*query.terms, *(f'"{p}"' for p in query.phrases)]
    parts += [f'-"{e}"' if " " in e else f"-{e}" for e in query.excluded]
    return " ".join(parts)


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    outcome: str | None = None
    tier: str | None = None
    region: str | None = None
    remedy: str | None = None
    clause: str | None = None
    sla: str | None = None
    decided_from: datetime | None = None
    decided_to: datetime | None = None


@dataclass(frozen=True)
class Hit:
    id: int
    dispute_number: str
    score: float
    snippet_html: str
    """Escaped text with the matches in <mark>."""
    category: str
    outcome: str
    tier: str
    region: str
    decided_at: datetime


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    exact_total: bool = True
    """False when there are more than COUNT_CAP matches: `total` is then the cap."""
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


FACETS = {
    "category": "category",
    "outcome": "outcome",
    "tier": "claimant_tier",
    "region": "claimant_region",
}
"""One value per precedent: a column of the precedent table."""
MULTI_FACETS = ("remedy", "clause", "sla")
"""Any number of values per precedent: rows of precedent_facet."""


def highlight(snippet: str) -> str:
    return html.escape(snippet).replace(START, "<mark>").replace(STOP, "</mark>")


CANDIDATES = 1_000
"""A search considers at most this many matches, the newest: it ranks them, counts them and
counts their facets. A common word matches nearly every precedent, and ranking a million of
them would cost more than anyone waits for; a query with a distinctive word stays under the cap
and is exact. Above it, the result says how it was bounded."""


def search_precedents(
    session: Session,
    raw_query: str,
    *,
    public: bool,
    filters: Filters | None = None,
    limit: int = 20,
    offset: int = 0,
) -> SearchResult:
    """Ranked hits with snippets, the number of matches, and facet counts. With no words, the
    newest precedents that pass the filters (browsing by facet)."""
    query = parse_query(raw_query)
    filters = filters or Filters()
    if query.empty and raw_query.strip():
        return SearchResult(notes=query.notes)  # typed something, but nothing searchable
    sqlite = session.get_bind().dialect.name == "sqlite"
    where, params = _filter_sql(filters, browsing=query.empty, sqlite=sqlite, public=public)
    # The SQL below is assembled from fixed fragments and column names chosen here; every value
    # the user gave (the query, the filters) is a bound parameter.
    column = "public_text" if public else "search_text"
    tsv = "public_tsv" if public else "search_tsv"
    over = CANDIDATES + 1  # one more than the cap tells whether there were more
    window_only = False
    unranked: str | None = None
    # Each candidate row carries what its facets are counted from, so one read serves both.
    carried = "p.facet_values"
    rows_of = _search_rows(session, "p")
    if query.empty:
        candidates = (
            f"SELECT p.id AS id, 0 AS rank, {carried} FROM {rows_of} WHERE 1 = 1{where}"
            f" ORDER BY p.id DESC LIMIT {over}"
        )
    elif sqlite:
        params["q"] = _fts5_expression(query, column)
        # The index's rowid is the precedent's id, walked newest first. bm25() first counts
        # every precedent holding each word (a full pass over the word's entries: 45 ms for a
        # word in a million precedents), so a query with a word that common is listed newest
        # first instead.
        common = _common_words(session, query, column)
        unranked = next(
            (u for u in (*query.phrases, *query.terms) if common & set(u.split())), None
        )
        score = "0" if unranked else "bm25(precedent_fts)"
        if unranked:
            # No bm25() to count them: facet filters join the match inside the index (each
            # candidate's row is not read to test them). With bm25(), they would be counted too.
            where, dates = _filter_sql(
                filters, browsing=False, sqlite=True, in_index=True, public=public
            )
            params = {"q": params["q"] + _facet_match(filters, public), **dates}
        # A phrase of common words is checked word position by word position in every
        # precedent holding all of them: like PostgreSQL, search only the newest then.
        if any(set(phrase.split()) <= common for phrase in query.phrases):
            where, window_only = _newest_only(session, where, params, "precedent_fts.rowid")
        candidates = (
            f"SELECT precedent_fts.rowid AS id, {score} AS rank, {carried}"
            f" FROM precedent_fts JOIN {rows_of} ON p.id = precedent_fts.rowid"
            f" WHERE precedent_fts MATCH :q{where} ORDER BY precedent_fts.rowid DESC LIMIT {over}"
        )
    else:
        params["q"] = _websearch(query)
        # A GIN index finds the matches of a distinctive query quickly but gives them in no
        # useful order: every match is read to pick the newest. For a common query (the
        # planner's estimate) that is most of the table, so only the newest rows are searched.
        rows_of = "precedent p"
        if _estimated_matches(session, tsv, params) > GIN_ROWS:
            where, window_only = _newest_only(session, where, params, "p.id")
            # The window is walked by id, newest first, testing each row. Left to itself the
            # planner may first collect the words' matches in the whole table from the GIN index
            # (a phrase's estimate is low): 24 ms for '"signed contract" discount' at a million
            # precedents, 5 ms walked. OFFSET 0 keeps the text condition out of the window's scan.
            if window_only:
                rows_of = (
                    f"(SELECT p.id, p.{tsv}, p.facet_values FROM precedent p WHERE 1 = 1{where}"
                    " ORDER BY p.id DESC OFFSET 0) p"
                )
                where = ""
        newest = (
            f"SELECT p.id AS id, p.{tsv} AS tsv, {carried} FROM {rows_of},"
            f" websearch_to_tsquery('english', :q) q"
            f" WHERE p.{tsv} @@ q{where} ORDER BY p.id DESC LIMIT {over}"
        )
        candidates = (
            f"SELECT p.id AS id, -ts_rank_cd(p.tsv, q) AS rank, {carried} FROM ({newest}) p,"
            " websearch_to_tsquery('english', :q) q"
        )
    rows = session.execute(text(candidates), params).all()
    exact = len(rows) <= CANDIDATES
    rows = rows[:CANDIDATES]
    # Best rank first, newest first among equals: only the page is needed, not a full sort.
    # Rows are unpacked, not read by attribute (a thousand of those cost 1.7 ms).
    keyed = [(float(rank), -int(pid)) for pid, rank, _ in rows]
    best = heapq.nsmallest(offset + limit, keyed)
    ranked = [(-negative_id, rank) for rank, negative_id in best[offset:]]
    hit_ids = [pid for pid, _ in ranked]
    details = _details(session, hit_ids, column, public)
    snippets = (
        _snippets(session, sqlite, public, hit_ids, params.get("q")) if not query.empty else {}
    )
    hits = [
        _hit(details[pid], rank, snippets.get(pid) or details[pid].opening) for pid, rank in ranked
    ]
    facets = _facets(rows, public)
    notes = query.notes
    if unranked:
        notes += (
            f"{unranked!r} is too common to rank by relevance here (in more than {RANKABLE:,}"
            " precedents): the matches are listed newest first; add a distinctive word to rank"
            " them",
        )
    if window_only and exact:
        notes += (
            f"a common query: the newest {WINDOW:,} precedents were searched, not all of them;"
            " add a distinctive word or a filter to search them all",
        )
    if not exact:
        notes += (
            f"more than {CANDIDATES:,} matches: the newest {CANDIDATES:,} are ranked and counted"
            " in the facets; add words or filters to narrow them",
        )
    return SearchResult(hits=hits, total=len(rows), exact_total=exact, facets=facets, notes=notes)


RANKABLE = 20_000
"""SQLite: bm25() is computed when every word and phrase of the query is in at most this many
precedents (counting that far costs under 2 ms; ranking them, under 1 ms a word)."""


COMMON_FOR_SECONDS = 300.0
"""How long a word's count is trusted: counts only grow, and slowly; a repeated search skips
counting (about a millisecond a word)."""
_word_counts: dict[tuple[str, str, str, int], tuple[float, bool]] = {}


def _common_words(session: Session, query: ParsedQuery, column: str) -> set[str]:
    """The query's words found in more than RANKABLE precedents (each counted only that far)."""
    common: set[str] = set()
    database = str(session.get_bind().engine.url)
    now = time.monotonic()
    if len(_word_counts) > 10_000:
        _word_counts.clear()
    for word in {w for unit in (*query.terms, *query.phrases) for w in unit.split()}:
        key = (database, column, word.lower(), RANKABLE)
        known = _word_counts.get(key)
        if known is None or known[0] < now:
            count = session.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM precedent_fts"
                    f" WHERE precedent_fts MATCH :u LIMIT {RANKABLE + 1})"
                ),
                {"u": f"{column} : {_quote(word)}"},
            ).scalar()
            known = (now + COMMON_FOR_SECONDS, int(count or 0) > RANKABLE)
            _word_counts[key] = known
        if known[1]:
            common.add(word)
    return common


def _newest_only(
    session: Session, where: str, params: dict[str, Any], key: str
) -> tuple[str, bool]:
    """Narrow the search to the WINDOW newest precedents (by `key`, the id as the query walks
    it); unchanged, and False, when there are no more precedents than that."""
    floor = session.execute(
        text(f"SELECT id FROM {_search_rows(session)} ORDER BY id DESC LIMIT 1 OFFSET {WINDOW}")
    ).scalar()
    if floor is None:
        return where, False
    params["floor"] = int(floor) + 1
    return f"{where} AND {key} >= :floor", True


_indexed_rows: set[str] = set()


def _search_rows(session: Session, alias: str = "") -> str:
    """Where a search reads its candidates' facet lines and filtered columns: on SQLite, the
    narrow index of them (0030) rather than whole rows (two to a page, with their texts); the
    table itself before that migration."""
    table = f"precedent {alias}".rstrip()
    if session.get_bind().dialect.name != "sqlite":
        return table
    database = str(session.get_bind().engine.url)
    if database not in _indexed_rows:
        found = session.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name"),
            {"name": "ix_precedent_search_rows"},
        ).first()
        if found is None:
            return table
        _indexed_rows.add(database)
    return f"{table} INDEXED BY ix_precedent_search_rows"


GIN_ROWS = 1_500
"""PostgreSQL: a query the planner expects to match more rows than this is a common one."""
WINDOW = 3_000
"""How many of the newest precedents a common query searches: on PostgreSQL any query the
planner expects to match widely, on SQLite a phrase of common words."""


_estimates: dict[tuple[str, str, str], tuple[float, float]] = {}


def _estimated_matches(session: Session, tsv: str, params: dict[str, Any]) -> float:
    """The planner's estimate of the query's matches. Kept for COMMON_FOR_SECONDS, like a
    word's count on SQLite: it changes only when the table is analysed again, and asking for
    it again (a round trip and a planning) cost a repeated search about a millisecond."""
    key = (str(session.get_bind().engine.url), tsv, str(params["q"]))
    now = time.monotonic()
    known = _estimates.get(key)
    if known is not None and known[0] >= now:
        return known[1]
    if len(_estimates) > 10_000:
        _estimates.clear()
    plan = session.execute(
        text(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM precedent p,"
            f" websearch_to_tsquery('english', :q) q WHERE p.{tsv} @@ q"
        ),
        {"q": params["q"]},
    ).scalar()
    document: Any = json.loads(plan) if isinstance(plan, str) else plan
    estimate = float(document[0]["Plan"]["Plan Rows"])
    _estimates[key] = (now + COMMON_FOR_SECONDS, estimate)
    return estimate


def _details(session: Session, ids: list[int], column: str, public: bool) -> dict[int, Any]:
    """What a page of hits shows: for partners, the claimant's tier and region as generalised
    for the anonymised view (empty when dropped)."""
    sql = text(
        "SELECT id, dispute_number, category, outcome, claimant_tier, claimant_region,"
        f" decided_at, substr({column}, 1, 240) AS opening, facet_values"
        " FROM precedent WHERE id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    rows = {int(r.id): r._asdict() for r in session.execute(sql, {"ids": ids or [-1]})}
    for row in rows.values():
        if public:
            lines = _public_lines(row.pop("facet_values") or "")
            row["claimant_tier"] = lines.get("tier", "")
            row["claimant_region"] = lines.get("region", "")
    return {pid: SimpleNamespace(**row) for pid, row in rows.items()}


PUBLIC_FACETS = {"tier": "public_tier", "region": "public_region"}
"""For partners, the claimant's tier and region are the anonymised view's: generalised until k
partners share them (accord.precedents.anonymity); the facet lines and words hold both."""


def _public_lines(facet_values: str) -> dict[str, str]:
    found = dict(line.partition("=")[::2] for line in facet_values.splitlines())
    return {name: found[public] for name, public in PUBLIC_FACETS.items() if public in found}


def _facets(rows: Sequence[Any], public: bool = False) -> dict[str, dict[str, int]]:
    """Counted from the candidates' facet lines ("remedy=mdf_credit"), every facet at once; `rows`
    are the candidates as (id, rank, facet lines)."""
    # One string split once: the lines of a thousand candidates are counted in C, not one
    # generator step per line.
    counted = Counter("\n".join(lines or "" for _, _, lines in rows).splitlines())
    facets: dict[str, dict[str, int]] = {facet: {} for facet in (*FACETS, *MULTI_FACETS)}
    shown = {v: k for k, v in PUBLIC_FACETS.items()} if public else {}
    for line, count in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])):
        facet, _, value = line.partition("=")
        if public and facet in PUBLIC_FACETS:
            continue  # the claimant's own tier and region: never counted for partners
        facet = shown.get(facet, facet)
        if facet in facets and value:
            facets[facet][value] = count
    return facets


def dispute_matches(raw_query: str) -> TextualSelect | None:
    """SQLite: (number, rank) of the disputes whose parties, summary or facts match, best first
    by rank; None when the query has nothing searchable. The caller adds who may see what."""
    query = parse_query(raw_query)
    if query.empty:
        return None
    sql = text(
        "SELECT k.number AS number, bm25(dispute_fts) AS rank FROM dispute_fts"
        " JOIN dispute_fts_key k ON k.fts_rowid = dispute_fts.rowid WHERE dispute_fts MATCH :dq"
    ).bindparams(dq=_fts5_expression(query, "body"))
    return sql.columns(number=String, rank=Float)


DISPUTE_FTS = table("dispute_fts", sql_column("rowid", Integer))
DISPUTE_FTS_KEY = table(
    "dispute_fts_key", sql_column("fts_rowid", Integer), sql_column("number", String)
)
"""SQLite (0028): the dispute index, whose rowid orders disputes by filing time, and the number
of the dispute each rowid indexes."""
DISPUTE_SEARCH = table(
    "dispute_search",
    sql_column("number", String),
    sql_column("filed_at"),
    sql_column("tsv"),
    sql_column("parties", ARRAY(String)),
)
"""PostgreSQL (0028): each dispute's number, filing time and text vector, GIN-indexed; and the
partner ids of its parties (0032), GIN-indexed too, so a partner's matches are found by
intersecting the two indexes."""


@dataclass(frozen=True)
class DisputeHits:
    """The disputes a query's words find, counted and paged in the search index itself: best
    rank first, newest filed first among equals, no dispute row read to order them (one is read
    only where conditions on it narrow the matches).

    `parties` are partners every match must have among its parties (a partner's own disputes,
    the party filter): on PostgreSQL a condition on dispute_search's own array of them, on
    SQLite on the dispute's rows of dispute_party.

    SQLite orders equals by the index's rowid (the filing time) and reads the numbers of a
    page's rows only; PostgreSQL reads the narrow rows of dispute_search."""

    match: ColumnElement[bool] | TextClause
    rank: ColumnElement[float]
    sqlite: bool

    def count(self, *narrowed: ColumnElement[bool], parties: Sequence[str] = ()) -> Select[int]:
        source, narrowed = self._narrow(narrowed, parties)
        return select(func.count()).select_from(source).where(self.match, *narrowed)

    def page(
        self,
        *narrowed: ColumnElement[bool],
        parties: Sequence[str] = (),
        offset: int,
        limit: int,
    ) -> Select[tuple[str]]:
        """The numbers of one page of matches, best first."""
        source, narrowed = self._narrow(narrowed, parties)
        if not self.sqlite:
            return (
                select(DISPUTE_SEARCH.c.number)
                .select_from(source)
                .where(self.match, *narrowed)
                # The number last: PostgreSQL's top-N sort orders ties afresh for each
                # page, so equal ranks filed in the same instant repeated or went missing.
                .order_by(
                    self.rank, DISPUTE_SEARCH.c.filed_at.desc(), DISPUTE_SEARCH.c.number.desc()
                )
                .offset(offset)
                .limit(limit)
            )
        ranked = (
            select(DISPUTE_FTS.c.rowid.label("fts_rowid"), self.rank.label("rank"))
            .select_from(source)
            .where(self.match, *narrowed)
            .order_by(self.rank, DISPUTE_FTS.c.rowid.desc())
            .offset(offset)
            .limit(limit)
            .subquery("ranked")
        )
        return (
            select(DISPUTE_FTS_KEY.c.number)
            .join(ranked, ranked.c.fts_rowid == DISPUTE_FTS_KEY.c.fts_rowid)
            .order_by(ranked.c.rank, ranked.c.fts_rowid.desc())
        )

    def numbers(self) -> Select[Any]:
        """The numbers of every match."""
        return select(self._number).select_from(self._keyed).where(self.match)

    @property
    def _number(self) -> ColumnElement[str]:
        return DISPUTE_FTS_KEY.c.number if self.sqlite else DISPUTE_SEARCH.c.number

    @property
    def _keyed(self) -> Any:
        if not self.sqlite:
            return DISPUTE_SEARCH
        return DISPUTE_FTS.join(DISPUTE_FTS_KEY, DISPUTE_FTS_KEY.c.fts_rowid == DISPUTE_FTS.c.rowid)

    def _of_parties(self, parties: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
        if not parties:
            return ()
        if not self.sqlite:
            return (DISPUTE_SEARCH.c.parties.contains(list(parties)),)
        return tuple(
            exists().where(
                col(DisputeParty.dispute_number) == self._number,
                col(DisputeParty.partner_id) == partner,
            )
            for partner in parties
        )

    def _narrow(
        self, narrowed: tuple[ColumnElement[bool], ...], parties: Sequence[str]
    ) -> tuple[Any, tuple[ColumnElement[bool], ...]]:
        """What to read and the conditions on it: the index alone when nothing narrows the
        matches (every indexed dispute exists); the index and its numbers when the conditions
        are on the dispute's number and parties only (a partner's own disputes); else joined to
        the disputes the conditions are about."""
        of_parties = self._of_parties(parties)
        if not narrowed:
            if of_parties:
                return self._keyed, of_parties
            return (DISPUTE_FTS if self.sqlite else DISPUTE_SEARCH), ()
        dispute = Dispute.__table__  # type: ignore[attr-defined]

        def on_number(element: Any, **_: Any) -> Any:
            found = isinstance(element, Column) and element.table is dispute
            return self._number if found and element.name == "number" else None

        adapted = tuple(replacement_traverse(c, {}, on_number) for c in narrowed)
        if not any(
            isinstance(e, Column) and e.table is dispute for c in adapted for e in iterate(c)
        ):
            return self._keyed, (*adapted, *of_parties)
        joined = self._keyed.join(Dispute, col(Dispute.number) == self._number)
        return joined, (*narrowed, *of_parties)


def dispute_hits(raw_query: str, dialect: str) -> DisputeHits | None:
    """The disputes the query's words find (see DisputeHits); None when the query has nothing
    searchable."""
    query = parse_query(raw_query)
    if query.empty:
        return None
    if dialect == "sqlite":
        match = text("dispute_fts MATCH :dq").bindparams(dq=_fts5_expression(query, "body"))
        return DisputeHits(match, literal_column("bm25(dispute_fts)"), sqlite=True)
    vector: ColumnElement[Any] = DISPUTE_SEARCH.c.tsv
    # The query is parsed once, in the FROM list. Written into the conditions, it was parsed
    # again for every match's rank once psycopg prepared the statement (its fifth run on a
    # connection) and PostgreSQL planned it generically: 22 rather than 12 ms for a common word
    # at 100,000 disputes. Ranked by ts_rank (how often and where the words occur) rather than
    # ts_rank_cd (how close together): a common word's 9,000 matches are all ranked, and
    # ts_rank costs half as much (7 rather than 12 ms).
    words = func.websearch_to_tsquery("english", _websearch(query)).column_valued("words")
    return DisputeHits(vector.bool_op("@@")(words), -func.ts_rank(vector, words), sqlite=False)


def dispute_text_match(raw_query: str) -> tuple[ColumnElement[bool], ColumnElement[float]] | None:
    """PostgreSQL: the condition on a dispute row (its number among dispute_search's matches)
    and the rank (lower is better) from its own tsvector; None when the query has nothing
    searchable."""
    query = parse_query(raw_query)
    if query.empty:
        return None
    words = func.websearch_to_tsquery("english", _websearch(query))
    matching = select(DISPUTE_SEARCH.c.number).where(DISPUTE_SEARCH.c.tsv.bool_op("@@")(words))
    vector: ColumnElement[Any] = literal_column("dispute.search_tsv")
    return col(Dispute.number).in_(matching), -func.ts_rank_cd(vector, words)


def dispute_snippets(session: Session, numbers: list[str], raw_query: str) -> dict[str, str]:
    """Highlighted snippets for a page of dispute hits, escaped, matches in <mark>."""
    query = parse_query(raw_query)
    if query.empty or not numbers:
        return {}
    if session.get_bind().dialect.name == "sqlite":
        # The page's rows of the index by their rowids (found by number), not every match's.
        sql = (
            f"SELECT k.number AS number, snippet(dispute_fts, 0, '{START}', '{STOP}', '…', 16)"
            " AS snippet FROM dispute_fts JOIN dispute_fts_key k ON k.fts_rowid = dispute_fts.rowid"
            " WHERE dispute_fts.rowid IN"
            " (SELECT fts_rowid FROM dispute_fts_key WHERE number IN :numbers)"
            " AND dispute_fts MATCH :dq"
        )
        dq = _fts5_expression(query, "body")
    else:
        sql = (
            f"SELECT d.number AS number, ts_headline('english', d.summary || ' ' || d.facts, q,"
            f" 'StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2,"
            " FragmentDelimiter=…') AS snippet"
            " FROM dispute d, websearch_to_tsquery('english', :dq) q WHERE d.number IN :numbers"
        )
        dq = _websearch(query)
    rows = session.execute(
        text(sql).bindparams(bindparam("numbers", expanding=True)), {"dq": dq, "numbers": numbers}
    ).all()
    return {str(r.number): highlight(str(r.snippet or "")) for r in rows}


SIMILAR_POOL = 5_000
"""Similar precedents are ranked among the newest this many that share a distinctive word: a
bounded cost per triage at any size (older ones still come in through their category)."""


def text_candidates(session: Session, terms: list[str], limit: int) -> list[tuple[int, float]]:
    """Precedents matching any of `terms` in the full record, best first (id, rank): the text
    half of finding similar precedents."""
    words = [w for w in terms if _WORD.fullmatch(w)]
    if not words:
        return []
    if session.get_bind().dialect.name == "sqlite":
        sql = (
            "SELECT id, rank FROM (SELECT rowid AS id, bm25(precedent_fts) AS rank"
            " FROM precedent_fts WHERE precedent_fts MATCH :q"
            f" ORDER BY rowid DESC LIMIT {SIMILAR_POOL}) ORDER BY rank LIMIT :limit"
        )
        params: dict[str, Any] = {"q": "search_text : (" + " OR ".join(map(_quote, words)) + ")"}
    else:
        either = " || ".join(f"plainto_tsquery('english', :t{i})" for i in range(len(words)))
        sql = (
            "SELECT c.id AS id, -ts_rank_cd(p.search_tsv, x.q) AS rank FROM ("
            f" SELECT p.id FROM precedent p, (SELECT {either} AS q) x WHERE p.search_tsv @@ x.q"
            f" ORDER BY p.id DESC LIMIT {SIMILAR_POOL}) c JOIN precedent p ON p.id = c.id,"
            f" (SELECT {either} AS q) x ORDER BY rank LIMIT :limit"
        )
        params = {f"t{i}": w for i, w in enumerate(words)}
    rows = session.execute(text(sql), {**params, "limit": limit}).all()
    return [(int(r.id), float(r.rank)) for r in rows]


def _snippets(
    session: Session, sqlite: bool, public: bool, ids: list[int], q: Any
) -> dict[int, str]:
    if not ids:
        return {}
    column = "public_text" if public else "search_text"
    if sqlite:
        # A page listed newest first is a run of neighbouring rowids: the index is asked for
        # that run once rather than once per rowid (an IN list is a lookup each: about 1 ms for
        # 20 at a million precedents, the run 0.06 ms). A scattered (ranked) page asks by rowid.
        lo, hi = min(ids), max(ids)
        rowids = "rowid IN :ids" if hi - lo >= SNIPPET_RUN else f"rowid >= {lo} AND rowid <= {hi}"
        sql = (
            f"SELECT rowid AS id, snippet(precedent_fts, {1 if public else 0}, '{START}',"
            f" '{STOP}', '…', 16) AS snippet FROM precedent_fts"
            f" WHERE precedent_fts MATCH :q AND {rowids}"
        )
    else:
        sql = (
            f"SELECT p.id AS id, ts_headline('english', p.{column}, q, 'StartSel={START},"
            f" StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2,"
            " FragmentDelimiter=…') AS snippet"
            " FROM precedent p, websearch_to_tsquery('english', :q) q WHERE p.id IN :ids"
        )
    statement = text(sql)
    if ":ids" in sql:
        statement = statement.bindparams(bindparam("ids", expanding=True))
    rows = session.execute(statement, {"q": q, "ids": ids}).all()
    wanted = set(ids)
    return {int(r.id): str(r.snippet or "") for r in rows if int(r.id) in wanted}


SNIPPET_RUN = 200
"""SQLite: a page whose rowids span fewer than this asks the index for the whole run."""


def _hit(row: Any, rank: float, snippet: str) -> Hit:
    decided = row.decided_at
    if isinstance(decided, str):
        decided = datetime.fromisoformat(decided)
    return Hit(
        id=int(row.id),
        dispute_number=row.dispute_number,
        score=-rank,
        snippet_html=highlight(snippet),
        category=row.category,
        outcome=row.outcome,
        tier=row.claimant_tier,
        region=row.claimant_region,
        decided_at=decided,
    )


def _facet_match(filters: Filters, public: bool = False) -> str:
    """The facet filters as terms of the indexed facet words ("remedymdfcredit")."""
    names = PUBLIC_FACETS if public else {}
    return "".join(
        f" AND facet_tokens : {_quote(facet_token(names.get(name, name), value))}"
        for name in (*FACETS, *MULTI_FACETS)
        if (value := getattr(filters, name))
    )


def _filter_sql(
    filters: Filters,
    *,
    browsing: bool,
    sqlite: bool,
    in_index: bool = False,
    public: bool = False,
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on `p` (a precedent row) for the filters; with `in_index`, the dates only
    (the facets are matched in the full-text index instead)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, column in FACETS.items():  # each facet is also a filter
        value = getattr(filters, name)
        if value and not in_index:
            if public and name in PUBLIC_FACETS:
                # The generalised label, from the facet lines (a partner never filters by the
                # claimant's own tier or region, or the label would be undone).
                find = "instr" if sqlite else "strpos"
                clauses.append(f"{find}(:nl || p.facet_values || :nl, :{name}_line) > 0")
                params["nl"] = "\n"
                params[f"{name}_line"] = f"\n{PUBLIC_FACETS[name]}={value}\n"
            else:
                clauses.append(f"p.{column} = :{name}")
            params[name] = value
    for name in MULTI_FACETS:
        value = getattr(filters, name)
        if value and not in_index:
            if browsing:
                # The planner may start from the facet's rows (a semi-join over its index).
                clauses.append(
                    "EXISTS (SELECT 1 FROM precedent_facet f WHERE f.precedent_id = p.id"
                    f" AND f.facet = '{name}' AND f.value = :{name})"
                )
            else:
                # Searching, each candidate row is read anyway: its facet lines answer, no
                # lookup per candidate (nor a join over every precedent with the facet).
                find = "instr" if sqlite else "strpos"
                clauses.append(f"{find}(:nl || p.facet_values || :nl, :{name}_line) > 0")
                params["nl"] = "\n"
                params[f"{name}_line"] = f"\n{name}={value}\n"
            params[name] = value
    if filters.decided_from:
        clauses.append("p.decided_at >= :decided_from")
        params["decided_from"] = filters.decided_from
    if filters.decided_to:
        clauses.append("p.decided_at < :decided_to")
        params["decided_to"] = filters.decided_to
    return "".join(f" AND {c}" for c in clauses), params
