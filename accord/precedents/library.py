"""Precedents as people may see them: the full record for compliance, an anonymised view for
partners in which every party is only a tier and region label that k partners share, and the
free text is scrubbed of names, contacts, references, email addresses, telephone numbers and
amounts above a threshold (`ACCORD_PUBLIC_AMOUNT_THRESHOLD`); accord.precedents.anonymity says
how."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col

from accord.precedents.anonymity import (
    DEFAULT_AMOUNT_THRESHOLD,
    DEFAULT_K,
    Population,
    load_population,
    public_amount,
    scrub_text,
)
from accord.rules.consistency import clause_ref
from models.tables import Precedent, PrecedentFacet


def index_precedent(
    session: Session,
    precedent: Precedent,
    threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD,
    *,
    k: int = DEFAULT_K,
    population: Population | None = None,
) -> None:
    """Make a precedent searchable: its two texts (the full-text indexes follow them) and its
    facet rows, replacing any it had. Adds the precedent to the session. The anonymised text
    is made against the directory (`population`, read from the session when not given)."""
    population = population or load_population(session, k)
    for column, value in indexed_columns(precedent, population, threshold).items():
        setattr(precedent, column, value)
    session.add(precedent)
    session.flush()
    assert precedent.id is not None
    session.execute(delete(PrecedentFacet).where(col(PrecedentFacet.precedent_id) == precedent.id))
    session.add_all(
        PrecedentFacet(precedent_id=precedent.id, facet=facet, value=value)
        for facet, value in facet_values(precedent)
    )


def indexed_columns(
    precedent: Precedent, population: Population, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
) -> dict[str, str]:
    """The precedent's searchable columns: both texts, its facet lines and its facet words."""
    search_text, public_text = search_texts(precedent, population, threshold)
    facets = facet_values(precedent)
    # The text also names the single-valued facets: SQLite's full-text index holds it, so a
    # search narrowed by any facet is answered inside the index.
    single = [
        ("category", precedent.category.value),
        ("outcome", precedent.outcome),
        ("tier", precedent.claimant_tier.value),
        ("region", precedent.claimant_region),
    ]
    # What partners filter and count by: the claimant's label as the anonymised view shows it.
    public_tier, public_region = population.generalised(
        precedent.claimant_tier.value, precedent.claimant_region
    )
    single += [("public_tier", public_tier or ""), ("public_region", public_region or "")]
    return {
        "search_text": search_text,
        "public_text": public_text,
        "facet_values": "\n".join(f"{facet}={value}" for facet, value in [*facets, *single]),
        "facet_tokens": " ".join(facet_token(f, v) for f, v in [*facets, *single] if v),
    }


def facet_token(facet: str, value: str) -> str:
    """One word naming a facet's value ("remedymdfcredit"), as SQLite's full-text index holds
    it: matched as a single term, never as a phrase checked position by position."""
    return re.sub(r"[^a-z0-9]", "", f"{facet}{value}".lower())


def facet_values(precedent: Precedent) -> list[tuple[str, str]]:
    """(facet, value) rows for the many-valued facets: remedy kinds, clauses (by reference, as
    "RoE 3.1"), and the SLA: breached when any stage's deadline was, met when all were."""
    values = {("remedy", str(r.get("kind"))) for r in precedent.remedies if r.get("kind")}
    values |= {("clause", clause_ref(c)) for c in precedent.clauses if c.strip()}
    results = {e.get("result") for e in precedent.timeline if "deadline" in e}
    if results:
        values.add(("sla", "breached" if "breached" in results else "met"))
    return sorted(values)


def search_texts(
    precedent: Precedent, population: Population, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
) -> tuple[str, str]:
    """The full record's and the anonymised view's searchable text."""
    names = " ".join(str(p.get("name", "")) for p in precedent.parties)
    remedies = " ".join(
        " ".join(str(v) for v in r.values() if isinstance(v, str)) for r in precedent.remedies
    )
    full = "\n".join(
        [
            precedent.dispute_number,
            names,
            " ".join(precedent.clauses),
            precedent.facts,
            precedent.rationale,
            remedies,
        ]
    )
    view = anonymised(precedent, population, threshold)
    public = "\n".join(
        [
            " ".join([view["claimant"], *view["respondents"]]),
            " ".join(view["clauses"]),
            view["facts"],
            view["rationale"],
            " ".join(" ".join(str(v) for v in r.values()) for r in view["remedies"]),
        ]
    )
    return full, public


def anonymised(
    precedent: Precedent, population: Population, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
) -> dict[str, Any]:
    """What a partner may read of a precedent: no party names, ids, contacts or references
    anywhere, parties only as labels k partners of the directory share, and no amount above the
    threshold (in the text, the remedies or the amount at stake)."""
    parties = precedent.parties
    names = population.names(parties)
    objects = [str(o.get("ref", "")) for o in precedent.contested_objects]

    def scrub(text: str) -> str:
        return scrub_text(text, names, objects, threshold)

    claimant = (
        population.label(parties[0].get("tier"), parties[0].get("region"))
        if parties
        else population.label(precedent.claimant_tier.value, precedent.claimant_region)
    )
    return {
        "category": precedent.category.value,
        "playbook_version": precedent.playbook_version,
        "clauses": list(precedent.clauses),
        "claimant": claimant,
        "respondents": [population.label(p.get("tier"), p.get("region")) for p in parties[1:]],
        "facts": scrub(precedent.facts),
        "amount_at_stake": public_amount(Decimal(precedent.amount_at_stake), threshold),
        "outcome": precedent.outcome,
        "remedies": [
            {
                k: _public_remedy_value(k, v, scrub, threshold)
                for k, v in r.items()
                if k not in ("partner_id", "from_partner_id", "to_partner_id", "shares")
            }
            for r in precedent.remedies
        ],
        "rationale": scrub(precedent.rationale),
        "votes_summary": dict(precedent.votes_summary),
        "timeline": list(precedent.timeline),
        "decided_at": precedent.decided_at.isoformat(),
    }


REFERENCE_FIELDS = frozenset({"deal_ref", "lead_ref", "territory_code"})
"""Remedy fields naming a party's own object."""


def _public_remedy_value(
    key: str, value: Any, scrub: Callable[[str], str], threshold: Decimal
) -> Any:
    if key == "amount":
        try:
            return public_amount(abs(Decimal(str(value))), threshold)
        except InvalidOperation:
            return "[amount]"
    if key in REFERENCE_FIELDS:
        return "[reference]"
    return scrub(value) if isinstance(value, str) else value
