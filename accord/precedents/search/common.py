"""What both backends of the precedent search share: the filters, the hits and the result, the
facets, the bounds on how much a search reads, and the SQL conditions of the filters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from accord.platform.fulltext import highlight


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


PUBLIC_FACETS = {"tier": "public_tier", "region": "public_region"}
"""For partners, the claimant's tier and region are the anonymised view's: generalised until k
partners share them (accord.precedents.anonymity); the facet lines and words hold both."""


CANDIDATES = 1_000
"""A search considers at most this many matches, the newest: it ranks them, counts them and
counts their facets. A common word matches nearly every precedent, and ranking a million of
them would cost more than anyone waits for; a query with a distinctive word stays under the cap
and is exact. Above it, the result says how it was bounded."""


CARRIED = "p.facet_values"
"""Each candidate row carries what its facets are counted from, so one read serves both."""


def cap() -> int:
    """Candidates a search reads: one more than CANDIDATES tells whether there were more."""
    return CANDIDATES + 1


@dataclass
class Candidates:
    """A backend's query for the candidates (id, rank, facet lines), and how it was bounded."""

    sql: str
    params: dict[str, Any]
    window_only: bool = False
    """Only the WINDOW newest precedents were searched (a common query)."""
    unranked: str | None = None
    """SQLite: the word or phrase too common to rank by (the matches are listed newest first)."""


COMMON_FOR_SECONDS = 300.0
"""How long a word's count is trusted: counts only grow, and slowly; a repeated search skips
counting (about a millisecond a word)."""


WINDOW = 3_000
"""How many of the newest precedents a common query searches: on PostgreSQL any query the
planner expects to match widely, on SQLite a phrase of common words."""


def newest_only(session: Session, where: str, params: dict[str, Any], key: str) -> tuple[str, bool]:
    """Narrow the search to the WINDOW newest precedents (by `key`, the id as the query walks
    it); unchanged, and False, when there are no more precedents than that."""
    floor = session.execute(
        text(f"SELECT id FROM {search_rows(session)} ORDER BY id DESC LIMIT 1 OFFSET {WINDOW}")
    ).scalar()
    if floor is None:
        return where, False
    params["floor"] = int(floor) + 1
    return f"{where} AND {key} >= :floor", True


_indexed_rows: set[str] = set()


def search_rows(session: Session, alias: str = "") -> str:
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


def details(session: Session, ids: list[int], column: str, public: bool) -> dict[int, Any]:
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
            lines = public_lines(row.pop("facet_values") or "")
            row["claimant_tier"] = lines.get("tier", "")
            row["claimant_region"] = lines.get("region", "")
    return {pid: SimpleNamespace(**row) for pid, row in rows.items()}


def public_lines(facet_values: str) -> dict[str, str]:
    found = dict(line.partition("=")[::2] for line in facet_values.splitlines())
    return {name: found[public] for name, public in PUBLIC_FACETS.items() if public in found}


def facets(rows: Sequence[Any], public: bool = False) -> dict[str, dict[str, int]]:
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


SIMILAR_POOL = 5_000
"""Similar precedents are ranked among the newest this many that share a distinctive word: a
bounded cost per triage at any size (older ones still come in through their category)."""


def hit(row: Any, rank: float, snippet: str) -> Hit:
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


def filter_sql(
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
