"""Human actions (workflow updates), one payload each, and their result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from models.enums import (
    DisputeStage,
    EvidenceVisibility,
    NoteVisibility,
    VoteOutcome,
)
from models.payloads.common import Actor, Clause, Comment, PartnerId, Payload, Reason, Ref, Text
from models.payloads.remedies import Remedy
from models.text import StoredLine, StoredProse

# --- human actions (workflow updates), one payload each --------------------------------------


class ActionPayload(Payload):
    actor: Actor


class TextRef(Payload):
    """A text stored in the database (`accord.disputes.texts`) by the adapter that received it: what
    the workflow carries instead of the body, so a busy dispute's history stays small."""

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
"""Why a decision diverges from the precedents on the same clause, or departs from what the
rules of engagement recommend; required only when it does."""


class ProposeSettlement(ActionPayload):
    remedies: Annotated[tuple[Remedy, ...], Field(min_length=1, max_length=20)]
    terms: Text | None = None
    divergence_acknowledgement: Acknowledgement = None
    departure_reason: Acknowledgement = None
    """Required when the settlement departs from the rules of engagement's recommendation."""
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
    departure_reason: Acknowledgement = None
    """Required when the ruling departs from the rules of engagement's recommendation."""
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
    """The stored text of the message (`accord.disputes.texts`)."""

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
    evidence: EvidenceItem | None = None
    """A converted conflict alert's snapshot, attached with the link."""


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
    """The version of the live state (`accord.disputes.live`) the read model must hold by then: a
    change it refused (found behind) arrives whole afterwards, with a later version."""
