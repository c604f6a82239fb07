"""Past precedents written straight into the database, for tests that search or compare them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from accord.precedents.library import index_precedent
from models.enums import DisputeCategory, DisputeStage, PartnerTier
from models.tables import Dispute, DisputeParty, Precedent


def add_precedent(
    session: Session,
    number: str,
    *,
    category: DisputeCategory,
    outcome: str,
    facts: str,
    rationale: str,
    claimant: tuple[str, str, PartnerTier, str] = (
        "northwind",
        "Northwind Traders",
        PartnerTier.PLATINUM,
        "NA-East",
    ),
    clauses: tuple[str, ...] = ("RoE 3.1",),
    remedies: tuple[dict[str, Any], ...] = (),
    amount: Decimal = Decimal(1000),
    decided_at: datetime | None = None,
    timeline: tuple[dict[str, str], ...] = (),
    objects: tuple[dict[str, str], ...] = (),
) -> Precedent:
    """A closed dispute and its precedent, claimant against Contoso Systems."""
    pid, name, tier, region = claimant
    now = datetime.now(UTC)
    # Only the columns named here: a test of an upgrade stores this under an older schema,
    # which lacks the columns added to `dispute` since.
    session.execute(
        insert(Dispute).values(
            number=number,
            category=category,
            claimant_id=pid,
            respondent_ids=["contoso"],
            party_key=f"contoso|{pid}",
            contested_objects=list(objects),
            summary=facts[:60],
            facts=facts,
            desired_remedy="x",
            amount_at_stake=amount,
            currency="USD",
            occurred_on=now.date(),
            stage=DisputeStage.CLOSED,
            playbook_version="2026.1",
            filed_by="x@example.com",
            filed_at=now,
            updated_at=now,
            closed_at=now,
            outcome=outcome,
        )
    )
    session.add(DisputeParty(dispute_number=number, partner_id=pid, side="claimant"))
    session.add(DisputeParty(dispute_number=number, partner_id="contoso", side="respondent"))
    precedent = Precedent(
        dispute_number=number,
        category=category,
        playbook_version="2026.1",
        clauses=list(clauses),
        facts=facts,
        contested_objects=list(objects),
        outcome=outcome,
        remedies=list(remedies),
        rationale=rationale,
        timeline=list(timeline),
        claimant_tier=tier,
        claimant_region=region,
        amount_at_stake=amount,
        decided_at=decided_at or now,
        parties=[
            {
                "partner_id": pid,
                "name": name,
                "tier": tier.value,
                "region": region,
                "contacts": [f"nora@{pid}.example"],
            },
            {
                "partner_id": "contoso",
                "name": "Contoso Systems",
                "tier": "gold",
                "region": "NA-East",
                "contacts": ["carl@contoso.example"],
            },
        ],
    )
    index_precedent(session, precedent)
    return precedent
