"""The rules of engagement backtested: today's decision tables evaluated on the facts of each
precedent of a period, and how often what they recommend agrees with what was decided.

A precedent's facts are those its dispute recorded with the recommendation it was shown (the
audit trail's last `recommendation` entry), so a later change to the channel data does not
rewrite the past; a precedent decided before the tables existed has its facts read from the
channel data as it is now (and is counted as such). "Agrees" is the check a decider meets:
the decision does not depart from the recommendation (accord.rules.engagement), so a ruling
has the recommended outcome and gives the recommended remedies, and a settlement gives the
recommended remedies (or none, where the rules deny).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import Session, col, select

from accord.channel.facts import CHUNK, ChannelReader, establish
from accord.playbooks.engagement import recommend
from accord.playbooks.library import Playbook
from accord.rules.consistency import clause_ref
from accord.rules.engagement import departures
from models.enums import DisputeCategory, ObjectKind, RemedyKind
from models.payloads.common import ContestedObject
from models.payloads.engagement import EngagementFacts, EngagementRequest
from models.tables import Dispute, DisputeEvent, DisputeParty, Precedent

DECIDED_ON_MERITS = ("settled", "uphold", "partly_uphold", "deny")
"""The outcomes a recommendation can be compared with (a withdrawal or a dismissal decides
nothing of the rules)."""
LISTED = 15
"""Disputes looked up per statement (a database caps the values one statement binds)."""


class Disagreement(BaseModel):
    model_config = ConfigDict(frozen=True)
    number: str
    recommended: str
    decided: str
    why: str


class Backtest(BaseModel):
    model_config = ConfigDict(frozen=True)
    playbook_version: str | None
    """The tables evaluated (the playbook in force today); None when it has none."""
    precedents: int
    """Precedents of the period decided on their merits."""
    recommended: int
    """Those the tables recommend something for."""
    agreed: int
    recorded_facts: int
    """Of `recommended`, evaluated on the facts their dispute recorded (the rest on today's
    channel data)."""
    by_clause: dict[str, tuple[int, int]]
    """The deciding clause's reference to (recommended, agreed)."""
    disagreements: list[Disagreement]

    @property
    def agreement_rate(self) -> float | None:
        return None if not self.recommended else self.agreed / self.recommended


def _recorded_facts(session: Session, numbers: list[str]) -> dict[str, EngagementFacts]:
    """Each dispute's last recorded recommendation's facts."""
    found: dict[str, EngagementFacts] = {}
    for at in range(0, len(numbers), CHUNK):
        rows = session.exec(
            select(DisputeEvent.dispute_number, DisputeEvent.content)
            .where(col(DisputeEvent.dispute_number).in_(numbers[at : at + CHUNK]))
            .where(DisputeEvent.action == "recommendation")
            .order_by(col(DisputeEvent.seq))
        )
        for number, content in rows:
            if isinstance(content, dict) and isinstance(content.get("facts"), dict):
                try:
                    found[number] = EngagementFacts.model_validate(content["facts"])
                except ValidationError:
                    # Recorded by another release, or damaged: read from the channel data.
                    found.pop(number, None)
    return found


def _requests(
    session: Session, playbook: Playbook, pairs: list[tuple[Precedent, Dispute]]
) -> dict[str, EngagementRequest]:
    """What the facts of each precedent are read from (its parties from one statement per
    CHUNK precedents, not one per precedent)."""
    numbers = [p.dispute_number for p, _ in pairs]
    sides: dict[str, list[DisputeParty]] = {}
    for at in range(0, len(numbers), CHUNK):
        for party in session.exec(
            select(DisputeParty).where(
                col(DisputeParty.dispute_number).in_(numbers[at : at + CHUNK])
            )
        ):
            sides.setdefault(party.dispute_number, []).append(party)
    requests: dict[str, EngagementRequest] = {}
    for precedent, dispute in pairs:
        parties = sides.get(precedent.dispute_number, [])
        objects = []
        for item in precedent.contested_objects:
            try:
                objects.append(ContestedObject(kind=ObjectKind(item["kind"]), ref=item["ref"]))
            except (KeyError, TypeError, ValueError):
                continue  # an object of a kind the rules do not read
        requests[precedent.dispute_number] = EngagementRequest(
            number=precedent.dispute_number,
            purpose="backtest",
            playbook_version=playbook.version,
            category=precedent.category,
            claimant_id=next((p.partner_id for p in parties if p.side == "claimant"), ""),
            respondent_ids=tuple(p.partner_id for p in parties if p.side == "respondent"),
            contested_objects=tuple(objects),
            occurred_on=dispute.occurred_on,
        )
    return requests


def backtest(
    session: Session, playbook: Playbook, start: datetime | None, end: datetime | None
) -> Backtest:
    """The tables of `playbook` against the precedents of the disputes filed in the period."""
    query = (
        select(Precedent, Dispute)
        .join(Dispute, col(Dispute.number) == col(Precedent.dispute_number))
        .where(col(Precedent.outcome).in_(DECIDED_ON_MERITS))
        .order_by(col(Precedent.decided_at), col(Precedent.dispute_number))
    )
    if start is not None:
        query = query.where(Dispute.filed_at >= start)
    if end is not None:
        query = query.where(Dispute.filed_at <= end)
    pairs = list(session.exec(query))
    precedents = [p for p, _ in pairs]
    if playbook.engagement is None:
        return Backtest(
            playbook_version=None,
            precedents=len(precedents),
            recommended=0,
            agreed=0,
            recorded_facts=0,
            by_clause={},
            disagreements=[],
        )
    recorded = _recorded_facts(session, [p.dispute_number for p in precedents])
    unrecorded = [(p, d) for p, d in pairs if p.dispute_number not in recorded]
    requests = _requests(session, playbook, unrecorded)
    reader = ChannelReader(session)
    reader.prefetch(requests.values())
    recommended = agreed = from_record = 0
    clauses: Counter[str] = Counter()
    clauses_agreed: Counter[str] = Counter()
    disagreements: list[Disagreement] = []
    for precedent in precedents:
        facts = recorded.get(precedent.dispute_number)
        if facts is None:
            facts = establish(reader, requests[precedent.dispute_number], playbook.engagement)
        found = recommend(playbook, DisputeCategory(precedent.category), facts, purpose="backtest")
        if found.outcome is None:
            continue
        recommended += 1
        from_record += precedent.dispute_number in recorded
        reference = clause_ref(found.clause or "")
        clauses[reference] += 1
        outcome = None if precedent.outcome == "settled" else precedent.outcome
        departed = departures(found, outcome=outcome, remedies=_kinds(precedent.remedies))
        if not departed:
            agreed += 1
            clauses_agreed[reference] += 1
        elif len(disagreements) < LISTED:
            remedies = ", ".join(k.value for k in found.remedies)
            disagreements.append(
                Disagreement(
                    number=precedent.dispute_number,
                    recommended=found.outcome.value + (f" with {remedies}" if remedies else ""),
                    decided=precedent.outcome,
                    why="; ".join(departed),
                )
            )
    return Backtest(
        playbook_version=playbook.version,
        precedents=len(precedents),
        recommended=recommended,
        agreed=agreed,
        recorded_facts=from_record,
        by_clause={c: (n, clauses_agreed[c]) for c, n in sorted(clauses.items())},
        disagreements=disagreements,
    )


def _kinds(remedies: list[dict[str, Any]]) -> list[RemedyKind]:
    kinds = []
    for remedy in remedies:
        try:
            kinds.append(RemedyKind(str(remedy.get("kind"))))
        except ValueError:
            continue
    return kinds
