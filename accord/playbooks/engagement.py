"""The rules of engagement evaluated: a playbook's decision tables against a dispute's facts give
a recommended outcome and remedies, with an explanation clause by clause.

Pure: the facts come from the channel data (accord.channel.facts), the tables from the pinned
playbook. The same evaluation serves triage, the panel's case file and the backtest against
precedents, so all three say the same thing of the same facts.
"""

from __future__ import annotations

from accord.playbooks.library import Conditions, DecisionTable, Playbook
from accord.rules.consistency import clause_ref
from models.enums import DisputeCategory
from models.payloads.engagement import ClauseFinding, EngagementFacts, Recommendation

FACT_WORDS = {
    "first_registrant": "registered first",
    "within_protection": "within the protection window",
    "named_account": "the account is named to",
    "exclusive_territory": "the territory is exclusive to",
    "customer_choice": "the customer chose in writing",
    "price_in_band": "the price keeps within the tier's band",
    "lead_routed_by_rules": "the lead went where the routing rules send it",
    "exception": "an approved exception is held by",
}
"""How each fact reads in an explanation."""


def _said(name: str, value: object) -> str:
    if value is None:
        return f"{FACT_WORDS[name]}: not known from the channel data"
    if isinstance(value, bool):
        return f"{FACT_WORDS[name]}: {'yes' if value else 'no'}"
    return f"{FACT_WORDS[name]}: {'no party' if value == 'nobody' else f'the {value}'}"


def _unmet(conditions: Conditions, facts: EngagementFacts) -> list[str]:
    """The facts a rule asks for that do not hold, as said in the explanation."""
    unmet = []
    for name, values in conditions.asked().items():
        value = getattr(facts, name)
        if value is None or value not in values:
            unmet.append(_said(name, value))
    return unmet


def _met(conditions: Conditions, facts: EngagementFacts) -> str:
    asked = conditions.asked()
    if not asked:
        return "it applies whatever the facts"
    return "; ".join(_said(name, getattr(facts, name)) for name in asked)


def _finding(table: DecisionTable, facts: EngagementFacts) -> tuple[ClauseFinding, int | None]:
    looked_at: list[str] = []
    for number, rule in enumerate(table.rules):
        unmet = _unmet(rule.when, facts)
        if not unmet:
            remedies = ", ".join(r.value.replace("_", " ") for r in rule.remedies)
            return (
                ClauseFinding(
                    clause=table.clause,
                    applies=True,
                    explanation=(
                        f"applies: {_met(rule.when, facts)}. {rule.because}: recommends "
                        f"{rule.outcome.value.replace('_', ' ')}"
                        + (f" with {remedies}" if remedies else "")
                    ),
                ),
                number,
            )
        looked_at += [u for u in unmet if u not in looked_at]
    return (
        ClauseFinding(
            clause=table.clause,
            applies=False,
            explanation="does not apply: " + "; ".join(looked_at),
        ),
        None,
    )


def recommend(
    playbook: Playbook, category: DisputeCategory, facts: EngagementFacts, *, purpose: str
) -> Recommendation:
    """Every table of the category in the playbook's order; the first that applies decides."""
    if playbook.engagement is None:
        return Recommendation(
            playbook_version=playbook.version,
            purpose=purpose,
            outcome=None,
            facts=facts,
            tables=False,
        )
    findings: list[ClauseFinding] = []
    decided: tuple[DecisionTable, int] | None = None
    for table in playbook.engagement.tables:
        if category not in table.categories:
            continue
        finding, number = _finding(table, facts)
        if decided is not None and finding.applies:
            # Shown for completeness; an earlier clause takes precedence.
            finding = finding.model_copy(
                update={
                    "explanation": finding.explanation
                    + f" (not followed: {clause_ref(decided[0].clause)} comes first)"
                }
            )
        findings.append(finding)
        if decided is None and number is not None:
            decided = (table, number)
    if decided is None:
        return Recommendation(
            playbook_version=playbook.version,
            purpose=purpose,
            outcome=None,
            findings=tuple(findings),
            facts=facts,
        )
    table, number = decided
    rule = table.rules[number]
    return Recommendation(
        playbook_version=playbook.version,
        purpose=purpose,
        outcome=rule.outcome,
        remedies=tuple(rule.remedies),
        clause=table.clause,
        findings=tuple(findings),
        facts=facts,
    )
