"""Who may act as a neutral on a dispute (SPEC section 3), and who is picked first.

Pure functions over plain values, so mediator assignment and board panels screen alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.payloads import ContestedObject


@dataclass(frozen=True)
class Candidate:
    person_id: str
    name: str
    organisation: str
    declared_conflicts: frozenset[str]
    active: bool
    case_limit: int
    open_cases: int
    last_assigned_at: datetime | None


def conflict_of_interest(
    candidate: Candidate,
    *,
    party_ids: tuple[str, ...],
    contested_objects: tuple[ContestedObject, ...],
    owned_objects: frozenset[str],
) -> str | None:
    """Why this person cannot be neutral here, or None.

    `owned_objects` holds 'kind:ref' labels of the contested accounts and territories this
    person owns in the directory.
    """
    if candidate.organisation in party_ids:
        return f"{candidate.name} works for {candidate.organisation}, a party"
    declared = candidate.declared_conflicts & set(party_ids)
    if declared:
        return f"{candidate.name} declared a conflict with {', '.join(sorted(declared))}"
    labels = {o.label() for o in contested_objects}
    declared_objects = candidate.declared_conflicts & labels
    if declared_objects:
        return f"{candidate.name} declared a conflict with {', '.join(sorted(declared_objects))}"
    if owned_objects:
        return f"{candidate.name} owns the contested {', '.join(sorted(owned_objects))}"
    return None


def ineligibility(
    candidate: Candidate,
    *,
    party_ids: tuple[str, ...],
    contested_objects: tuple[ContestedObject, ...],
    owned_objects: frozenset[str],
    excluded: tuple[str, ...],
) -> str | None:
    if not candidate.active:
        return f"{candidate.name} is not active"
    if candidate.person_id in excluded:
        return f"{candidate.name} recused or let an earlier offer of this dispute expire"
    conflict = conflict_of_interest(
        candidate,
        party_ids=party_ids,
        contested_objects=contested_objects,
        owned_objects=owned_objects,
    )
    if conflict:
        return conflict
    if candidate.open_cases >= candidate.case_limit:
        return f"{candidate.name} is at their case limit ({candidate.case_limit})"
    return None


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Least loaded first; ties go to whoever has waited longest since their last assignment."""
    never = datetime.min
    return sorted(
        candidates,
        key=lambda c: (
            c.open_cases,
            c.last_assigned_at.replace(tzinfo=None) if c.last_assigned_at else never,
            c.person_id,
        ),
    )
