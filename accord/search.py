"""Full-text search over precedents: one interface, two backends (SQLite FTS5 for the embedded
default, PostgreSQL tsvector + GIN in production), the same results contract on both.

The query syntax is the one people know from web search: words (all must match), "quoted
phrases", and -exclusions. A query that cannot be searched as written (unbalanced quotes,
operators alone, very long) is searched as best it can be, and the result says how it was
read; it is never a server error. Partners search the anonymised text only, so neither a
party's name nor a snippet can reveal one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

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
    if not terms and not phrases:
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
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


FACETS = {
    "category": "category",
    "outcome": "outcome",
    "tier": "claimant_tier",
    "region": "claimant_region",
}


def highlight(snippet: str) -> str:
    return html.escape(snippet).replace(START, "<mark>").replace(STOP, "</mark>")


FACET_CAP = 20_000
"""Facets count at most this many matches (a very common word matches nearly everything;
counting all of it would cost more than the search); the result says when they are capped."""


def search_precedents(
    session: Session,
    raw_query: str,
    *,
    public: bool,
    filters: Filters | None = None,
    limit: int = 20,
) -> SearchResult:
    query = parse_query(raw_query)
    if query.empty:
        return SearchResult(notes=query.notes)
    filters = filters or Filters()
    where, params = _filter_sql(filters)
    # The SQL below is assembled from fixed fragments and column names chosen here; every value
    # the user gave (the query, the filters) is a bound parameter.
    sqlite = session.get_bind().dialect.name == "sqlite"
    column = "public_text" if public else "search_text"
    if sqlite:
        params["q"] = _fts5_expression(query, column)
        # id and rank only: snippets are made for the page of hits, not for every match.
        matched = (
            "SELECT p.id AS id, bm25(precedent_fts) AS rank"
            " FROM precedent_fts JOIN precedent p ON p.id = precedent_fts.rowid"
            f" WHERE precedent_fts MATCH :q{where}"
        )
    else:
        params["q"] = _websearch(query)
        tsv = "public_tsv" if public else "search_tsv"
        matched = (
            f"SELECT p.id AS id, -ts_rank_cd(p.{tsv}, q) AS rank"
            " FROM precedent p, websearch_to_tsquery('english', :q) q"
            f" WHERE p.{tsv} @@ q{where}"
        )
    total = int(session.execute(text(f"SELECT count(*) FROM ({matched}) m"), params).scalar() or 0)
    top = session.execute(
        text(f"SELECT m.id, m.rank FROM ({matched}) m ORDER BY m.rank LIMIT :limit"),
        {**params, "limit": limit},
    ).all()
    snippets = _snippets(session, sqlite, public, [int(r.id) for r in top], params["q"])
    details = {
        row.id: row
        for row in session.execute(
            text(
                "SELECT id, dispute_number, category, outcome, claimant_tier, claimant_region,"
                " decided_at FROM precedent WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": [int(r.id) for r in top] or [-1]},
        ).all()
    }
    hits = [_hit(details[r.id], float(r.rank), snippets.get(int(r.id), "")) for r in top]
    # All facets in one pass over (at most FACET_CAP of) the match, computed once.
    grouped = " UNION ALL ".join(
        f"SELECT '{facet}' AS facet, p.{db_column} AS value, count(*) AS n FROM m"
        f" JOIN precedent p ON p.id = m.id GROUP BY p.{db_column}"
        for facet, db_column in FACETS.items()
    )
    counted = session.execute(
        text(f"WITH m AS MATERIALIZED ({matched} LIMIT {FACET_CAP}) {grouped}"),
        params,
    ).all()
    facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for facet, value, count in counted:
        facets[facet][str(value)] = int(count)
    for facet in facets:
        facets[facet] = dict(sorted(facets[facet].items(), key=lambda kv: -kv[1]))
    notes = query.notes
    if total > FACET_CAP:
        notes += (f"facet counts are over the first {FACET_CAP:,} of {total:,} matches",)
    return SearchResult(hits=hits, total=total, facets=facets, notes=notes)


def text_candidates(session: Session, terms: list[str], limit: int) -> list[tuple[int, float]]:
    """Precedents matching any of `terms` in the full record, best first (id, rank): the text
    half of finding similar precedents."""
    words = [w for w in terms if _WORD.fullmatch(w)]
    if not words:
        return []
    if session.get_bind().dialect.name == "sqlite":
        sql = (
            "SELECT rowid AS id, bm25(precedent_fts) AS rank FROM precedent_fts"
            " WHERE precedent_fts MATCH :q ORDER BY rank LIMIT :limit"
        )
        params: dict[str, Any] = {"q": "search_text : (" + " OR ".join(map(_quote, words)) + ")"}
    else:
        either = " || ".join(f"plainto_tsquery('english', :t{i})" for i in range(len(words)))
        sql = (
            "SELECT p.id AS id, -ts_rank_cd(p.search_tsv, x.q) AS rank"
            f" FROM precedent p, (SELECT {either} AS q) x WHERE p.search_tsv @@ x.q"
            " ORDER BY rank LIMIT :limit"
        )
        params = {f"t{i}": w for i, w in enumerate(words)}
    rows = session.execute(text(sql), {**params, "limit": limit}).all()
    return [(int(r.id), float(r.rank)) for r in rows]


def _snippets(
    session: Session, sqlite: bool, public: bool, ids: list[int], q: str
) -> dict[int, str]:
    if not ids:
        return {}
    column = "public_text" if public else "search_text"
    if sqlite:
        sql = (
            f"SELECT rowid AS id, snippet(precedent_fts, {1 if public else 0}, '{START}',"
            f" '{STOP}', '…', 16) AS snippet FROM precedent_fts"
            " WHERE precedent_fts MATCH :q AND rowid IN :ids"
        )
    else:
        sql = (
            f"SELECT p.id AS id, ts_headline('english', p.{column}, q, 'StartSel={START},"
            f" StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2,"
            " FragmentDelimiter=…') AS snippet"
            " FROM precedent p, websearch_to_tsquery('english', :q) q WHERE p.id IN :ids"
        )
    rows = session.execute(
        text(sql).bindparams(bindparam("ids", expanding=True)), {"q": q, "ids": ids}
    ).all()
    return {int(r.id): str(r.snippet or "") for r in rows}


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


def _filter_sql(filters: Filters) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, column in FACETS.items():  # each facet is also a filter
        value = getattr(filters, name)
        if value:
            clauses.append(f"p.{column} = :{name}")
            params[name] = value
    if filters.decided_from:
        clauses.append("p.decided_at >= :decided_from")
        params["decided_from"] = filters.decided_from
    if filters.decided_to:
        clauses.append("p.decided_at < :decided_to")
        params["decided_to"] = filters.decided_to
    return "".join(f" AND {c}" for c in clauses), params
