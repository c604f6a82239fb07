"""The rules of engagement applied to one dispute: the facts they look at (`EngagementFacts`),
what each clause found (`ClauseFinding`) and what they recommend (`Recommendation`).

A fact is None when the channel data does not say (no contested registration, no account): a
rule that needs it does not apply, and the finding says the fact is unknown rather than
guessing."""

from __future__ import annotations

from datetime import date
from typing import Literal

from models.enums import DisputeCategory, RemedyKind, VoteOutcome
from models.payloads.common import ContestedObject, Payload

Side = Literal["claimant", "respondent", "nobody"]
"""Whose side a fact falls on: the claimant's, a respondent's, or no party's."""


class EngagementFacts(Payload):
    first_registrant: Side | None = None
    """Who holds the earliest valid registration of the contested customer (a registration
    that was approved or submitted, not rejected)."""
    within_protection: bool | None = None
    """Whether that registration was inside its protection window when the conflict occurred
    (its own expiry if it has one, else the playbook's protection days)."""
    named_account: Side | None = None
    """Whom the contested account is named to (the named-account carve-out)."""
    exclusive_territory: Side | None = None
    """Who holds the contested customer's territory exclusively."""
    customer_choice: Side | None = None
    """Whom the customer chose in writing, when the channel data records it."""
    price_in_band: bool | None = None
    """Whether the respondents' contested prices keep within their tier's pricing band."""
    lead_routed_by_rules: bool | None = None
    """Whether the contested lead went where the playbook's routing rules send it."""
    exception: Side | None = None
    """Whose approved exception to the rules covers the contested customer, in force on the
    day of the conflict."""
    evidence: tuple[str, ...] = ()
    """What the facts were read from, one line each (e.g. `REG-1 registered by p-acme on
    2026-03-01, approved`)."""


class EngagementRequest(Payload):
    number: str
    purpose: str
    """triage, review-N, or backtest."""
    playbook_version: str
    category: DisputeCategory
    claimant_id: str
    respondent_ids: tuple[str, ...]
    contested_objects: tuple[ContestedObject, ...]
    occurred_on: date


class ClauseFinding(Payload):
    clause: str
    """The table's clause as the playbook words it."""
    applies: bool
    """Whether one of its rules matched the facts."""
    explanation: str
    """Why it does or does not apply, naming the facts it looked at."""


class Recommendation(Payload):
    playbook_version: str
    purpose: str
    outcome: VoteOutcome | None
    """None when no rule of any table applies: the rules recommend nothing."""
    remedies: tuple[RemedyKind, ...] = ()
    clause: str | None = None
    """The clause whose rule decided."""
    findings: tuple[ClauseFinding, ...] = ()
    """Every table the category has, in the playbook's order: clause by clause."""
    facts: EngagementFacts = EngagementFacts()
    tables: bool = True
    """False when the pinned playbook has no decision tables (it predates them)."""
