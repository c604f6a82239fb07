"""What a workflow and its activities pass each other: audit records and live deltas,
assignment, mail, precedents, text checks, remedy orders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AliasChoices,
    Field,
    StringConstraints,
)

from models.enums import (
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    PartnerTier,
    Role,
    TaskKind,
)
from models.payloads.actions import EvidenceItem, TextRef
from models.payloads.common import Actor, ContestedObject, Payload
from models.payloads.deadlines import Deadline
from models.payloads.filing import Party
from models.payloads.remedies import Remedy
from models.payloads.state import InformationRequestView, NoteView, OfferView

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
    the workflow sent, for the read model (`accord.disputes.live`). Sections are replaced whole;
    notes, offers and information requests, which a busy dispute has many of, travel one by one."""

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


EventRecord.model_rebuild()
