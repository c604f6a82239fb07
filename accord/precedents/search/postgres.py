"""The precedent search on PostgreSQL (production): generated tsvector columns with GIN indexes,
ranked by ts_rank_cd, with a common query (by the planner's estimate) searched among the newest
precedents only."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from accord.platform.fulltext import START, STOP, ParsedQuery, websearch
from accord.precedents.search import common
from accord.precedents.search.common import (
    CARRIED,
    COMMON_FOR_SECONDS,
    SIMILAR_POOL,
    Candidates,
    Filters,
    newest_only,
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
    """The newest matches of the query that pass the filters, ranked by ts_rank_cd."""
    tsv = "public_tsv" if public else "search_tsv"
    params["q"] = websearch(query)
    window_only = False
    # A GIN index finds the matches of a distinctive query quickly but gives them in no
    # useful order: every match is read to pick the newest. For a common query (the
    # planner's estimate) that is most of the table, so only the newest rows are searched.
    rows_of = "precedent p"
    if _estimated_matches(session, tsv, params) > GIN_ROWS:
        where, window_only = newest_only(session, where, params, "p.id")
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
        f"SELECT p.id AS id, p.{tsv} AS tsv, {CARRIED} FROM {rows_of},"
        f" websearch_to_tsquery('english', :q) q"
        f" WHERE p.{tsv} @@ q{where} ORDER BY p.id DESC LIMIT {common.cap()}"
    )
    sql = (
        f"SELECT p.id AS id, -ts_rank_cd(p.tsv, q) AS rank, {CARRIED} FROM ({newest}) p,"
        " websearch_to_tsquery('english', :q) q"
    )
    return Candidates(sql, params, window_only=window_only)


GIN_ROWS = 1_500
"""PostgreSQL: a query the planner expects to match more rows than this is a common one."""


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


def snippets(session: Session, public: bool, ids: list[int], q: Any) -> dict[int, str]:
    """Each hit's snippet, the matches between START and STOP."""
    column = "public_text" if public else "search_text"
    sql = (
        f"SELECT p.id AS id, ts_headline('english', p.{column}, q, 'StartSel={START},"
        f" StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2,"
        " FragmentDelimiter=…') AS snippet"
        " FROM precedent p, websearch_to_tsquery('english', :q) q WHERE p.id IN :ids"
    )
    statement = text(sql).bindparams(bindparam("ids", expanding=True))
    rows = session.execute(statement, {"q": q, "ids": ids}).all()
    return {int(r.id): str(r.snippet or "") for r in rows}


def text_candidates(session: Session, words: list[str], limit: int) -> list[tuple[int, float]]:
    """Precedents matching any of `words` in the full record, best first (id, rank)."""
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
