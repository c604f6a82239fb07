"""Precedents as people may see them: the full record for compliance, an anonymised view for
partners in which every party is only its tier and region, and the free text is scrubbed of
party names, contacts, email addresses, telephone numbers and amounts above a threshold
(`ACCORD_PUBLIC_AMOUNT_THRESHOLD`)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col

from models.tables import Precedent, PrecedentFacet
from workflows.consistency import clause_ref

DEFAULT_AMOUNT_THRESHOLD = Decimal(10_000)
ROLE_MAILBOXES = frozenset(
    {"admin", "billing", "channel", "contact", "deals", "hello", "info", "mail", "noreply"}
    | {"office", "partner", "partners", "sales", "support", "team"}
)
"""Address parts that name a function, not a person: ordinary words, never scrubbed."""

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ()./-]{7,}\d(?![\w-])")
_CODES = "USD|EUR|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|INR|SGD"
_NUMBER = r"\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d+)?"
_SCALE = r"\s?(?:k|m|bn|thousand|million|billion)\b"
_AMOUNT = re.compile(
    rf"(?:(?P<sym>[$€£¥])\s?|\b(?P<pre>{_CODES})\s?)(?P<n1>{_NUMBER})(?P<s1>{_SCALE})?"
    rf"|\b(?P<n2>{_NUMBER})(?P<s2>{_SCALE})?\s?(?P<post>{_CODES}|dollars|euros?|pounds)\b",
    re.IGNORECASE,
)
_SCALES = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "million": 1_000_000}
_SCALES |= {"bn": 1_000_000_000, "billion": 1_000_000_000}


def amount_value(number: str, scale: str | None) -> Decimal | None:
    """The value of '125,000' / '1.250.000,50' / '40' with 'k': separators read as people
    write them (a final group of 1-2 digits after ',' or '.' is the decimals)."""
    digits = re.sub(r"[,.' ](?=\d{3}(?:\D|$))", "", number.strip())
    try:
        value = Decimal(digits.replace(",", "."))
    except InvalidOperation:
        return None
    return value * _SCALES.get((scale or "").strip().lower(), 1)


def scrub_amounts(text: str, threshold: Decimal) -> str:
    def replace(found: re.Match[str]) -> str:
        number = found["n1"] or found["n2"]
        value = amount_value(number, found["s1"] or found["s2"])
        if value is None or value <= threshold:
            return found[0]
        return f"[an amount over {threshold:,.0f}]"

    return _AMOUNT.sub(replace, text)


def party_label(party: dict[str, Any]) -> str:
    return (
        f"a {party.get('tier', 'registered')} partner in {party.get('region', 'an unnamed region')}"
    )


def _scrub(text: str, parties: list[dict[str, Any]], threshold: Decimal) -> str:
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
            # The person behind an address is named in letters too: "carl.meyer@" is Carl Meyer.
            local = str(contact).split("@")[0]
            for part in re.split(r"[._+-]", local):
                if len(part) >= 3 and part.isalpha() and part.lower() not in ROLE_MAILBOXES:
                    names.append((part, "[contact]"))
    # Addresses first: a name inside one would otherwise be replaced and leave the rest behind.
    text = _EMAIL.sub("[email]", text)
    for name, label in sorted(names, key=lambda item: -len(item[0])):
        text = re.sub(rf"\b{re.escape(name)}\b", label, text, flags=re.IGNORECASE)
    text = scrub_amounts(text, threshold)
    return _PHONE.sub(_phone, text)


def _phone(found: re.Match[str]) -> str:
    # Nine digits or more: a date (8) or a short reference is not a telephone number.
    return "[phone]" if sum(c.isdigit() for c in found[0]) >= 9 else found[0]


def index_precedent(
    session: Session, precedent: Precedent, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
) -> None:
    """Make a precedent searchable: its two texts (the full-text indexes follow them) and its
    facet rows, replacing any it had. Adds the precedent to the session."""
    precedent.search_text, precedent.public_text = search_texts(precedent, threshold)
    facets = facet_values(precedent)
    # The text also names the single-valued facets: SQLite's full-text index holds it, so a
    # search narrowed by any facet is answered inside the index.
    single = [
        ("category", precedent.category.value),
        ("outcome", precedent.outcome),
        ("tier", precedent.claimant_tier.value),
        ("region", precedent.claimant_region),
    ]
    precedent.facet_values = "\n".join(f"{facet}={value}" for facet, value in [*facets, *single])
    precedent.facet_tokens = " ".join(facet_token(f, v) for f, v in [*facets, *single])
    session.add(precedent)
    session.flush()
    assert precedent.id is not None
    session.execute(delete(PrecedentFacet).where(col(PrecedentFacet.precedent_id) == precedent.id))
    session.add_all(
        PrecedentFacet(precedent_id=precedent.id, facet=facet, value=value)
        for facet, value in facets
    )


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
    precedent: Precedent, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
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
    view = anonymised(precedent, threshold)
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
    precedent: Precedent, threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
) -> dict[str, Any]:
    """What a partner may read of a precedent: no party names, ids or contacts anywhere, and
    no amount above the threshold (in the text, the remedies or the amount at stake)."""
    parties = precedent.parties

    def scrub(text: str) -> str:
        return _scrub(text, parties, threshold)

    return {
        "category": precedent.category.value,
        "playbook_version": precedent.playbook_version,
        "clauses": list(precedent.clauses),
        "claimant": party_label(parties[0])
        if parties
        else (f"a {precedent.claimant_tier.value} partner in {precedent.claimant_region}"),
        "respondents": [party_label(p) for p in parties[1:]],
        "facts": scrub(precedent.facts),
        "amount_at_stake": _public_amount(Decimal(precedent.amount_at_stake), threshold),
        "outcome": precedent.outcome,
        "remedies": [
            {
                k: _public_remedy_value(k, v, parties, threshold)
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


def _public_amount(value: Decimal, threshold: Decimal) -> str:
    return f"{value:,.2f}" if value <= threshold else f"over {threshold:,.0f}"


def _public_remedy_value(
    key: str, value: Any, parties: list[dict[str, Any]], threshold: Decimal
) -> Any:
    if key == "amount":
        try:
            return _public_amount(abs(Decimal(str(value))), threshold)
        except InvalidOperation:
            return "[amount]"
    return _scrub(value, parties, threshold) if isinstance(value, str) else value
