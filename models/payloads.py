"""Frozen payloads: the only things that cross the Temporal boundary.

No field here has a default that reads a clock or a random source: inside a workflow those
would differ on replay. Times and ids come from `workflow.now()`, `workflow.uuid4()` or
from activities.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from models.enums import (
    Action,
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    NoteVisibility,
    ObjectKind,
    PartnerTier,
    RemedyKind,
    Role,
    TaskKind,
    VoteOutcome,
)
from models.text import StoredLine, StoredProse

# Every text field refuses what cannot be stored or shown (models.text): multi-line ones
# (StoredProse) keep tab and line breaks, one-line ones (StoredLine) do not.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), StoredProse
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=5_000), StoredProse
]
Ref = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), StoredLine
]
PartnerId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), StoredLine
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000), StoredProse]
Clause = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1_000), StoredLine
]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(Payload):
    """Who performs an action; resolved from the directory by the caller (CLI, web, API)."""

    id: str
    """Person id, or a partner contact's email."""
    role: Role
    name: str = ""
    partner_id: str | None = None
    """For partner users: the organisation they act for."""


SYSTEM = Actor(id="accord", role=Role.SYSTEM, name="Accord")


class ContestedObject(Payload):
    kind: ObjectKind
    ref: Ref

    def label(self) -> str:
        return f"{self.kind.value}:{self.ref}"


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


class DisputeInput(Payload):
    number: str
    filing: FilingSubmission
    filed_at: datetime
    claimant: Party
    respondents: tuple[Party, ...]
    terms: PlaybookTerms
    admin_email: str
    carried: DisputeCarried | None = None
    """The state a run handed on when it continued as new (None for a dispute's first run)."""


# --- deadlines -----------------------------------------------------------------------------------


class DeadlineRequest(Payload):
    purpose: str
    calendar: str
    playbook_version: str
    starts_at: datetime
    business_days: int
    warning_fractions: tuple[float, ...]


class ShiftDeadlineRequest(Payload):
    """Move a deadline by the business time that passed (same calendar) between two instants."""

    deadline: Deadline
    paused_from: datetime
    paused_until: datetime
    playbook_version: str


class ExtendDeadlineRequest(Payload):
    deadline: Deadline
    business_days: int
    reason: str
    playbook_version: str
    warnings_from: datetime | None = None
    """When the extension is made: the start of the remaining running window over which the
    warnings not yet sent are put (None in requests made before: over the whole window)."""
    warned: tuple[float, ...] = ()
    """Fractions whose warnings were already sent: they keep their instants."""


class WarningPoint(Payload):
    fraction: float
    at: datetime


class Deadline(Payload):
    purpose: str
    calendar: str
    starts_at: datetime
    due_at: datetime
    business_days: int
    warnings: tuple[WarningPoint, ...]
    explanation: str

    def warning_at(self, fraction: float) -> datetime | None:
        """When the owner is warned that `fraction` (or more) of the business time is used:
        the earliest warning at that fraction or past it; None if the playbook has none."""
        return min((p.at for p in self.warnings if p.fraction >= fraction), default=None)


# --- human actions (workflow updates), one payload each --------------------------------------


class ActionPayload(Payload):
    actor: Actor


class TextRef(Payload):
    """A text stored in the database (`accord.texts`) by the adapter that received it: what the
    workflow carries instead of the body, so a busy dispute's history stays small."""

    id: Annotated[str, StringConstraints(pattern=r"^tx-[0-9a-f]{32}$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]
    """Characters in the body."""


def dump_said(model: BaseModel, field: str, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """`model` as JSON with its text `field` inline or as its stored reference, whichever it
    has, the other left out: an inline text dumps exactly as it did before texts were stored
    (a vote's commitment, an audit entry's content)."""
    unused = field if getattr(model, f"{field}_ref") is not None else f"{field}_ref"
    return model.model_dump(mode="json", exclude={*(exclude or set()), unused})


def _one_of(payload: BaseModel, field: str) -> None:
    """A text field is sent either inline (histories from before texts were stored, and the
    adapters' own input) or as a stored text's reference, never both, never neither."""
    inline = getattr(payload, field) is not None
    stored = getattr(payload, f"{field}_ref") is not None
    if inline == stored:
        raise ValueError(f"{field}: give the text or a stored text's reference (one of them)")


class AcceptAssignment(ActionPayload):
    impartiality_declaration: Reason
    """The mediator's declaration that they have no interest in the outcome."""


class Recuse(ActionPayload):
    reason: Reason


class AddNote(ActionPayload):
    text: Text | None = None
    text_ref: TextRef | None = None
    visibility: NoteVisibility = NoteVisibility.SHARED
    caucus_partner_id: PartnerId | None = None
    """With a caucus note: the side that may read it."""

    @model_validator(mode="after")
    def _caucus_names_a_side(self) -> AddNote:
        _one_of(self, "text")
        if self.visibility is NoteVisibility.CAUCUS and not self.caucus_partner_id:
            raise ValueError("caucus_partner_id: a caucus note names the side it is shared with")
        if self.visibility is NoteVisibility.SHARED and self.caucus_partner_id:
            raise ValueError("caucus_partner_id: only a caucus note names a side")
        return self


class RequestInformation(ActionPayload):
    party_id: PartnerId
    questions: Text | None = None
    questions_ref: TextRef | None = None

    @model_validator(mode="after")
    def _questions_given(self) -> RequestInformation:
        _one_of(self, "questions")
        return self


class AnswerInformation(ActionPayload):
    request_id: Ref
    answer: Text | None = None
    answer_ref: TextRef | None = None

    @model_validator(mode="after")
    def _answer_given(self) -> AnswerInformation:
        _one_of(self, "answer")
        return self


Acknowledgement = Comment | None
"""Why a decision diverges from the precedents on the same clause; required only when it does."""


class ProposeSettlement(ActionPayload):
    remedies: Annotated[tuple[Remedy, ...], Field(min_length=1, max_length=20)]
    terms: Text | None = None
    divergence_acknowledgement: Acknowledgement = None
    terms_ref: TextRef | None = None

    @model_validator(mode="after")
    def _terms_given(self) -> ProposeSettlement:
        _one_of(self, "terms")
        return self


class RespondToOffer(ActionPayload):
    offer_id: Ref
    accept: bool
    comment: Comment = ""


class DeclareImpasse(ActionPayload):
    reason: Reason


class Dismiss(ActionPayload):
    reason: Reason


class Withdraw(ActionPayload):
    reason: Reason


class ExtendDeadline(ActionPayload):
    business_days: Annotated[int, Field(ge=1, le=60)]
    reason: Reason
    deadline: Literal["acceptance", "mediation", "information"] | None = None
    """The deadline the admin means; refused if another is running by the time it applies.
    Without it, the one running when the extension reached the dispute."""


class AssignMediator(ActionPayload):
    person_id: PartnerId
    reason: Reason


class RetryRemedy(ActionPayload):
    position: int
    reason: str = ""


class WaiveRemedy(ActionPayload):
    position: int
    reason: Reason


Reasons = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=20, max_length=20_000), StoredProse
]
"""Written reasons: at least a sentence."""


class CastVote(ActionPayload):
    outcome: VoteOutcome
    remedies: Annotated[tuple[Remedy, ...], Field(max_length=20)] = ()
    reasons: Reasons | None = None
    reasons_ref: TextRef | None = None

    @model_validator(mode="after")
    def _reasons_given(self) -> CastVote:
        _one_of(self, "reasons")
        return self


class IssueRuling(ActionPayload):
    outcome: VoteOutcome
    remedies: Annotated[tuple[Remedy, ...], Field(max_length=20)] = ()
    rationale: Reasons | None = None
    votes_relied_on: Annotated[tuple[PartnerId, ...], Field(min_length=1, max_length=20)]
    """Panelists whose votes the ruling rests on."""
    clauses_applied: Annotated[tuple[Clause, ...], Field(min_length=1, max_length=20)]
    precedents_cited: Annotated[tuple[Ref, ...], Field(max_length=50)] = ()
    against_majority_reason: Acknowledgement = None
    """Required when the outcome differs from the majority of the votes cast."""
    divergence_acknowledgement: Acknowledgement = None
    rationale_ref: TextRef | None = None

    @model_validator(mode="after")
    def _rationale_given(self) -> IssueRuling:
        _one_of(self, "rationale")
        return self


class EvidenceRef(Payload):
    description: Text
    ref: Ref
    """Where it is: a document id, a URL, an attachment name."""


class Appeal(ActionPayload):
    grounds: Reasons
    new_evidence: Annotated[tuple[EvidenceRef, ...], Field(min_length=1, max_length=20)]


EvidenceDescription = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2_000), StoredProse
]


class EvidenceItem(Payload):
    """An uploaded file, already stored by its content hash, as it is attached to a dispute."""

    id: Annotated[str, StringConstraints(pattern=r"^ev-[0-9a-f]{8,32}$")]
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255), StoredLine]
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=128), StoredLine]
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    description: EvidenceDescription = ""
    visibility: EvidenceVisibility = EvidenceVisibility.PARTIES
    side_partner_id: PartnerId | None = None

    @model_validator(mode="after")
    def _side_named(self) -> EvidenceItem:
        if self.visibility is EvidenceVisibility.SIDE and not self.side_partner_id:
            raise ValueError("side_partner_id: evidence limited to one side names that side")
        if self.visibility is not EvidenceVisibility.SIDE and self.side_partner_id:
            raise ValueError("side_partner_id: only evidence limited to one side names a side")
        return self


class AddEvidence(ActionPayload):
    evidence: EvidenceItem


class MailMessage(Payload):
    """An email received from a party (or a neutral) about a dispute, as it is recorded."""

    inbound_id: int
    """The stored raw message, kept as the original of record."""
    sender: Annotated[str, StringConstraints(max_length=320), StoredLine]
    subject: Annotated[str, StringConstraints(max_length=400), StoredLine]
    """Cleaned by the intake (models.text.clean) before it gets here."""
    text: Annotated[str, StringConstraints(max_length=50_000), StoredProse] | None = None
    """The new part of the message: quoted history and signature stripped (inline in
    histories from before texts were stored)."""
    side_partner_id: str | None
    """The sender's side: the message is read by that side and the neutrals; None for staff
    (neutrals only)."""
    evidence_ids: tuple[str, ...] = ()
    text_ref: TextRef | None = None
    """The stored text of the message (`accord.texts`)."""

    @model_validator(mode="after")
    def _text_given(self) -> MailMessage:
        _one_of(self, "text")
        return self


class AddMessage(ActionPayload):
    message: MailMessage


class RedrawPanel(ActionPayload):
    reason: Reason


class UnsealBallot(ActionPayload):
    """The chair opens the ballot before every vote is in (a quorum has voted); recorded."""

    reason: Reason


class LinkFiling(ActionPayload):
    filing_key: str
    summary: str


class ActionResult(Payload):
    number: str
    stage: DisputeStage
    message: str
    reference: str | None = None
    """Id of what the action created (an information request, an offer), when it created one."""
    step: int | None = None
    """The workflow's last record, made or begun, when it answered: the read model shows the
    action's consequences once it has recorded this step (None in answers from before it)."""
    live_version: int | None = None
    """The version of the live state (`accord.live`) the read model must hold by then: a change
    it refused (found behind) arrives whole afterwards, with a later version."""


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
    """Empty while `questions_ref` is not yet read from the database (`accord.texts`)."""
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
    """Empty while `text_ref` is not yet read from the database (`accord.texts`)."""
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
    """The stored rationale (`accord.texts`); `rationale` is empty until it is read in."""


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
    """Every clause of the playbook version, whatever category the playbook attaches it to."""
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


# --- activity payloads ---------------------------------------------------------------------


class TaskOpen(Payload):
    key: str
    number: str
    kind: TaskKind
    title: str
    assignee_id: str | None
    assignee_role: Role
    due_at: datetime | None
    at: datetime


class RecordAssignment(Payload):
    round: int
    person_id: str
    state: AssignmentState


class UnrecordedStep(Payload):
    """A step of the workflow whose audit entry was refused for good, told to the next entry so
    that the gap it leaves says why."""

    step: int
    action: str
    reason: Annotated[str, StringConstraints(max_length=1_000)]


class EventRecord(Payload):
    number: str
    step: int = Field(validation_alias=AliasChoices("step", "seq"))
    """The workflow's count of its records: the idempotency key of this one, never its place in
    the chain (the activity gives it the next seq). Tasks scheduled by workers from before the
    step was told apart from the seq carry it as `seq`."""
    at: datetime
    actor: Actor
    action: str
    content: dict[str, object]
    stage: DisputeStage | None = None
    """When set, the read model's stage (and the deadline fields) change in the same write."""
    deadline: Deadline | None = None
    clear_deadline: bool = False
    mediator_id: str | None = None
    """A person id sets the dispute's mediator; an empty string clears it."""
    outcome: str | None = None
    assignment: RecordAssignment | None = None
    open_tasks: tuple[TaskOpen, ...] = ()
    done_tasks: tuple[str, ...] = ()
    """Keys of tasks completed by this action."""
    cancelled_tasks: tuple[str, ...] = ()
    """Keys of tasks this action made moot."""
    evidence: EvidenceItem | None = None
    """Evidence attached by this action, written with the entry."""
    unrecorded: tuple[UnrecordedStep, ...] = ()
    """Steps since the last entry that were refused for good: the gap entry names them."""
    notices: tuple[NotificationRequest, ...] = ()
    """The emails this entry sends, put in the outbox in the entry's own transaction: the entry
    and its mail stand or fall together (histories before RECORD_NOTICES_PATCH enqueue them
    with a send_notification activity each, after the entry)."""
    live: LiveDelta | None = None
    """The live state's change this entry goes with, for the read model (same transaction)."""


class LiveDelta(Payload):
    """What changed in the dispute's live state (`DisputeWorkflow.get_state`) since the last one
    the workflow sent, for the read model (`accord.live`). Sections are replaced whole; notes,
    offers and information requests, which a busy dispute has many of, travel one by one."""

    version: int
    """This live state's number: one more than the last the workflow sent."""
    base: int | None = None
    """The version this change applies on top of; None: `sections` is the whole state."""
    sections: dict[str, object] = {}
    """Changed fields of DisputeState (JSON), each replacing the stored one."""
    notes_from: int = 0
    """Position of the first of `notes` (the notes before it were sent already)."""
    notes: tuple[NoteView, ...] = ()
    offers: tuple[OfferView, ...] = ()
    """New or changed offers, by id (the others are as last sent)."""
    information_requests: tuple[InformationRequestView, ...] = ()
    """New or changed requests, by id."""


class LiveProjection(Payload):
    """A live state changed without an audit entry, or one the read model could not apply."""

    number: str
    at: datetime
    live: LiveDelta


class LiveApplied(Payload):
    applied: bool
    """False: the read model was not at the version the change builds on."""


class Recorded(Payload):
    """The entry's place in the chain, which the workflow keeps (and publishes) as the chain
    head held outside the database."""

    seq: int
    hash: str
    live_behind: bool = False
    """The read model is not at the version the record's live change builds on (it missed
    one, or the dispute began before it was kept): the workflow sends its whole state."""
    at: datetime | None = None
    """The entry's time as the trail holds it: the time the run that wrote it stamped it. A
    replay gets it from the record's marker, and takes it over: replayed after a task a busy
    worker ended early, the code after the record runs one task earlier, on an earlier clock
    (None in markers written before it)."""


class MediatorRequest(Payload):
    number: str
    round: int
    party_ids: tuple[str, ...]
    contested_objects: tuple[ContestedObject, ...]
    excluded_person_ids: tuple[str, ...]
    chosen_person_id: str | None = None
    """An admin's pick: screened like anyone else, but not ranked."""
    at: datetime


class SeatRelease(Payload):
    """Give back the mediator's seat reserved for a round the workflow did not offer."""

    number: str
    round: int
    person_id: str
    """Released only if the round's seat is still this person's (an admin's pick may have
    taken the round over meanwhile)."""


class MediatorChoice(Payload):
    person_id: str | None
    name: str | None = None
    email: str | None = None
    calendar: str | None = None
    reason: str
    """Why this mediator (or why nobody) was chosen, for the audit trail."""


class NotificationRequest(Payload):
    key: str
    """Workflow id + business step; with the recipient, the outbox's uniqueness key."""
    number: str
    template: str
    recipients: tuple[str, ...]
    context: dict[str, object]
    in_reply_to: str | None = None
    """The Message-ID answered, for a reply to a received email; else the dispute's thread."""


class NotificationResult(Payload):
    queued: int
    sent: int
    """0 since the outbox relay sends (kept: stored histories hold results with it)."""


class PrecedentRecord(Payload):
    number: str
    category: DisputeCategory
    playbook_version: str
    clauses: tuple[str, ...]
    facts: str
    contested_objects: tuple[ContestedObject, ...]
    outcome: str
    remedies: tuple[Remedy, ...]
    rationale: str
    """Empty when `rationale_ref` names the stored text: the activity reads it in."""
    timeline: tuple[dict[str, str], ...]
    claimant_tier: PartnerTier
    claimant_region: str
    amount_at_stake: Decimal
    decided_at: datetime
    parties: tuple[Party, ...] = ()
    """Claimant first; the full record names them, the anonymised view never does."""
    precedents_cited: tuple[str, ...] = ()
    votes_summary: dict[str, int] = {}
    """Outcome to number of panel votes, for a ruled dispute."""
    rationale_ref: TextRef | None = None


class CarriedClock(Payload):
    deadline: Deadline
    warned: tuple[float, ...] = ()


class CarriedInformation(Payload):
    id: str
    party_id: str
    questions: str
    requested_at: datetime
    deadline: Deadline
    answered_at: datetime | None = None
    answer: str | None = None
    questions_ref: TextRef | None = None
    answer_ref: TextRef | None = None


class CarriedOffer(Payload):
    id: str
    view: ProposeSettlement
    proposed_at: datetime
    responses: dict[str, bool] = {}
    open: bool = True


class CarriedPick(Payload):
    choice: MediatorChoice
    actor: Actor
    reason: str


class CarriedVote(Payload):
    person_id: str
    vote: CastVote
    cast_at: datetime


class DisputeCarried(Payload):
    """Everything a dispute's workflow holds, handed from one run to the next when it continues
    as new (its history grew large). Each field has a default, so a field added later is simply
    absent (and defaulted) in state carried before it."""

    stage: DisputeStage
    seq: int
    head: tuple[int, str] | None = None
    """The audit chain head (seq, hash) of the last entry written."""
    unrecorded: tuple[UnrecordedStep, ...] = ()
    chained: bool | None = None
    projected: DisputeStage
    serial: bool | None = None
    history: tuple[HistoryEntry, ...] = ()
    stage_log: tuple[tuple[DisputeStage, datetime], ...] = ()
    round: int = 0
    candidate: MediatorChoice | None = None
    mediator: MediatorChoice | None = None
    excluded: tuple[str, ...] = ()
    admin_pick: CarriedPick | None = None
    clocks: dict[str, CarriedClock] = {}
    breaches: tuple[str, ...] = ()
    info: tuple[CarriedInformation, ...] = ()
    pending_info: str | None = None
    offers: tuple[CarriedOffer, ...] = ()
    agreed: str | None = None
    """The id of the offer every party accepted."""
    impasse: str | None = None
    notes: tuple[NoteView, ...] = ()
    tasks: tuple[OpenTask, ...] = ()
    linked: tuple[str, ...] = ()
    evidence_ids: tuple[str, ...] = ()
    inbound_ids: tuple[int, ...] = ()
    outcome: str | None = None
    wakeups: int = 0
    remedies: tuple[RemedyProgress, ...] = ()
    remedy_keys: dict[int, str] = {}
    remedies_done: bool = False
    remedy_waiting: int | None = None
    remedy_decision: str | None = None
    review_round: int = 0
    panel: PanelChoice | None = None
    awaiting_panel: bool = False
    redraw_requested: bool = False
    past_panelists: tuple[str, ...] = ()
    vacancies: tuple[str, ...] = ()
    votes: tuple[CarriedVote, ...] = ()
    unsealed: bool = False
    ruling: RulingView | None = None
    rulings: tuple[RulingView, ...] = ()
    appeal: Appeal | None = None
    appeal_deadline: datetime | None = None
    similar: SimilarPrecedents | None = None
    deadline_tasks: dict[str, str] = {}
    review_checked: bool | None = None
    update_ids: tuple[str, ...] = ()
    """Ids of the actions applied in earlier runs: Temporal refuses a repeated update id only
    within one run, so the workflow refuses these itself."""
    live_version: int = 0
    """The last live state sent to the read model (`LiveDelta.version`)."""


DisputeInput.model_rebuild()
ShiftDeadlineRequest.model_rebuild()
ExtendDeadlineRequest.model_rebuild()
EventRecord.model_rebuild()


class DisputeOutcome(Payload):
    number: str
    stage: DisputeStage
    outcome: str | None


class TextCheck(Payload):
    """Stored texts an action refers to: each must be this dispute's, with this hash."""

    number: str
    refs: tuple[TextRef, ...]


class Ack(Payload):
    """Returned by activities that only write: what they did, for the history."""

    done: str


class RemedyOrder(Payload):
    """Apply one remedy of a decision; `key` is its idempotency key everywhere."""

    key: str
    number: str
    position: int
    remedy: Remedy


class RemedyWaiver(Payload):
    key: str
    reason: str
    actor_id: str


class RemedyResult(Payload):
    key: str
    state: str
    adapter: str
    external_ref: str | None
