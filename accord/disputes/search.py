"""Searching the dispute list by words: the dispute index (migration 0028) on either backend,
counted and paged in the index itself (`DisputeHits`), and the snippets of a page of hits. Who
may see which dispute is the caller's condition (`accord.disputes.access`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

from accord.platform.fulltext import (
    START,
    STOP,
    fts5_expression,
    highlight,
    parse_query,
    websearch,
)
from models.tables import Dispute, DisputeParty


def dispute_matches(raw_query: str) -> TextualSelect | None:
    """SQLite: (number, rank) of the disputes whose parties, summary or facts match, best first
    by rank; None when the query has nothing searchable. The caller adds who may see what."""
    query = parse_query(raw_query)
    if query.empty:
        return None
    sql = text(
        "SELECT k.number AS number, bm25(dispute_fts) AS rank FROM dispute_fts"
        " JOIN dispute_fts_key k ON k.fts_rowid = dispute_fts.rowid WHERE dispute_fts MATCH :dq"
    ).bindparams(dq=fts5_expression(query, "body"))
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
        match = text("dispute_fts MATCH :dq").bindparams(dq=fts5_expression(query, "body"))
        return DisputeHits(match, literal_column("bm25(dispute_fts)"), sqlite=True)
    vector: ColumnElement[Any] = DISPUTE_SEARCH.c.tsv
    # The query is parsed once, in the FROM list. Written into the conditions, it was parsed
    # again for every match's rank once psycopg prepared the statement (its fifth run on a
    # connection) and PostgreSQL planned it generically: 22 rather than 12 ms for a common word
    # at 100,000 disputes. Ranked by ts_rank (how often and where the words occur) rather than
    # ts_rank_cd (how close together): a common word's 9,000 matches are all ranked, and
    # ts_rank costs half as much (7 rather than 12 ms).
    words = func.websearch_to_tsquery("english", websearch(query)).column_valued("words")
    return DisputeHits(vector.bool_op("@@")(words), -func.ts_rank(vector, words), sqlite=False)


def dispute_text_match(raw_query: str) -> tuple[ColumnElement[bool], ColumnElement[float]] | None:
    """PostgreSQL: the condition on a dispute row (its number among dispute_search's matches)
    and the rank (lower is better) from its own tsvector; None when the query has nothing
    searchable."""
    query = parse_query(raw_query)
    if query.empty:
        return None
    words = func.websearch_to_tsquery("english", websearch(query))
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
        dq = fts5_expression(query, "body")
    else:
        sql = (
            f"SELECT d.number AS number, ts_headline('english', d.summary || ' ' || d.facts, q,"
            f" 'StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2,"
            " FragmentDelimiter=…') AS snippet"
            " FROM dispute d, websearch_to_tsquery('english', :dq) q WHERE d.number IN :numbers"
        )
        dq = websearch(query)
    rows = session.execute(
        text(sql).bindparams(bindparam("numbers", expanding=True)), {"dq": dq, "numbers": numbers}
    ).all()
    return {str(r.number): highlight(str(r.snippet or "")) for r in rows}
