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

from sqlalchemy import text
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
    dialect = session.get_bind().dialect.name
    column = "public_text" if public else "search_text"
    if dialect == "sqlite":
        params["q"] = _fts5_expression(query, column)
        column_index = 1 if public else 0
        matched = (
            "SELECT p.id AS id, bm25(precedent_fts) AS rank,"  # noqa: S608
            f" snippet(precedent_fts, {column_index}, '{START}', '{STOP}', '…', 16) AS snippet"
            " FROM precedent_fts JOIN precedent p ON p.id = precedent_fts.rowid"
            f" WHERE precedent_fts MATCH :q{where}"
        )
        order = "rank"  # bm25: lower is better
    else:
        params["q"] = _websearch(query)
        tsv = "public_tsv" if public else "search_tsv"
        matched = (
            "SELECT p.id AS id, -ts_rank_cd(p." + tsv + ", q) AS rank,"  # noqa: S608
            f" ts_headline('english', p.{column}, q, 'StartSel={START}, StopSel={STOP},"
            " MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=…') AS snippet"
            " FROM precedent p, websearch_to_tsquery('english', :q) q"
            f" WHERE p.{tsv} @@ q{where}"
        )
        order = "rank"
    rows = session.execute(
        text(
            "SELECT m.id, m.rank, m.snippet, p.dispute_number, p.category, p.outcome,"  # noqa: S608
            " p.claimant_tier, p.claimant_region, p.decided_at"
            f" FROM ({matched}) m JOIN precedent p ON p.id = m.id"
            f" ORDER BY m.{order}, p.decided_at DESC LIMIT :limit"
        ),
        {**params, "limit": limit},
    ).all()
    facets: dict[str, dict[str, int]] = {}
    total = 0
    for facet, db_column in FACETS.items():
        counts = session.execute(
            text(
                f"SELECT p.{db_column}, count(*) FROM ({matched}) m JOIN precedent p"  # noqa: S608
                f" ON p.id = m.id GROUP BY p.{db_column} ORDER BY count(*) DESC"
            ),
            params,
        ).all()
        facets[facet] = {str(value): int(count) for value, count in counts}
        total = sum(facets[facet].values())
    return SearchResult(
        hits=[_hit(row) for row in rows], total=total, facets=facets, notes=query.notes
    )


def _hit(row: Any) -> Hit:
    decided = row.decided_at
    if isinstance(decided, str):
        decided = datetime.fromisoformat(decided)
    return Hit(
        id=int(row.id),
        dispute_number=row.dispute_number,
        score=-float(row.rank),
        snippet_html=highlight(row.snippet or ""),
        category=row.category,
        outcome=row.outcome,
        tier=row.claimant_tier,
        region=row.claimant_region,
        decided_at=decided,
    )


def _filter_sql(filters: Filters) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, column in (
        ("category", "category"),
        ("outcome", "outcome"),
        ("tier", "claimant_tier"),
        ("region", "claimant_region"),
    ):
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
