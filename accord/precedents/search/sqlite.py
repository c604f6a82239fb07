"""The precedent search on SQLite (the embedded default): FTS5's precedent_fts, ranked by
bm25(), with the work bounded where FTS5 would read every match of a common word."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from accord.platform.fulltext import START, STOP, ParsedQuery, fts5_expression, fts5_string
from accord.precedents.library import facet_token
from accord.precedents.search import common
from accord.precedents.search.common import (
    CARRIED,
    COMMON_FOR_SECONDS,
    FACETS,
    MULTI_FACETS,
    PUBLIC_FACETS,
    SIMILAR_POOL,
    Candidates,
    Filters,
    filter_sql,
    newest_only,
    search_rows,
)


def candidates(
    session: Session,
    query: ParsedQuery,
    filters: Filters,
    *,
    public: bool,
    where: str,
    params: dict[str, Any],
) -> Candidates:
    """The newest matches of the query that pass the filters, ranked by bm25() unless a word is
    too common to rank by."""
    column = "public_text" if public else "search_text"
    params["q"] = fts5_expression(query, column)
    window_only = False
    # The index's rowid is the precedent's id, walked newest first. bm25() first counts
    # every precedent holding each word (a full pass over the word's entries: 45 ms for a
    # word in a million precedents), so a query with a word that common is listed newest
    # first instead.
    common_words = _common_words(session, query, column)
    unranked = next(
        (u for u in (*query.phrases, *query.terms) if common_words & set(u.split())), None
    )
    score = "0" if unranked else "bm25(precedent_fts)"
    if unranked:
        # No bm25() to count them: facet filters join the match inside the index (each
        # candidate's row is not read to test them). With bm25(), they would be counted too.
        where, dates = filter_sql(
            filters, browsing=False, sqlite=True, in_index=True, public=public
        )
        params = {"q": params["q"] + facet_match(filters, public), **dates}
    # A phrase of common words is checked word position by word position in every
    # precedent holding all of them: like PostgreSQL, search only the newest then.
    if any(set(phrase.split()) <= common_words for phrase in query.phrases):
        where, window_only = newest_only(session, where, params, "precedent_fts.rowid")
    sql = (
        f"SELECT precedent_fts.rowid AS id, {score} AS rank, {CARRIED}"
        f" FROM precedent_fts JOIN {search_rows(session, 'p')} ON p.id = precedent_fts.rowid"
        f" WHERE precedent_fts MATCH :q{where} ORDER BY precedent_fts.rowid DESC"
        f" LIMIT {common.cap()}"
    )
    return Candidates(sql, params, window_only=window_only, unranked=unranked)


RANKABLE = 20_000
"""SQLite: bm25() is computed when every word and phrase of the query is in at most this many
precedents (counting that far costs under 2 ms; ranking them, under 1 ms a word)."""


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
                {"u": f"{column} : {fts5_string(word)}"},
            ).scalar()
            known = (now + COMMON_FOR_SECONDS, int(count or 0) > RANKABLE)
            _word_counts[key] = known
        if known[1]:
            common.add(word)
    return common


SNIPPET_RUN = 200
"""SQLite: a page whose rowids span fewer than this asks the index for the whole run."""


def facet_match(filters: Filters, public: bool = False) -> str:
    """The facet filters as terms of the indexed facet words ("remedymdfcredit")."""
    names = PUBLIC_FACETS if public else {}
    return "".join(
        f" AND facet_tokens : {fts5_string(facet_token(names.get(name, name), value))}"
        for name in (*FACETS, *MULTI_FACETS)
        if (value := getattr(filters, name))
    )


def snippets(session: Session, public: bool, ids: list[int], q: Any) -> dict[int, str]:
    """Each hit's snippet, the matches between START and STOP."""
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
    statement = text(sql)
    if ":ids" in sql:
        statement = statement.bindparams(bindparam("ids", expanding=True))
    rows = session.execute(statement, {"q": q, "ids": ids}).all()
    wanted = set(ids)  # a run holds the rowids between the hits too
    return {int(r.id): str(r.snippet or "") for r in rows if int(r.id) in wanted}


def text_candidates(session: Session, words: list[str], limit: int) -> list[tuple[int, float]]:
    """Precedents matching any of `words` in the full record, best first (id, rank)."""
    sql = (
        "SELECT id, rank FROM (SELECT rowid AS id, bm25(precedent_fts) AS rank"
        " FROM precedent_fts WHERE precedent_fts MATCH :q"
        f" ORDER BY rowid DESC LIMIT {SIMILAR_POOL}) ORDER BY rank LIMIT :limit"
    )
    q = "search_text : (" + " OR ".join(map(fts5_string, words)) + ")"
    rows = session.execute(text(sql), {"q": q, "limit": limit}).all()
    return [(int(r.id), float(r.rank)) for r in rows]
