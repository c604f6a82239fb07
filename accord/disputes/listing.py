"""The dispute list: what it can be narrowed by (`DisputeFilters`, the same for pages, API and
exports), the disputes a viewer may see that pass them, searched by words in the dispute index
or found by number, counted and paged."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import ColumnElement, false, func, null, or_, true, union_all
from sqlalchemy.sql.elements import False_
from sqlalchemy.sql.selectable import SelectBase
from sqlmodel import Session, col, select

from accord.disputes.access import Viewer, dispute_scope
from accord.disputes.search import dispute_hits, dispute_matches, dispute_text_match
from models.enums import DisputeCategory, DisputeStage, Role
from models.tables import Dispute, DisputeParty
from models.text import StoredLine

PAGE_SIZE = 50


NUMBER_PREFIX = re.compile(r"DSP(-\d{0,4}(-\d{0,6})?)?")
"""A dispute number or the start of one (DSP-2026-000123, dsp-2026): searched by number."""


SearchWords = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), StoredLine]
"""What a person types into a search box: one line, refused (naming the box) when it holds what
no database can be asked about."""


PartyFilter = Annotated[str, StringConstraints(max_length=64), StoredLine]


class DisputeFilters(BaseModel):
    """What a dispute list can be narrowed by; the same for pages, API and exports."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    stage: DisputeStage | None = None
    category: DisputeCategory | None = None
    party: PartyFilter | None = None
    q: SearchWords | None = None
    filed_from: date | None = None
    filed_to: date | None = None
    open_only: bool = False

    def as_query(self) -> dict[str, str]:
        return {
            k: str(v.value if hasattr(v, "value") else v)
            for k, v in self.model_dump().items()
            if v not in (None, False, "")
        }


def _own_partner(viewer: Viewer) -> str | None:
    """A partner user's partner, whose disputes are its whole scope; None for every other role
    and for a partner account with no partner (an empty id is none: its scope finds nothing)."""
    return (viewer.actor.partner_id or None) if viewer.role is Role.PARTNER else None


def _required_parties(viewer: Viewer, filters: DisputeFilters) -> tuple[str, ...]:
    """The partners a dispute must have among its parties to be listed: a partner's own (its
    whole scope) and the party filter's."""
    return tuple(p for p in (_own_partner(viewer), filters.party) if p)


def _narrowed(
    viewer: Viewer, filters: DisputeFilters, *, parties_apart: bool = False
) -> list[ColumnElement[bool]]:
    """Conditions on a dispute row: the disputes this viewer may see that pass the filters other
    than the words (none at all for one who sees everything, unfiltered). With `parties_apart`,
    without the conditions on the dispute's parties (`_required_parties`), which the caller
    applies its own way.

    Words search the full text (facts included) and show snippets of it: only the disputes the
    viewer reads beyond the case summary are searched."""
    conditions: list[ColumnElement[bool]] = []
    if not viewer.sees_everything and not (parties_apart and _own_partner(viewer)):
        conditions.append(dispute_scope(viewer, summary=not filters.q))
    if filters.stage:
        conditions.append(col(Dispute.stage) == filters.stage)
    if filters.category:
        conditions.append(col(Dispute.category) == filters.category)
    if filters.party and not parties_apart:
        conditions.append(
            col(Dispute.number).in_(
                select(DisputeParty.dispute_number).where(DisputeParty.partner_id == filters.party)
            )
        )
    if filters.filed_from:
        conditions.append(
            col(Dispute.filed_at) >= datetime.combine(filters.filed_from, time(), UTC)
        )
    if filters.filed_to and filters.filed_to < date.max:  # the last day there is bounds nothing
        # Up to the next day's start: the whole day, its last microsecond included.
        next_day = datetime.combine(filters.filed_to + timedelta(days=1), time(), UTC)
        conditions.append(col(Dispute.filed_at) < next_day)
    if filters.open_only:
        conditions.append(col(Dispute.closed_at).is_(None))
    return conditions


def filtered(viewer: Viewer, filters: DisputeFilters, dialect: str) -> tuple[Any, Any]:
    """The disputes this viewer may see that pass the filters, and, when there are words to
    search, the full-text rank to order them by (lower is better; else None)."""
    query = select(Dispute).where(true(), *_narrowed(viewer, filters))
    if not filters.q:
        return query, None
    # The disputes the words find by full text, and by number when they are (the start of) a
    # dispute number: looked up in indexes, never by reading every dispute.
    prefix = filters.q.strip().upper()
    by_number = col(Dispute.number).startswith(prefix) if NUMBER_PREFIX.fullmatch(prefix) else None
    if dialect == "postgresql":
        # One table: its GIN index and the number's pattern index (0012) combine. A dispute
        # found by number alone ranks 0, after every text match (their ranks are negative).
        on_text = dispute_text_match(filters.q)
        found = [c for c in (on_text[0] if on_text else None, by_number) if c is not None]
        if not found:
            return query.where(false()), None
        return query.where(or_(*found)), on_text[1] if on_text else None
    found_by: list[SelectBase] = []
    matches = dispute_matches(filters.q)
    text_hits = None if matches is None else matches.subquery("text_hits")
    if text_hits is not None:
        found_by.append(select(text_hits.c.number, text_hits.c.rank))
    if by_number is not None:
        # SQLite's LIKE ignores case and so cannot use the key's index; a range can.
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        by_number &= (col(Dispute.number) >= prefix) & (col(Dispute.number) < after)
        if text_hits is not None:  # each dispute once: a full-text hit keeps its rank
            by_number &= col(Dispute.number).not_in(select(text_hits.c.number))
        found_by.append(
            select(col(Dispute.number).label("number"), null().label("rank")).where(by_number)
        )
    if not found_by:
        return query.where(false()), None
    hits = (found_by[0] if len(found_by) == 1 else union_all(*found_by)).subquery("hits")
    return query.join(hits, hits.c.number == Dispute.number), hits.c.rank


def list_disputes(
    session: Session, viewer: Viewer, filters: DisputeFilters, *, page: int = 1
) -> tuple[list[Dispute], int]:
    dialect = session.get_bind().dialect.name
    if filters.q:
        return _search(session, viewer, filters, filters.q, page, dialect)
    query, rank = filtered(viewer, filters, dialect)
    if viewer.role is Role.PARTNER and filters == DisputeFilters():
        # "My disputes" unfiltered: the party rows count them without touching the disputes.
        total = session.exec(
            select(func.count())
            .select_from(DisputeParty)
            .where(DisputeParty.partner_id == viewer.actor.partner_id)
        ).one()
    else:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
    # The number last, as in the search: PostgreSQL's top-N sort orders ties afresh for each
    # page, so disputes filed in the same instant (an import, a burst of email) were listed
    # twice and others never.
    newest = (col(Dispute.filed_at).desc(), col(Dispute.number).desc())
    # Best match first; a dispute found by its number alone has no rank and comes after.
    order = [*newest] if rank is None else [rank.asc().nulls_last(), *newest]
    rows = session.exec(
        query.order_by(*order).offset((max(page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    ).all()
    return list(rows), int(total)


def _search(
    session: Session,
    viewer: Viewer,
    filters: DisputeFilters,
    words: str,
    page: int,
    dialect: str,
) -> tuple[list[Dispute], int]:
    """A list searched by words: the full-text matches, best first, then the disputes found by
    their number alone, newest first; as _filtered orders them, but counted and paged in the
    search index, so a common word's thousands of matches are never read as dispute rows."""
    # The parties apart: the search index holds them (on PostgreSQL), so a partner's matches
    # are found without reading its every dispute.
    narrowed = _narrowed(viewer, filters, parties_apart=True)
    if any(isinstance(c, False_) for c in narrowed):
        return [], 0  # sees no dispute (a partner account with no partner)
    parties = _required_parties(viewer, filters)
    offset = (max(page, 1) - 1) * PAGE_SIZE
    hits = dispute_hits(words, dialect)
    numbers: list[str] = []
    in_text = 0
    if hits is not None:
        in_text = session.execute(hits.count(*narrowed, parties=parties)).scalar_one()
        if offset < in_text:
            page_of = hits.page(*narrowed, parties=parties, offset=offset, limit=PAGE_SIZE)
            numbers = list(session.execute(page_of).scalars())
    prefix = words.strip().upper()
    by_number = 0
    if NUMBER_PREFIX.fullmatch(prefix):
        narrowed = _narrowed(viewer, filters)  # the parties too, on the dispute rows
        if dialect == "sqlite":
            # SQLite's LIKE ignores case and so cannot use the key's index; a range can.
            after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            numbered = [col(Dispute.number) >= prefix, col(Dispute.number) < after, *narrowed]
        else:  # the number's pattern index (0012)
            numbered = [col(Dispute.number).startswith(prefix), *narrowed]
        if hits is not None:  # each dispute once: a full-text hit keeps its rank
            numbered.append(col(Dispute.number).not_in(hits.numbers()))
        by_number = session.exec(select(func.count()).where(*numbered)).one()
        if len(numbers) < PAGE_SIZE and offset + len(numbers) < in_text + by_number:
            numbers += session.exec(
                select(Dispute.number)
                .where(*numbered)
                # The number last: disputes filed in the same instant are paged in one order.
                .order_by(col(Dispute.filed_at).desc(), col(Dispute.number).desc())
                .offset(max(0, offset - in_text))
                .limit(PAGE_SIZE - len(numbers))
            )
    rows = {
        d.number: d for d in session.exec(select(Dispute).where(col(Dispute.number).in_(numbers)))
    }
    return [rows[n] for n in numbers if n in rows], in_text + by_number
