"""What a dispute's run starts with (`DisputeInput`), and the state one run hands the next when
it continues as new (`DisputeCarried`)."""

from __future__ import annotations

from datetime import datetime

from models.enums import (
    DisputeStage,
)
from models.payloads.actions import Appeal, CastVote, EvidenceItem, ProposeSettlement, TextRef
from models.payloads.activities import MediatorChoice, UnrecordedStep
from models.payloads.common import Actor, Payload
from models.payloads.deadlines import Deadline
from models.payloads.engagement import Recommendation
from models.payloads.filing import FilingSubmission, Party, PlaybookTerms
from models.payloads.state import (
    HistoryEntry,
    NoteView,
    OpenTask,
    PanelChoice,
    RemedyProgress,
    RulingView,
    SimilarPrecedents,
)


class AlertOrigin(Payload):
    """The conflict alert a channel manager made a dispute from (accord.disputes.conversion)."""

    alert_id: int
    converted_by: Actor
    evidence: EvidenceItem
    """The alert's evidence snapshot (who registered what, when, as detected), stored as a file
    and attached at filing."""


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
    origin: AlertOrigin | None = None
    """The conflict alert it was made from, if a channel manager converted one."""


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
    recommendation: Recommendation | None = None
    deadline_tasks: dict[str, str] = {}
    review_checked: bool | None = None
    update_ids: tuple[str, ...] = ()
    """Ids of the actions applied in earlier runs: Temporal refuses a repeated update id only
    within one run, so the workflow refuses these itself."""
    live_version: int = 0
    """The last live state sent to the read model (`LiveDelta.version`)."""


DisputeInput.model_rebuild()
