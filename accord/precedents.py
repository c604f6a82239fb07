"""Precedents as people may see them: the full record for compliance, an anonymised view for
partners in which every party is only its tier and region."""

from __future__ import annotations

import re
from typing import Any

from models.tables import Precedent


def party_label(party: dict[str, Any]) -> str:
    return (
        f"a {party.get('tier', 'registered')} partner in {party.get('region', 'an unnamed region')}"
    )


def _scrub(text: str, parties: list[dict[str, Any]]) -> str:
    # Longest names first, so "Contoso Systems" goes before "Contoso".
    names: list[tuple[str, str]] = []
    for party in parties:
        label = party_label(party)
        for name in (party.get("name"), party.get("partner_id")):
            if name:
                names.append((str(name), label))
                first_word = str(name).split()[0]
                if len(first_word) >= 4:
                    names.append((first_word, label))
        for contact in party.get("contacts", ()):
            names.append((str(contact), "[contact]"))
    for name, label in sorted(names, key=lambda item: -len(item[0])):
        text = re.sub(rf"\b{re.escape(name)}\b", label, text, flags=re.IGNORECASE)
    return text


def search_texts(precedent: Precedent) -> tuple[str, str]:
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
    view = anonymised(precedent)
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


def anonymised(precedent: Precedent) -> dict[str, Any]:
    """What a partner may read of a precedent: no party names, ids or contacts anywhere."""
    parties = precedent.parties
    return {
        "category": precedent.category.value,
        "playbook_version": precedent.playbook_version,
        "clauses": list(precedent.clauses),
        "claimant": party_label(parties[0])
        if parties
        else (f"a {precedent.claimant_tier.value} partner in {precedent.claimant_region}"),
        "respondents": [party_label(p) for p in parties[1:]],
        "facts": _scrub(precedent.facts, parties),
        "outcome": precedent.outcome,
        "remedies": [
            {
                k: _scrub(str(v), parties) if isinstance(v, str) else v
                for k, v in r.items()
                if k not in ("partner_id", "from_partner_id", "to_partner_id", "shares")
            }
            for r in precedent.remedies
        ],
        "rationale": _scrub(precedent.rationale, parties),
        "votes_summary": dict(precedent.votes_summary),
        "timeline": list(precedent.timeline),
        "decided_at": precedent.decided_at.isoformat(),
    }
