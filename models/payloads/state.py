"""A dispute's state as its query and the read model show it, and the views inside it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from models.enums import (
    Action,
    DisputeCategory,
    DisputeStage,
    NoteVisibility,
    RemedyKind,
    Role,
    TaskKind,
    VoteOutcome,
)
from models.payloads.actions import TextRef
from models.payloads.common import ContestedObject, Payload
from models.payloads.deadlines import Deadline
from models.payloads.engagement import Recommendation
from models.payloads.remedies import Remedy

# --- state query ---------------------------------------------------------------------------------


class HistoryEntry(Payload):
    seq: int
    at: datetime
    actor: str
    role: Role
    action: str
    summary: str


class OpenTask(Payload):
    key: str
    kind: TaskKind
    assignee: str | None
    """Person id or contact email; None means any admin."""
    due_at: datetime | None


class InformationRequestView(Payload):
    id: str
    party_id: str
    questions: str
    """Empty while `questions_ref` is not yet read from the database (`accord.disputes.texts`)."""
    requested_at: datetime
    due_at: datetime
    answered_at: datetime | None
    answer: str | None
    questions_ref: TextRef | None = None
    answer_ref: TextRef | None = None


class OfferView(Payload):
    id: str
    remedies: tuple[Remedy, ...]
    terms: str
    proposed_at: datetime
    responses: dict[str, bool]
    """Partner id to accepted (True) or rejected (False)."""
    open: bool
    terms_ref: TextRef | None = None


class NoteView(Payload):
    at: datetime
    author: str
    text: str
    """Empty while `text_ref` is not yet read from the database (`accord.disputes.texts`)."""
    visibility: NoteVisibility
    caucus_partner_id: str | None
    text_ref: TextRef | None = None


class RemedyProgress(Payload):
    position: int
    kind: RemedyKind
    state: str
    """pending, verified, failed (waiting for an admin), or waived."""
    adapter: str | None = None
    error: str | None = None


class PanelMember(Payload):
    person_id: str
    name: str
    email: str
    function: str


class PanelRequest(Payload):
    number: str
    party_ids: tuple[str, ...]
    contested_objects: tuple[ContestedObject, ...]
    excluded_person_ids: tuple[str, ...]
    """Who may not sit: past panels, recused members and, when seats are refilled, those
    still sitting. A member holding one of the seats asked for (`functions` and the chair) in
    this round who is listed here has left it: the seat is given back and drawn again."""
    functions: tuple[str, ...]
    round: int = 0
    """The review round the seats are reserved for (0 in requests made before seats were)."""
    at: datetime | None = None
    """When the workflow asked: the new members' seated time (None in older requests)."""


class PanelChoice(Payload):
    members: tuple[PanelMember, ...]
    chair: PanelMember | None
    complete: bool
    reason: str
    """Who was drawn and why; when incomplete, which functions or chair could not be filled."""
    sponsor: PanelMember | None = None
    """The executive sponsor an overdue review escalates to."""


class VoteView(Payload):
    person_id: str
    cast_at: datetime
    outcome: VoteOutcome | None
    """None while the ballot is sealed."""
    remedies: tuple[Remedy, ...] = ()
    reasons: str | None = None
    reasons_ref: TextRef | None = None


class RulingView(Payload):
    round: int
    chair_id: str
    outcome: VoteOutcome
    remedies: tuple[Remedy, ...]
    rationale: str
    votes_relied_on: tuple[str, ...]
    clauses_applied: tuple[str, ...]
    precedents_cited: tuple[str, ...]
    against_majority_reason: str | None
    issued_at: datetime
    final: bool
    rationale_ref: TextRef | None = None
    """The stored rationale (`accord.disputes.texts`); `rationale` is empty until it is read in."""


class ReviewView(Payload):
    round: int
    panel: tuple[PanelMember, ...]
    chair: PanelMember | None
    votes: tuple[VoteView, ...]
    sealed: bool
    quorum: int
    appeal_deadline: datetime | None = None
    appealed_by: str | None = None


class RemedyFigure(Payload):
    """A past remedy as the consistency check compares it: its kind and, where it has one, its
    size (an amount, hours, or the claimant's share of a commission split)."""

    kind: RemedyKind
    magnitude: Decimal | None = None
    unit: str = ""
    """A currency code, "hours" or "percent"."""


class SimilarRequest(Payload):
    number: str
    purpose: str
    """triage, or review-N for the panel's case file in round N."""
    category: DisputeCategory
    clauses: tuple[str, ...]
    text: str
    """The dispute's summary and facts."""
    amount_at_stake: Decimal
    currency: str
    limit: int = 5


class SimilarPrecedent(Payload):
    precedent_id: int
    dispute_number: str
    score: float
    """0 to 1: text and structured similarity combined."""
    reasons: tuple[str, ...]
    """Why it matched: same clause, same category, shared terms, similar amount."""
    category: DisputeCategory
    clauses: tuple[str, ...]
    outcome: str
    remedies: tuple[RemedyFigure, ...]
    amount_at_stake: Decimal
    decided_at: datetime


class SimilarPrecedents(Payload):
    purpose: str
    """triage, or review-N for the panel's case file in round N."""
    matches: tuple[SimilarPrecedent, ...]
    considered: int
    """How many past precedents were compared."""


class CitationLookup(Payload):
    """What a ruling cites that the workflow cannot vouch for from what it holds."""

    playbook_version: str
    precedents: tuple[str, ...]
    """Dispute numbers of cited precedents the panel was not shown."""


class Citable(Payload):
    playbook_clauses: tuple[str, ...]
    """Every clause of the playbook version: its categories' and its decision tables'."""
    precedents: tuple[str, ...]
    """Those of the precedents asked about that exist."""


class DisputeState(Payload):
    number: str
    stage: DisputeStage
    category: DisputeCategory
    claimant_id: str
    respondent_ids: tuple[str, ...]
    mediator_id: str | None
    candidate_mediator_id: str | None
    playbook_version: str
    deadlines: tuple[Deadline, ...]
    clock_paused: bool
    open_tasks: tuple[OpenTask, ...]
    information_requests: tuple[InformationRequestView, ...]
    offers: tuple[OfferView, ...]
    notes: tuple[NoteView, ...]
    history: tuple[HistoryEntry, ...]
    linked_filings: tuple[str, ...]
    remedies: tuple[RemedyProgress, ...] = ()
    review: ReviewView | None = None
    rulings: tuple[RulingView, ...] = ()
    similar: SimilarPrecedents | None = None
    """The similar precedents attached at triage, or for the panel's case file once drawn."""
    recommendation: Recommendation | None = None
    """What the rules of engagement recommend: at triage, then for the panel's case file."""
    outcome: str | None
    allowed_actions: dict[str, tuple[Action, ...]]
    """Role to the actions this stage allows it, from the transition table."""

    def remedies_decided(self) -> tuple[Remedy, ...]:
        """The remedies `remedies` reports on, by position: the last ruling's, else those of
        the offer every party accepted; none while neither exists."""
        if self.rulings:
            return self.rulings[-1].remedies
        parties = {self.claimant_id, *self.respondent_ids}
        for offer in reversed(self.offers):
            answered = set(offer.responses)
            if not offer.open and answered >= parties and all(offer.responses.values()):
                return offer.remedies
        return ()
