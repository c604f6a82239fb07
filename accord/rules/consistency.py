"""Consistency with precedent: does a proposed settlement or a draft ruling diverge from what was
decided before on the same playbook clause and facts pattern?

Pure functions of the dispute's attached similar precedents and the draft, so the workflow's
validators can run them (deterministic, no I/O) and the web can show the same answer before
anything is submitted. A divergence is not forbidden: the decider must acknowledge it with a
reason, and the acknowledgement goes into the record.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal

from models.enums import DisputeCategory
from models.payloads import (
    CommissionSplit,
    CoSellingResources,
    MdfCredit,
    RebateAdjustment,
    Remedy,
    RemedyFigure,
    SimilarPrecedent,
)

MIN_COMPARABLE = 2
"""Fewer comparable precedents than this say nothing about a pattern."""
RANGE_SLACK = Decimal("1.5")
"""An amount or a number of hours is 'well outside' the range used before beyond 1.5x its top or
below 1/1.5 of its bottom."""
SHARE_SLACK = Decimal(15)
"""A commission share is 'well outside' more than 15 percentage points beyond the range."""
MIN_ACKNOWLEDGEMENT = 20
_WORD = re.compile(r"[^\W\d_]{2,}")
"""A word: two or more letters, in any script."""


def clause_ref(clause: str) -> str:
    """A clause's reference ("RoE 3.1" of "RoE 3.1 First valid registration wins; ...")."""
    found = re.match(r"\s*([A-Za-z]+)\s*(\d+(?:\.\d+)*)", clause)
    return f"{found[1]} {found[2]}" if found else clause.strip()[:128]


def clause_key(clause: str) -> str:
    """A clause by its reference, so the full wording and the bare reference match."""
    return clause_ref(clause).lower()


def unknown_clauses(cited: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """The cited clauses whose reference is none of the known clauses', as cited, once each."""
    references = {clause_key(c) for c in known}
    return tuple(dict.fromkeys(c for c in cited if clause_key(c) not in references))


def canonical_clauses(cited: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """The cited clauses as the playbook words them, once each (a cited clause is matched by its
    reference; one the playbook does not have is kept as cited)."""
    wording: dict[str, str] = {}
    for clause in known:
        wording.setdefault(clause_key(clause), clause.strip())
    return tuple(dict.fromkeys(wording.get(clause_key(c), c.strip()) for c in cited))


def remedy_figure(remedy: Remedy, claimant_id: str | None) -> RemedyFigure:
    match remedy:
        case CommissionSplit():
            share = remedy.shares.get(claimant_id or "")
            if share is None:
                share = max(remedy.shares.values())
            return RemedyFigure(kind=remedy.kind, magnitude=share, unit="percent")
        case RebateAdjustment() | MdfCredit():
            return RemedyFigure(
                kind=remedy.kind, magnitude=abs(remedy.amount), unit=remedy.currency
            )
        case CoSellingResources():
            return RemedyFigure(kind=remedy.kind, magnitude=Decimal(remedy.hours), unit="hours")
        case _:
            return RemedyFigure(kind=remedy.kind)


def comparable(
    precedents: Iterable[SimilarPrecedent], category: DisputeCategory, clauses: Iterable[str]
) -> list[SimilarPrecedent]:
    """Precedents on the same clause (or, without clauses, the same category)."""
    wanted = {clause_key(c) for c in clauses}
    return [
        p
        for p in precedents
        if p.category is category and (not wanted or wanted & {clause_key(c) for c in p.clauses})
    ]


def divergences(
    precedents: Iterable[SimilarPrecedent],
    *,
    category: DisputeCategory,
    clauses: Iterable[str],
    outcome: str | None,
    remedies: Iterable[Remedy],
    claimant_id: str | None,
) -> tuple[str, ...]:
    """What the draft does differently from the comparable precedents, one sentence each.

    `outcome` is a ruling's outcome; a settlement has none to compare (every precedent that
    settled was, by definition, agreed).
    """
    pool = comparable(precedents, category, clauses)
    if len(pool) < MIN_COMPARABLE:
        return ()
    found: list[str] = []
    if outcome is not None:
        ruled = [p for p in pool if p.outcome != "settled"]
        if len(ruled) >= MIN_COMPARABLE:
            usual, count = Counter(p.outcome for p in ruled).most_common(1)[0]
            if outcome != usual and count * 2 > len(ruled):
                usual_ones = _numbers(p for p in ruled if p.outcome == usual)
                found.append(
                    f"outcome: {count} of {len(ruled)} comparable rulings were "
                    f"{usual.replace('_', ' ')} ({usual_ones}), this one is "
                    f"{outcome.replace('_', ' ')}"
                )
    for position, remedy in enumerate(remedies):
        figure = remedy_figure(remedy, claimant_id)
        kind = figure.kind.value.replace("_", " ")
        used = [(p, f) for p in pool for f in p.remedies if f.kind is figure.kind]
        if not used:
            with_remedies = [p for p in pool if p.remedies]
            if len(with_remedies) >= MIN_COMPARABLE:
                found.append(
                    f"remedies[{position}]: {kind} was used in none of the "
                    f"{len(with_remedies)} comparable precedents with remedies "
                    f"({_numbers(with_remedies)})"
                )
            continue
        sizes = [
            (p, f.magnitude) for p, f in used if f.magnitude is not None and f.unit == figure.unit
        ]
        if figure.magnitude is None or not sizes:
            continue
        low = min(size for _, size in sizes)
        high = max(size for _, size in sizes)
        if _well_outside(figure.magnitude, low, high, figure.unit):
            span = f"{_amount(low)}" if low == high else f"{_amount(low)} to {_amount(high)}"
            found.append(
                f"remedies[{position}]: {kind} of {_amount(figure.magnitude)} {figure.unit} is well"
                f" outside the {span} {figure.unit} used before ({_numbers(p for p, _ in sizes)})"
            )
    return tuple(found)


def pattern(
    precedents: Iterable[SimilarPrecedent],
    category: DisputeCategory,
    clauses: Iterable[str],
    say: Callable[[str], str] = lambda outcome: outcome.replace("_", " "),
) -> tuple[str, ...]:
    """What the comparable precedents decided, in a few lines: shown to the decider before they
    decide, so a divergence is no surprise."""
    pool = comparable(precedents, category, clauses)
    if not pool:
        return ()
    outcomes = Counter(p.outcome for p in pool)
    # Shown on the page only (never recorded): outcomes as the page says them (`say`).
    many = "comparable precedent" if len(pool) == 1 else "comparable precedents"
    lines = [
        f"{len(pool)} {many} ({_numbers(pool)}): "
        + ", ".join(f"{say(o)} {n}" for o, n in outcomes.most_common())
    ]
    sizes: dict[tuple[str, str], list[Decimal]] = {}
    for p in pool:
        for f in p.remedies:
            key = (f.kind.value.replace("_", " "), f.unit)
            sizes.setdefault(key, [])
            if f.magnitude is not None:
                sizes[key].append(f.magnitude)
    for (kind, unit), values in sorted(sizes.items()):
        if values:
            low, high = _amount(min(values)), _amount(max(values))
            span = low if low == high else f"{low} to {high}"
            lines.append(f"{kind}: {span} {unit} ({len(values)} used)")
        else:
            lines.append(f"{kind} (used)")
    return tuple(lines)


def _well_outside(value: Decimal, low: Decimal, high: Decimal, unit: str) -> bool:
    if unit == "percent":
        return value > high + SHARE_SLACK or value < low - SHARE_SLACK
    return value > high * RANGE_SLACK or value * RANGE_SLACK < low


def acknowledged(reason: str | None) -> bool:
    """A reason of substance: at least MIN_ACKNOWLEDGEMENT characters and three words of
    letters (twenty dots or invisible characters say nothing)."""
    if not reason or len(reason.strip()) < MIN_ACKNOWLEDGEMENT:
        return False
    return len(_WORD.findall(reason)) >= 3


def _numbers(precedents: Iterable[SimilarPrecedent]) -> str:
    numbers = sorted({p.dispute_number for p in precedents})
    return ", ".join(numbers[:5]) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
