"""Who may act as a neutral on a dispute (SPEC section 3), and who is picked first.

Pure functions over plain values, so mediator assignment and board panels screen alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from models.payloads import ContestedObject

VENDOR = "vendor"
"""The organisation of the vendor's own staff (a person's organisation is this or a partner id)."""
SALES_FUNCTION = "sales"


@dataclass(frozen=True)
class Candidate:
    person_id: str
    name: str
    organisation: str
    function: str | None
    declared_conflicts: frozenset[str]
    active: bool
    case_limit: int
    open_cases: int
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class Stakes:
    """Who, besides the parties, has a stake in a dispute, as the directory says."""

    object_owners: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Person id -> 'kind:ref' labels of the contested accounts and territories they own."""
    exclusive_holders: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Partner id -> labels of the contested exclusive territories it holds."""
    direct_sales_parties: frozenset[str] = frozenset()
    """The parties that are the vendor's own direct sales (a channel-vs-direct conflict)."""
    partner_names: Mapping[str, str] = field(default_factory=dict)
    """Partner id -> name, so a reason names the partner as people know it."""

    def name(self, partner_id: str) -> str:
        return self.partner_names.get(partner_id) or partner_id

    def names(self, partner_ids: set[str] | frozenset[str]) -> str:
        return ", ".join(sorted(self.name(p) for p in partner_ids))


def conflict_of_interest(
    candidate: Candidate,
    *,
    party_ids: tuple[str, ...],
    contested_objects: tuple[ContestedObject, ...],
    stakes: Stakes,
) -> str | None:
    """Why this person cannot be neutral here, or None."""
    if candidate.organisation in party_ids:
        return f"{candidate.name} works for {stakes.name(candidate.organisation)}, a party"
    declared = candidate.declared_conflicts & set(party_ids)
    if declared:
        return f"{candidate.name} declared a conflict with {stakes.names(declared)}"
    labels = {o.label() for o in contested_objects}
    declared_objects = candidate.declared_conflicts & labels
    if declared_objects:
        return f"{candidate.name} declared a conflict with {', '.join(sorted(declared_objects))}"
    owned = stakes.object_owners.get(candidate.person_id)
    if owned:
        return f"{candidate.name} owns the contested {', '.join(sorted(owned))}"
    # Whoever holds an exclusive territory gains or loses by any ruling on it, party or not:
    # a conflict declared with the holder counts as one declared with a party.
    declared_holders = sorted(candidate.declared_conflicts & set(stakes.exclusive_holders))
    if declared_holders:
        holder = declared_holders[0]
        return (
            f"{candidate.name} declared a conflict with {stakes.name(holder)}, which holds the"
            " contested"
            f" exclusive {', '.join(sorted(stakes.exclusive_holders[holder]))}"
        )
    held = stakes.exclusive_holders.get(candidate.organisation)
    if held:
        return (
            f"{candidate.name} works for {stakes.name(candidate.organisation)}, which holds the"
            " contested"
            f" exclusive {', '.join(sorted(held))}"
        )
    if (
        stakes.direct_sales_parties
        and candidate.organisation == VENDOR
        and (candidate.function or "").strip().lower() == SALES_FUNCTION
    ):
        return (
            f"{candidate.name} is in the vendor's sales function, and"
            f" {stakes.names(stakes.direct_sales_parties)} (the vendor's direct sales)"
            " is a party"
        )
    return None


def ineligibility(
    candidate: Candidate,
    *,
    party_ids: tuple[str, ...],
    contested_objects: tuple[ContestedObject, ...],
    stakes: Stakes,
    excluded: tuple[str, ...],
    why_excluded: Mapping[str, str] | None = None,
) -> str | None:
    """Why this person cannot act here, or None. `why_excluded` says, per excluded person,
    what they did ("sat on the first panel"); without it, the reason is the general one."""
    if not candidate.active:
        return f"{candidate.name} is not active"
    if candidate.person_id in excluded:
        why = (why_excluded or {}).get(candidate.person_id)
        if why:
            return f"{candidate.name} {why}"
        return f"{candidate.name} recused or let an earlier offer of this dispute expire"
    conflict = conflict_of_interest(
        candidate,
        party_ids=party_ids,
        contested_objects=contested_objects,
        stakes=stakes,
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
