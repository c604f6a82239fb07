"""The board's decided exceptions as precedents: what was approved, denied or ran its course,
found by the same words as the precedent search (words all present, "phrases", -exclusions) in
the clause, the scope, the partner's name and the decision's reason, and filtered by clause.

A list apart from the disputes' precedents: an exception is a decision of the board, not the
outcome of a dispute, and its reason is read only inside (compliance, the board, admins). The
exceptions are few (one a partner, an account and a clause at a time, at most a year each), so
the words are matched here, in Python, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlmodel import Session, col, select

from accord.platform.fulltext import MAX_QUERY, WORD, parse_query
from accord.rules.consistency import clause_key, clause_ref
from models.enums import ExceptionState, Role
from models.tables import ChannelException, Partner
from models.text import StoredLine

READERS = frozenset({Role.COMPLIANCE, Role.BOARD, Role.ADMIN})
"""Who searches the decided exceptions: a partner is told of its own, never of the board's
reasons for others'."""
DECIDED = (ExceptionState.APPROVED, ExceptionState.DENIED, ExceptionState.EXPIRED)
MOST_READ = 5_000
"""Decided exceptions a search reads, the newest: years of them."""


class ExceptionQuery(BaseModel):
    """A search of the decided exceptions, as the precedents page and API take it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    q: Annotated[str, StringConstraints(max_length=MAX_QUERY), StoredLine] = ""
    clause: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), StoredLine] | None
    ) = None
    """A clause's reference ("RoE 4.2") or its full wording."""
    state: ExceptionState | None = None


@dataclass(frozen=True)
class ExceptionHit:
    id: int
    number: str
    partner_id: str
    partner_name: str
    clause: str
    scope_kind: str
    scope_ref: str
    state: ExceptionState
    until: date
    requested_at: datetime
    decided_at: datetime | None
    decision_reason: str | None


@dataclass
class ExceptionResult:
    hits: list[ExceptionHit] = field(default_factory=list)
    total: int = 0
    notes: tuple[str, ...] = ()


def _words(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


def _has(words: list[str], wanted: str) -> bool:
    """Whether the words hold `wanted` (a word, or a phrase in order); a word matches the
    start of one ("territor" finds "territory"), as people type."""
    parts = _words(wanted)
    if not parts:
        return True
    if len(parts) == 1:
        return any(w.startswith(parts[0]) for w in words)
    span = len(parts)
    return any(words[i : i + span] == parts for i in range(len(words) - span + 1))


def search_exceptions(
    session: Session, query: ExceptionQuery, *, role: Role, limit: int = 50, offset: int = 0
) -> ExceptionResult:
    """The decided exceptions matching the query, newest decision first: a page of them, and
    how many match."""
    if role not in READERS:
        raise PermissionError(
            "the board's exceptions are searched by compliance, the board and admins"
        )
    parsed = parse_query(query.q)
    if not parsed.terms and not parsed.phrases and query.q.strip():
        return ExceptionResult(notes=parsed.notes)
    if query.state is not None and query.state not in DECIDED:
        return ExceptionResult(notes=(f"{query.state.value} exceptions are not decided yet",))
    states = (query.state,) if query.state is not None else DECIDED
    rows = list(
        session.exec(
            select(ChannelException)
            .where(col(ChannelException.state).in_(states))
            .order_by(col(ChannelException.decided_at).desc(), col(ChannelException.id).desc())
            .limit(MOST_READ + 1)
        )
    )
    notes = parsed.notes
    if len(rows) > MOST_READ:
        rows = rows[:MOST_READ]
        notes += (f"the newest {MOST_READ:,} decided exceptions were searched",)
    names = dict(session.exec(select(Partner.id, Partner.name)).all())
    wanted = clause_key(query.clause) if query.clause else None
    hits: list[ExceptionHit] = []
    for row in rows:
        if wanted is not None and clause_key(row.clause) != wanted:
            continue
        name = names.get(row.partner_id, row.partner_id)
        words = _words(
            " ".join(
                (
                    row.clause,
                    clause_ref(row.clause),
                    row.scope_kind,
                    row.scope_ref,
                    row.partner_id,
                    name,
                    row.decision_reason or "",
                    f"EXC-{row.id}",
                )
            )
        )
        if not all(_has(words, t) for t in (*parsed.terms, *parsed.phrases)):
            continue
        if any(_has(words, x) for x in parsed.excluded):
            continue
        assert row.id is not None
        hits.append(
            ExceptionHit(
                id=row.id,
                number=f"EXC-{row.id}",
                partner_id=row.partner_id,
                partner_name=name,
                clause=row.clause,
                scope_kind=row.scope_kind,
                scope_ref=row.scope_ref,
                state=row.state,
                until=row.until,
                requested_at=row.requested_at,
                decided_at=row.decided_at,
                decision_reason=row.decision_reason,
            )
        )
    return ExceptionResult(hits=hits[offset : offset + limit], total=len(hits), notes=notes)
