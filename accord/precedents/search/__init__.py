"""Full-text search over precedents: one interface, two backends (SQLite FTS5 for the embedded
default, `sqlite`; PostgreSQL tsvector + GIN in production, `postgres`), the same results
contract on both (`common`).

The query syntax is the one people know from web search (`accord.platform.fulltext`). A query
that cannot be searched as written is searched as best it can be, and the result says how it
was read; it is never a server error. Partners search the anonymised text only, so neither a
party's name nor a snippet can reveal one.
"""

from __future__ import annotations

import heapq

from sqlalchemy import text
from sqlmodel import Session

from accord.platform.fulltext import WORD, parse_query
from accord.precedents.search import common, postgres, sqlite
from accord.precedents.search.common import (
    CARRIED,
    Candidates,
    Filters,
    Hit,
    SearchResult,
    details,
    facets,
    filter_sql,
    hit,
    search_rows,
)

__all__ = ["Filters", "Hit", "SearchResult", "search_precedents", "text_candidates"]


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
    backend = sqlite if session.get_bind().dialect.name == "sqlite" else postgres
    where, params = filter_sql(
        filters, browsing=query.empty, sqlite=backend is sqlite, public=public
    )
    # The SQL is assembled from fixed fragments and column names chosen here and in the
    # backends; every value the user gave (the query, the filters) is a bound parameter.
    if query.empty:
        found = Candidates(
            f"SELECT p.id AS id, 0 AS rank, {CARRIED} FROM {search_rows(session, 'p')}"
            f" WHERE 1 = 1{where} ORDER BY p.id DESC LIMIT {common.cap()}",
            params,
        )
    else:
        found = backend.candidates(
            session, query, filters, public=public, where=where, params=params
        )
    rows = session.execute(text(found.sql), found.params).all()
    exact = len(rows) <= common.CANDIDATES
    rows = rows[: common.CANDIDATES]
    # Best rank first, newest first among equals: only the page is needed, not a full sort.
    # Rows are unpacked, not read by attribute (a thousand of those cost 1.7 ms).
    keyed = [(float(rank), -int(pid)) for pid, rank, _ in rows]
    best = heapq.nsmallest(offset + limit, keyed)
    ranked = [(-negative_id, rank) for rank, negative_id in best[offset:]]
    hit_ids = [pid for pid, _ in ranked]
    column = "public_text" if public else "search_text"
    shown = details(session, hit_ids, column, public)
    snippets = (
        backend.snippets(session, public, hit_ids, found.params.get("q"))
        if hit_ids and not query.empty
        else {}
    )
    hits = [hit(shown[pid], rank, snippets.get(pid) or shown[pid].opening) for pid, rank in ranked]
    notes = query.notes
    if found.unranked:
        notes += (
            f"{found.unranked!r} is too common to rank by relevance here (in more than"
            f" {sqlite.RANKABLE:,} precedents): the matches are listed newest first; add a"
            " distinctive word to rank them",
        )
    if found.window_only and exact:
        notes += (
            f"a common query: the newest {common.WINDOW:,} precedents were searched, not all of"
            " them; add a distinctive word or a filter to search them all",
        )
    if not exact:
        notes += (
            f"more than {common.CANDIDATES:,} matches: the newest {common.CANDIDATES:,} are"
            " ranked and counted in the facets; add words or filters to narrow them",
        )
    return SearchResult(
        hits=hits, total=len(rows), exact_total=exact, facets=facets(rows, public), notes=notes
    )


def text_candidates(session: Session, terms: list[str], limit: int) -> list[tuple[int, float]]:
    """Precedents matching any of `terms` in the full record, best first (id, rank): the text
    half of finding similar precedents."""
    words = [w for w in terms if WORD.fullmatch(w)]
    if not words:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return sqlite.text_candidates(session, words, limit)
    return postgres.text_candidates(session, words, limit)
