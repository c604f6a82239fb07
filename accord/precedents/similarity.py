"""Similar precedents: the past cases most like a dispute, each with a score and the reasons it
matched, combining text similarity (shared distinctive terms) with structured similarity (same
playbook clause, same category, a similar amount at stake).

Candidates come from two places so neither kind of similarity hides the other: the full-text
index (the dispute's distinctive words, any of them) and the most recent precedents of the same
category. Each candidate is then scored on the same four signals.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session, col, select

from accord.precedents.search import text_candidates
from accord.rules.consistency import clause_key, remedy_figure
from models.enums import DisputeCategory, RemedyKind
from models.payloads import (
    Remedy,
    RemedyFigure,
    SimilarPrecedent,
    SimilarPrecedents,
    SimilarRequest,
)
from models.tables import Precedent

CANDIDATES = 40
"""From each source: enough to find the best few, bounded so a triage stays quick."""
MIN_SCORE = 0.25
"""Below this a precedent shares too little to be worth a decider's time."""

WEIGHTS = {"clause": 0.35, "category": 0.15, "text": 0.35, "amount": 0.15}

STOP_WORDS = frozenset(
    """about above after again against also although another because been before being below
    between both could does doing down during each either even every from further have having
    here however into itself just more most much must neither never only other otherwise over
    same shall should since some such than that their theirs them then there these they this
    those through under until very were what when where whether which while whom whose will
    with within without would your yours partner partners dispute disputes said says""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[^\W\d_][\w'-]{3,}", re.UNICODE)

_REMEDY = TypeAdapter[Remedy](Remedy)


def distinctive_terms(text: str, limit: int = 30) -> list[str]:
    """The text's words worth matching on: no stop words, no short words, most frequent first."""
    words = [w.lower().strip("'-") for w in _WORD.findall(text)]
    counts = Counter(w for w in words if w not in STOP_WORDS and len(w) >= 4)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))][
        :limit
    ]


def find_similar(session: Session, request: SimilarRequest) -> SimilarPrecedents:
    terms = distinctive_terms(request.text)
    ids = {pid for pid, _ in text_candidates(session, terms[:12], CANDIDATES)}
    recent = session.exec(
        select(Precedent.id)
        .where(Precedent.category == request.category)
        .order_by(col(Precedent.decided_at).desc())
        .limit(CANDIDATES)
    ).all()
    ids.update(pid for pid in recent if pid is not None)
    rows = (
        session.exec(
            select(Precedent).where(
                col(Precedent.id).in_(ids), Precedent.dispute_number != request.number
            )
        ).all()
        if ids
        else []
    )
    wanted = set(terms)
    scored = [_score(row, request, wanted) for row in rows]
    matches = sorted(
        (m for m in scored if m.score >= MIN_SCORE),
        key=lambda m: (-m.score, m.dispute_number),
    )[: request.limit]
    return SimilarPrecedents(purpose=request.purpose, matches=tuple(matches), considered=len(rows))


def _score(row: Precedent, request: SimilarRequest, wanted: set[str]) -> SimilarPrecedent:
    score = 0.0
    reasons: list[str] = []
    ours = {clause_key(c) for c in request.clauses}
    shared_clauses = [c for c in row.clauses if clause_key(c) in ours]
    if shared_clauses:
        score += WEIGHTS["clause"]
        reasons.append("same clause: " + "; ".join(_short(c) for c in shared_clauses))
    if row.category is request.category or row.category == request.category.value:
        score += WEIGHTS["category"]
        reasons.append(f"same category: {DisputeCategory(row.category).value.replace('_', ' ')}")
    if wanted:
        theirs = set(distinctive_terms(f"{row.facts}\n{row.rationale}", limit=200))
        shared = [t for t in wanted if t in theirs]
        overlap = len(shared) / min(len(wanted), 15)
        if len(shared) >= 2:
            score += WEIGHTS["text"] * min(1.0, overlap)
            reasons.append("shared terms: " + ", ".join(sorted(shared, key=len, reverse=True)[:6]))
    theirs_amount = Decimal(row.amount_at_stake)
    if request.amount_at_stake > 0 and theirs_amount > 0:
        ratio = min(request.amount_at_stake, theirs_amount) / max(
            request.amount_at_stake, theirs_amount
        )
        if ratio >= Decimal("0.5"):
            score += WEIGHTS["amount"] * float(ratio)
            reasons.append(
                f"similar amount: {theirs_amount:,.0f} against {request.amount_at_stake:,.0f}"
                f" {request.currency}"
            )
    assert row.id is not None
    return SimilarPrecedent(
        precedent_id=row.id,
        dispute_number=row.dispute_number,
        score=round(score, 3),
        reasons=tuple(reasons),
        category=row.category,
        clauses=tuple(row.clauses),
        outcome=row.outcome,
        remedies=tuple(_figures(row)),
        amount_at_stake=theirs_amount,
        decided_at=row.decided_at,
    )


def _figures(row: Precedent) -> list[RemedyFigure]:
    claimant = row.parties[0].get("partner_id") if row.parties else None
    figures: list[RemedyFigure] = []
    for raw in row.remedies:
        try:
            figures.append(remedy_figure(_REMEDY.validate_python(raw), claimant))
        except ValidationError:
            # A remedy recorded under an older shape still counts by its kind.
            if raw.get("kind") in RemedyKind._value2member_map_:
                figures.append(RemedyFigure(kind=RemedyKind(raw["kind"])))
    return figures


def _short(clause: str) -> str:
    return clause if len(clause) <= 60 else clause[:57].rstrip() + "…"
