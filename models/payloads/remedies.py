"""Remedies (SPEC section 2), each with typed fields, and the parties a remedy touches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
)

from models.enums import (
    RemedyKind,
)
from models.payloads.common import Currency, PartnerId, Payload, Reason, Ref
from models.text import StoredLine

# --- remedies (SPEC section 2), each with typed fields ------------------------------------


class TerritoryReassignment(Payload):
    kind: Literal[RemedyKind.TERRITORY_REASSIGNMENT] = RemedyKind.TERRITORY_REASSIGNMENT
    territory_code: Ref
    from_partner_id: PartnerId
    to_partner_id: PartnerId
    effective_on: date


class CommissionSplit(Payload):
    kind: Literal[RemedyKind.COMMISSION_SPLIT] = RemedyKind.COMMISSION_SPLIT
    deal_ref: Ref
    shares: dict[PartnerId, Annotated[Decimal, Field(gt=0, le=100)]]
    """Percent of the commission per partner; the shares add up to 100."""

    @field_validator("shares")
    @classmethod
    def _shares_total_100(cls, shares: dict[str, Decimal]) -> dict[str, Decimal]:
        if len(shares) < 2:
            raise ValueError("a commission split names at least two partners")
        if sum(shares.values()) != Decimal(100):
            raise ValueError(f"shares must add up to 100, they add up to {sum(shares.values())}")
        return shares


class RebateAdjustment(Payload):
    kind: Literal[RemedyKind.REBATE_ADJUSTMENT] = RemedyKind.REBATE_ADJUSTMENT
    partner_id: PartnerId
    amount: Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
    currency: Currency


class CoSellingResources(Payload):
    kind: Literal[RemedyKind.CO_SELLING_RESOURCES] = RemedyKind.CO_SELLING_RESOURCES
    partner_id: PartnerId
    resource: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StoredLine
    ]
    hours: Annotated[int, Field(gt=0, le=10_000)]


class LeadReroute(Payload):
    kind: Literal[RemedyKind.LEAD_REROUTE] = RemedyKind.LEAD_REROUTE
    lead_ref: Ref
    to_partner_id: PartnerId


class MdfCredit(Payload):
    kind: Literal[RemedyKind.MDF_CREDIT] = RemedyKind.MDF_CREDIT
    partner_id: PartnerId
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    currency: Currency


class WrittenWarning(Payload):
    kind: Literal[RemedyKind.WRITTEN_WARNING] = RemedyKind.WRITTEN_WARNING
    partner_id: PartnerId
    text: Reason


Remedy = Annotated[
    TerritoryReassignment
    | CommissionSplit
    | RebateAdjustment
    | CoSellingResources
    | LeadReroute
    | MdfCredit
    | WrittenWarning,
    Field(discriminator="kind"),
]


def remedy_parties(remedy: Remedy) -> set[str]:
    """Partner ids a remedy names, so a settlement cannot act on someone outside the dispute."""
    match remedy:
        case TerritoryReassignment():
            return {remedy.from_partner_id, remedy.to_partner_id}
        case CommissionSplit():
            return set(remedy.shares)
        case LeadReroute():
            return {remedy.to_partner_id}
        case _:
            return {remedy.partner_id}
