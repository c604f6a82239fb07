"""A filing and its result, the pinned playbook terms a workflow needs (it never reads files
itself), and the parties it starts with."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import (
    Field,
    StringConstraints,
    model_validator,
)

from models.enums import (
    DisputeCategory,
    PartnerTier,
    RemedyKind,
)
from models.payloads.common import ContestedObject, Currency, Money, PartnerId, Payload, Text
from models.text import StoredLine, StoredProse

# --- filing ----------------------------------------------------------------------------------


class FilingSubmission(Payload):
    """What a partner submits; validated here for shape, by the filing service for meaning."""

    claimant_id: PartnerId
    respondent_ids: Annotated[list[PartnerId], Field(min_length=1, max_length=10)]
    category: DisputeCategory
    contested_objects: Annotated[list[ContestedObject], Field(min_length=1, max_length=50)]
    summary: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=5, max_length=300), StoredLine
    ]
    """One line: it becomes the subject of the dispute's emails."""
    facts: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=10, max_length=20_000), StoredProse
    ]
    desired_remedy: Text
    amount_at_stake: Money
    currency: Currency = "USD"
    occurred_on: date
    """When the conflict happened; the playbook's filing window counts from here."""
    filed_by: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320), StoredLine
    ]
    """Email of the partner contact filing."""
    submission_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=100), StoredLine] | None
    ) = None
    """Client-chosen idempotency key; without one, the submission's content is the key."""

    @model_validator(mode="after")
    def _parties_distinct(self) -> FilingSubmission:
        if self.claimant_id in self.respondent_ids:
            raise ValueError("respondent_ids: the claimant cannot also be a respondent")
        if len(set(self.respondent_ids)) != len(self.respondent_ids):
            raise ValueError("respondent_ids: a respondent is listed twice")
        return self


class FilingResult(Payload):
    number: str
    linked: bool
    """True when the submission matched an open dispute and was linked to it."""
    duplicate: bool
    """True when this exact submission had been received before."""
    message: str


# --- the pinned playbook terms a workflow needs (it never reads files itself) ------------------


class PlaybookTerms(Payload):
    version: str
    acceptance_days: int
    mediation_days: int
    information_days: int
    formal_review_days: int
    remedy_days: int = 5
    warning_fractions: tuple[float, ...]
    allowed_remedies: tuple[RemedyKind, ...]
    clauses: tuple[str, ...]
    board_calendar: str
    panel_functions: tuple[str, ...] = (
        "sales",
        "marketing",
        "product",
        "finance",
        "partner_management",
    )
    appeal_days: int = 5


class Party(Payload):
    partner_id: str
    name: str
    tier: PartnerTier
    region: str
    calendar: str
    contacts: tuple[str, ...]
    """Email addresses notified for this party."""
