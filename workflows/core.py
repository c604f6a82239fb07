"""Shared state and plumbing of DisputeWorkflow: the audit trail, tasks, notifications.

Every entry goes through `_record`, one at a time, so the audit trail's sequence numbers and
hash chain follow the order things happened; task inbox changes ride on the same write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from accord.rules import audit
    from accord.rules.consistency import (
        acknowledged,
        canonical_clauses,
        clause_ref,
        divergences,
        unknown_clauses,
    )
    from accord.rules.engagement import departures
    from accord.rules.transitions import why_not
    from activities.assignment import AssignmentActivities
    from activities.citations import CitationActivities
    from activities.deadlines import BUILT_IN_CALENDAR, DeadlineActivities
    from activities.engagement import EngagementActivities
    from activities.notify import NotificationActivities
    from activities.records import RecordActivities
    from activities.texts import TextActivities
    from models import search_attributes
    from models.enums import (
        Action,
        DisputeStage,
        Role,
        TaskKind,
    )
    from models.payloads import (
        SYSTEM,
        ActionPayload,
        ActionResult,
        Actor,
        Appeal,
        CarriedClock,
        CarriedInformation,
        CarriedOffer,
        CarriedPick,
        CarriedVote,
        CastVote,
        Citable,
        CitationLookup,
        Deadline,
        DeadlineRequest,
        DisputeCarried,
        DisputeInput,
        DisputeState,
        EngagementRequest,
        EventRecord,
        EvidenceItem,
        HistoryEntry,
        LiveApplied,
        LiveDelta,
        LiveProjection,
        MediatorChoice,
        MediatorRequest,
        NoteView,
        NotificationRequest,
        OpenTask,
        PanelChoice,
        Party,
        PrecedentRecord,
        ProposeSettlement,
        Recommendation,
        RecordAssignment,
        Remedy,
        RemedyProgress,
        RulingView,
        SeatRelease,
        SimilarPrecedents,
        SimilarRequest,
        TaskOpen,
        TextCheck,
        TextRef,
        UnrecordedStep,
        remedy_parties,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))

_T = TypeVar("_T")

# Patches, in the order they were introduced (see README, "Changing the workflow").
REMEDY_STAGE_PATCH = "remedy-stage"
"""Settlements go through the remedy stage before closing (histories before it close at once)."""

FORMAL_REVIEW_PATCH = "formal-review"
"""Disputes in formal review are reviewed by a board panel (histories before it just wait)."""

REMEDY_DEADLINE_PATCH = "remedy-deadline"
"""The remedy stage has its own deadline; passing it escalates to the admins."""

SEARCH_ATTRIBUTES_PATCH = "search-attributes"
"""The workflow keeps its search attributes (stage, category, deadline, tier, region) current."""

SIMILAR_PRECEDENTS_PATCH = "similar-precedents"
"""Similar precedents are attached at triage and to each panel's case file, and settlements and
rulings that diverge from them need an acknowledgement."""

DECISION_LOCK_PATCH = "decision-lock"
"""Every state-changing handler and every decision of the lifecycle holds one lock, and each
action's rule is checked again once it holds it; an agreement or an impasse ends mediation at
once; a terminal stage is never left (histories before it interleave as they always did)."""

FRESH_APPEAL_PANEL_PATCH = "fresh-appeal-panel"
"""An appeal empties the review: no panel, votes, ruling or vacancies of the first round remain,
so the first panel can neither vote nor rule while the fresh one is being composed."""

REVIEW_DECISIONS_PATCH = "review-decisions"
"""A ruling is compared with the precedents on the clause the pinned playbook attaches to the
dispute's category as well as on the clauses it cites; it may cite only clauses of the pinned
playbook and precedents that exist; the chair's dismissal needs a reason of substance (histories
before it compare on the cited clauses alone and take any citation and any reason)."""

DEADLINE_FALLBACK_PATCH = "deadline-fallback"
"""A deadline the activity refuses for good (the person's or party's calendar is not in the
pinned playbook, the playbook is not on the worker) runs on the board calendar, or failing that
on the built-in weekday one; the reason is recorded, the explanation says so, and the admins
get a task and an email. A pause that cannot be measured leaves the deadline where it was, the
same way (histories before it fail the workflow or the action)."""

AUDIT_CHAIN_PATCH = "audit-chain-head"
"""Each record's step (`_seq`) is only its idempotency key; the activity gives the entry its seq
and returns seq and hash, which the workflow keeps as the chain head and publishes in
AccordAuditHead after each record; a step refused for good is named, with why, in the gap entry
that precedes the next entry, and leaves the query's history (histories before it publish no
head; their entries get the gap too, without the why)."""

EXTENSION_WINDOW_PATCH = "extension-remaining-window"
"""An extension puts the warnings not yet sent at their fractions of the remaining running
window, from the extension to the new deadline (`DeadlineActivities.extend_deadline`), not of
the whole window since the start, which counted a pause as running time (histories before it
recompute every warning over the whole window)."""

TEXT_REFS_PATCH = "text-refs"
"""Notes, emails, information requests and answers arrive as stored texts (`accord.disputes.texts`):
the update carries the text's id and hash, checked by an activity before anything changes, and the
audit entry holds them instead of the body (histories before it carry their texts inline and
never check one)."""

CONTINUE_AS_NEW_PATCH = "continue-as-new"
"""In mediation, when Temporal suggests it (the history is growing large), the dispute waits
for the actions in progress and continues as new with all its state (`DisputeCarried`); the
new run goes on with mediation where it stood (histories before it never continue as new)."""

LATE_CONTINUE_AS_NEW_PATCH = "continue-as-new-review-remedy"
"""Formal review (waiting for a panel, the votes or the ruling, each round), the appeal window
and the remedy stage (waiting for an admin to retry or waive a remedy) also continue as new when
Temporal suggests it; the new run resumes at that waiting point (histories before it continue
as new only in triage and mediation)."""

RECORD_NOTICES_PATCH = "record-notices"
"""An audit entry's emails go into the outbox in the entry's own activity and transaction
(`EventRecord.notices`), not in a send_notification activity each after it: one round trip
per decision instead of two or three (histories before it enqueue each after the entry)."""

LIVE_READ_MODEL_PATCH = "live-read-model"
"""Each record carries what changed in the dispute's live state (`get_state`) since the last
one it sent (`LiveDelta`), for the read model the pages read (`accord.disputes.live`). A read model
found behind, or a change whose record was refused for good, is sent at once by `project_live`
(histories before it send changes only with their records: the whole state with the first
record after one found behind or refused)."""

REFUSED_EVIDENCE_PATCH = "refused-evidence-forgotten"
"""Evidence whose record was refused for good is not on the record: the same item sent again is
looked at afresh, not answered "already added" (histories before it kept the refused id)."""

REPLACEMENT_REASONS_PATCH = "replacement-shortage-reasons"
"""A seat left vacant by a recusal that nobody can fill is put to the admins with why each
board member of that seat is out (the draw's reason: 'sat on the first panel', 'recused from
this panel', a conflict), not only which seat (histories before it say only the seat)."""

LOCAL_RECORD_PATCH = "local-record"
"""Each audit entry is written by a local activity (record_event run by the worker inside the
workflow task that asks for it, its result one marker in the history) and publishes its search
attributes in one upsert: an action is one workflow task instead of two and an activity task,
which took most of the engine's CPU per decision (histories before it schedule an activity and
upsert the stage and the audit head separately). record_event is keyed by (dispute, step), so a
workflow task lost mid-record and retried finds its entry."""

PATCHES_AT_START_PATCH = "patches-at-start"
"""Asked in a run's first workflow task: a run that has it answers every patch of PATCHES yes
from the start, without asking each where the code reaches it (`_patched`). Asked there, a patch
that comes right after a local record could be missed on replay: a busy worker may complete the
task with the record's marker before the workflow has seen the result (a query answered
meanwhile, a task heartbeat), so the code after the record, and the patch's marker, land in the
next task; replayed, the record resolves in the first task, the patch is asked there, one task
before its marker, and the dispute's workflow fails replay for good (histories before it ask
each patch where the code reaches it)."""

RECOMMENDATION_PATCH = "engagement-recommendation"
"""The rules of engagement recommend an outcome at triage and in the panel's case file, and a
settlement or ruling that departs from it needs a reason (histories before it recommend
nothing). Asked in `__init__`, after PATCHES_AT_START_PATCH."""

PATCHES = (
    REMEDY_STAGE_PATCH,
    FORMAL_REVIEW_PATCH,
    REMEDY_DEADLINE_PATCH,
    SEARCH_ATTRIBUTES_PATCH,
    SIMILAR_PRECEDENTS_PATCH,
    DECISION_LOCK_PATCH,
    FRESH_APPEAL_PANEL_PATCH,
    REVIEW_DECISIONS_PATCH,
    DEADLINE_FALLBACK_PATCH,
    AUDIT_CHAIN_PATCH,
    EXTENSION_WINDOW_PATCH,
    TEXT_REFS_PATCH,
    CONTINUE_AS_NEW_PATCH,
    LATE_CONTINUE_AS_NEW_PATCH,
    RECORD_NOTICES_PATCH,
    LIVE_READ_MODEL_PATCH,
    REFUSED_EVIDENCE_PATCH,
    REPLACEMENT_REASONS_PATCH,
    LOCAL_RECORD_PATCH,
)
"""The patches before PATCHES_AT_START_PATCH. A later patch is not added here: a run that
started before it must still answer no. Ask it in `__init__` (the first task) and keep the
answer, and list it in LATER_PATCHES."""

LATER_PATCHES = (RECOMMENDATION_PATCH,)
"""The patches after PATCHES_AT_START_PATCH, each asked once in the run's `__init__`."""

LIVE_WHOLE = frozenset({"history", "notes", "offers", "information_requests", "allowed_actions"})
"""Fields of DisputeState not sent as sections: the audit trail and the transition table give
the history and the actions; notes, offers and requests travel one by one."""

MAX_CARRIED_BYTES = 1_500_000
"""The largest state handed to the next run (Temporal refuses a payload over 2 MB)."""

CARRIED_UPDATE_IDS = 2_000
"""How many ids of applied actions a run hands on (Temporal keeps at most 2,000 a run)."""


async def _as_activity(call: Awaitable[_T], activity_type: str) -> _T:
    """A local activity's outcome in a regular activity's shape. temporalio raises the failure
    of a local activity bare (the activity's ApplicationError itself), where a regular
    activity's is an ActivityError around it; every handler here takes the latter."""
    try:
        return await call
    except (ApplicationError, ActivityTimeout) as cause:
        raise ActivityError(
            "local activity error",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=activity_type,
            activity_id="",
            retry_state=None,
        ) from cause


REMEDY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=5,
    non_retryable_error_types=["RemedyRefused"],
)
"""A remedy that still fails after this becomes an admin task."""

MEDIATION_STAGES = frozenset({DisputeStage.MEDIATION, DisputeStage.AWAITING_PARTY})

REVIEW_STAGES = frozenset(
    {DisputeStage.FORMAL_REVIEW, DisputeStage.APPEAL_WINDOW, DisputeStage.REMEDY}
)
"""Where a run continued as new after mediation resumes (a settlement's remedies aside)."""


@dataclass
class InformationRequest:
    id: str
    party_id: str
    questions: str
    requested_at: datetime
    deadline: Deadline
    answered_at: datetime | None = None
    answer: str | None = None
    questions_ref: TextRef | None = None
    answer_ref: TextRef | None = None


@dataclass
class Offer:
    id: str
    view: ProposeSettlement
    proposed_at: datetime
    responses: dict[str, bool] = field(default_factory=dict)
    open: bool = True


@dataclass
class LiveSent:
    """What the read model holds of the live state, as digests of what was sent last."""

    version: int
    sections: dict[str, bytes]
    items: dict[str, bytes]
    """"offers:<id>" and "information_requests:<id>" to the digest of that item."""
    notes: int


def _digest(value: object) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class Clock:
    """One running deadline and the warnings already sent for it."""

    deadline: Deadline
    warned: set[float] = field(default_factory=set)


@dataclass(frozen=True)
class Notice:
    """An email an audit entry sends: its template, recipients and what the template adds to
    the dispute's context."""

    template: str
    recipients: tuple[str, ...]
    extra: dict[str, Any]


def notice(template: str, recipients: tuple[str, ...], **extra: Any) -> Notice:
    return Notice(template, tuple(recipients), extra)


class LiveView(Protocol):
    def __call__(self, *, whole: bool) -> DisputeState: ...


class DisputeCore:
    _live_view: LiveView
    """The state `get_state` answers, without notes and history unless `whole`. It takes in the
    review and the remedies, which the layers above this one hold, so the workflow class that has
    them all gives it (`DisputeActions._live_view`); the live read model here sends its changes."""

    def __init__(self) -> None:
        self._patches_at_start = False
        """Whether this run started on code with every patch of PATCHES: asked by the
        workflow's `__init__`, in the run's first task (PATCHES_AT_START_PATCH)."""
        self._d: DisputeInput
        self._stage = DisputeStage.FILED
        # The audit trail's state: a continue-as-new carries these three over as they are.
        self._seq = 0
        """Records asked for so far: each record's step, its idempotency key (AUDIT_CHAIN_PATCH),
        not its place in the chain, which the activity gives."""
        self._head: tuple[int, str] | None = None
        """Seq and hash of the last entry written: the chain head held outside the database."""
        self._unrecorded: list[UnrecordedStep] = []
        """Steps refused for good since the last entry written, for the gap entry before the
        next one."""
        self._chained: bool | None = None
        """Whether this dispute records under AUDIT_CHAIN_PATCH, once known."""
        self._noticed: bool | None = None
        """Whether this run's entries carry their emails (RECORD_NOTICES_PATCH), once known."""
        self._local_record: bool | None = None
        """Whether this run records by local activity (LOCAL_RECORD_PATCH), once known."""
        self._record_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        """The decision lock: held by the lifecycle except while it waits, and by each
        state-changing update for its whole body (samples-python safe_message_handlers)."""
        self._projected = DisputeStage.FILED
        """The stage last written to the read model."""
        self._serial: bool | None = None
        """Whether this dispute runs under the decision lock (its patch), once known; validators
        read this, as they may not ask `workflow.patched` themselves (they are read-only)."""
        self._history: list[HistoryEntry] = []
        self._stage_log: list[tuple[DisputeStage, datetime]] = []
        self._round = 0
        self._candidate: MediatorChoice | None = None
        self._mediator: MediatorChoice | None = None
        self._excluded: list[str] = []
        self._admin_pick: tuple[MediatorChoice, Actor, str] | None = None
        self._clocks: dict[str, Clock] = {}
        self._breaches: list[str] = []
        self._info: dict[str, InformationRequest] = {}
        self._pending_info: str | None = None
        self._offers: dict[str, Offer] = {}
        self._agreed: Offer | None = None
        self._impasse: str | None = None
        self._notes: list[NoteView] = []
        self._tasks: dict[str, OpenTask] = {}
        self._linked: list[str] = []
        self._evidence_ids: list[str] = []
        self._inbound_ids: list[int] = []
        self._outcome: str | None = None
        self._wakeups = 0
        self._remedies: dict[int, RemedyProgress] = {}
        self._remedy_keys: dict[int, str] = {}
        self._remedies_done = False
        self._remedy_waiting: int | None = None
        """Position of the remedy an admin must retry or waive, while one is."""
        self._remedy_decision: str | None = None
        # formal review
        self._review_round = 0
        self._panel: PanelChoice | None = None
        self._awaiting_panel = False
        self._redraw_requested = False
        self._past_panelists: list[str] = []
        """First-round panelists and anyone who recused from a panel: never drawn again."""
        self._vacancies: list[str] = []
        """Panel seats (a function, or 'chair') emptied by a recusal and not yet refilled."""
        self._votes: dict[str, tuple[CastVote, datetime]] = {}
        self._unsealed = False
        self._ruling: RulingView | None = None
        self._rulings: list[RulingView] = []
        self._appeal: Appeal | None = None
        self._appeal_deadline: datetime | None = None
        self._similar: SimilarPrecedents | None = None
        """The precedents a decision is compared with: triage's, then the panel's case file."""
        self._recommends = False
        """Whether this run asks the rules of engagement (RECOMMENDATION_PATCH)."""
        self._recommendation: Recommendation | None = None
        """What the rules of engagement recommend: triage's, then the panel's case file."""
        self._deadline_tasks: dict[str, str] = {}
        """Deadline purpose -> name of the admin task about it (DEADLINE_FALLBACK_PATCH)."""
        self._rollover = False
        """Whether this run may continue as new when Temporal suggests it: its patch, asked
        where triage, mediation, formal review and the remedy stage begin (and again by the
        run that resumes there), so it is not carried."""
        self._update_ids: list[str] = []
        """Ids of the actions applied in this run and the runs before it."""
        self._earlier_updates: frozenset[str] = frozenset()
        """Those applied in earlier runs: refused if sent again (Temporal would not know)."""
        self._live_version = 0
        """The last live state sent to the read model; carried, so versions only grow."""
        self._live_asked = 0
        """The version of the live change a record in flight carries (an answer waits for the
        read model to reach it: `ActionResult.live_version`)."""
        self._live_sent: LiveSent | None = None
        """What the read model holds, when known: None sends the whole state (first record of
        a run, or after a change that may not have arrived)."""
        self._review_checked: bool | None = None
        """Whether the review's decisions are checked as REVIEW_DECISIONS_PATCH says; decided
        when formal review begins, before any panel can act (validators read it, as they may
        not ask `workflow.patched`)."""

    # ======================================================================================
    # Patches: which behaviour this run has
    # ======================================================================================

    def _patched(self, patch: str) -> bool:
        """`workflow.patched(patch)`, but yes at once for a patch of PATCHES in a run that
        started on code that has them all (PATCHES_AT_START_PATCH): no marker, nothing to miss."""
        if self._patches_at_start and patch in PATCHES:
            return True
        return workflow.patched(patch)

    # ======================================================================================
    # The decision lock
    # ======================================================================================

    def _serialised(self) -> bool:
        if self._serial is None:
            self._serial = self._patched(DECISION_LOCK_PATCH)
        return self._serial

    @asynccontextmanager
    async def _deciding(self, rule: Callable[[], None] | None = None) -> AsyncIterator[None]:
        """Hold the decision lock for one action; `rule` (the action's validator) must still
        hold once the lock is held, or the action is refused with it and nothing is recorded.

        The validator ran when the update arrived, but other actions and the lifecycle may have
        changed the dispute while this one waited for the lock.
        """
        update = workflow.current_update_info()
        if not self._serialised():
            yield
        else:
            async with self._lock:
                if rule is not None:
                    self._still(rule)
                yield
        if update is not None and rule is not None:
            # Applied (an action refused on the way raised instead): carried on continue-as-new.
            self._update_ids.append(update.id)

    def _still(self, rule: Callable[[], None]) -> None:
        """Refuse the action (nothing recorded) if its rule no longer holds."""
        try:
            rule()
        except ValueError as broken:
            raise ApplicationError(
                str(broken), type="RuleNoLongerHolds", non_retryable=True
            ) from None

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> None:
        """The lifecycle waits here, outside the decision lock so that people can act; it holds
        the lock again on return, so whatever it waited for must be looked at afresh."""
        if not self._serialised():
            await workflow.wait_condition(condition, timeout=timeout)
            return
        self._lock.release()
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        finally:
            await self._lock.acquire()

    async def _unlocked(self, work: Awaitable[_T]) -> _T:
        """Long work of the lifecycle (a remedy's retries can take minutes) done outside the
        lock, so people's actions are not held up; like `_wait`, look again afterwards."""
        if not self._serialised():
            return await work
        self._lock.release()
        try:
            return await work
        finally:
            await self._lock.acquire()

    def _close_offers(self) -> list[str]:
        """A mediator leaving takes their open offers with them (their answer tasks are cancelled
        with the mediator's other tasks): an offer never settles under the next mediator."""
        if not self._serialised():
            return []
        closing = [offer for offer in self._offers.values() if offer.open]
        for offer in closing:
            offer.open = False
        return [offer.id for offer in closing]

    async def _check_texts(self, *refs: TextRef | None) -> None:
        """Refuse the action, nothing changed, unless each stored text it names is this
        dispute's and still has its hash. Only actions made since TEXT_REFS_PATCH name any."""
        named = tuple(ref for ref in refs if ref is not None)
        if not named or not self._patched(TEXT_REFS_PATCH):
            return
        try:
            # A local activity: one marker in the history instead of an activity's three events
            # and a workflow task's three, for every text of a busy dispute.
            await _as_activity(
                workflow.execute_local_activity_method(
                    TextActivities.check_texts,
                    TextCheck(number=self._d.number, refs=named),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                ),
                "check_texts",
            )
        except ActivityError as failure:
            if not isinstance(failure.cause, ApplicationError):
                raise
            raise ApplicationError(
                failure.cause.message, type="UnknownText", non_retryable=True
            ) from None

    @staticmethod
    def _said(name: str, inline: str | None, ref: TextRef | None) -> dict[str, Any]:
        """A text for an audit entry or an email's context: its stored reference (id, hash and
        size) when it has one, else the text itself (histories before TEXT_REFS_PATCH)."""
        if ref is not None:
            return {f"{name}_ref": ref.model_dump(mode="json")}
        return {name: inline}

    # ======================================================================================
    # Continuing as new: all the state, handed on in one payload
    # ======================================================================================

    def _rollover_wanted(self) -> bool:
        return self._rollover and workflow.info().is_continue_as_new_suggested()

    async def _continue_as_new(self, done: Callable[[], bool] | None = None) -> None:
        """Wait until no action is in progress (holding the decision lock only between
        looks), then continue as new with everything this run holds.

        Returns instead when `done()` (what the caller waits for) comes true meanwhile: an
        action that waits for the lifecycle to move on (a ruling, an appeal) would otherwise
        never finish, and this would wait for it forever."""
        finished = done or (lambda: False)
        while True:
            await self._wait(lambda: workflow.all_handlers_finished() or finished())
            if finished():
                return
            if workflow.all_handlers_finished():
                break
        handed_on = self._d.model_copy(update={"carried": self._carry()})
        size = len(handed_on.model_dump_json())
        if size > MAX_CARRIED_BYTES:
            # Texts sent inline before they were stored can make the state too large for one
            # payload: this run goes on (bounded by the volume limits) rather than fail.
            workflow.logger.warning(
                "%s: state of %d bytes too large to continue as new", self._d.number, size
            )
            self._rollover = False
            return
        workflow.logger.info("%s continues as new at entry %d", self._d.number, self._seq)
        workflow.continue_as_new(handed_on)

    async def _wait_rolling(self, done: Callable[[], bool], until: datetime | None = None) -> bool:
        """`_wait` for `done()` (until the instant `until`, if given), continuing as new
        meanwhile when this run may and Temporal suggests it. False when `until` came first.

        A run that may not continue as new issues exactly the commands of one `_wait`, even
        when `done()` holds already (a timer is started and cancelled then, as it always was)."""
        while True:
            timeout = None if until is None else max(until - workflow.now(), timedelta(0))
            try:
                await self._wait(lambda: done() or self._rollover_wanted(), timeout=timeout)
            except TimeoutError:
                return False
            if done():
                return True
            await self._continue_as_new(done)
            if done():
                return True

    def _carry(self) -> DisputeCarried:
        return DisputeCarried(
            stage=self._stage,
            seq=self._seq,
            head=self._head,
            unrecorded=tuple(self._unrecorded),
            chained=self._chained,
            projected=self._projected,
            serial=self._serial,
            history=tuple(self._history),
            stage_log=tuple(self._stage_log),
            round=self._round,
            candidate=self._candidate,
            mediator=self._mediator,
            excluded=tuple(self._excluded),
            admin_pick=CarriedPick(
                choice=self._admin_pick[0], actor=self._admin_pick[1], reason=self._admin_pick[2]
            )
            if self._admin_pick
            else None,
            clocks={
                k: CarriedClock(deadline=c.deadline, warned=tuple(sorted(c.warned)))
                for k, c in self._clocks.items()
            },
            breaches=tuple(self._breaches),
            info=tuple(
                CarriedInformation(
                    id=r.id,
                    party_id=r.party_id,
                    questions=r.questions,
                    requested_at=r.requested_at,
                    deadline=r.deadline,
                    answered_at=r.answered_at,
                    answer=r.answer,
                    questions_ref=r.questions_ref,
                    answer_ref=r.answer_ref,
                )
                for r in self._info.values()
            ),
            pending_info=self._pending_info,
            offers=tuple(
                CarriedOffer(
                    id=o.id,
                    view=o.view,
                    proposed_at=o.proposed_at,
                    responses=dict(o.responses),
                    open=o.open,
                )
                for o in self._offers.values()
            ),
            agreed=self._agreed.id if self._agreed else None,
            impasse=self._impasse,
            notes=tuple(self._notes),
            tasks=tuple(self._tasks.values()),
            linked=tuple(self._linked),
            evidence_ids=tuple(self._evidence_ids),
            inbound_ids=tuple(self._inbound_ids),
            outcome=self._outcome,
            wakeups=self._wakeups,
            remedies=tuple(self._remedies[p] for p in sorted(self._remedies)),
            remedy_keys=dict(self._remedy_keys),
            remedies_done=self._remedies_done,
            remedy_waiting=self._remedy_waiting,
            remedy_decision=self._remedy_decision,
            review_round=self._review_round,
            panel=self._panel,
            awaiting_panel=self._awaiting_panel,
            redraw_requested=self._redraw_requested,
            past_panelists=tuple(self._past_panelists),
            vacancies=tuple(self._vacancies),
            votes=tuple(
                CarriedVote(person_id=pid, vote=vote, cast_at=at)
                for pid, (vote, at) in self._votes.items()
            ),
            unsealed=self._unsealed,
            ruling=self._ruling,
            rulings=tuple(self._rulings),
            appeal=self._appeal,
            appeal_deadline=self._appeal_deadline,
            similar=self._similar,
            recommendation=self._recommendation,
            deadline_tasks=dict(self._deadline_tasks),
            review_checked=self._review_checked,
            update_ids=tuple(self._update_ids[-CARRIED_UPDATE_IDS:]),
            live_version=self._live_version,
        )

    def _restore(self, c: DisputeCarried) -> None:
        self._stage = c.stage
        self._seq = c.seq
        self._head = c.head
        self._unrecorded = list(c.unrecorded)
        self._chained = c.chained
        self._projected = c.projected
        self._serial = c.serial
        self._history = list(c.history)
        self._stage_log = list(c.stage_log)
        self._round = c.round
        self._candidate = c.candidate
        self._mediator = c.mediator
        self._excluded = list(c.excluded)
        self._admin_pick = (
            (c.admin_pick.choice, c.admin_pick.actor, c.admin_pick.reason) if c.admin_pick else None
        )
        self._clocks = {k: Clock(v.deadline, set(v.warned)) for k, v in c.clocks.items()}
        self._breaches = list(c.breaches)
        self._info = {
            r.id: InformationRequest(
                id=r.id,
                party_id=r.party_id,
                questions=r.questions,
                requested_at=r.requested_at,
                deadline=r.deadline,
                answered_at=r.answered_at,
                answer=r.answer,
                questions_ref=r.questions_ref,
                answer_ref=r.answer_ref,
            )
            for r in c.info
        }
        self._pending_info = c.pending_info
        self._offers = {
            o.id: Offer(
                id=o.id,
                view=o.view,
                proposed_at=o.proposed_at,
                responses=dict(o.responses),
                open=o.open,
            )
            for o in c.offers
        }
        self._agreed = self._offers[c.agreed] if c.agreed else None
        self._impasse = c.impasse
        self._notes = list(c.notes)
        self._tasks = {t.key: t for t in c.tasks}
        self._linked = list(c.linked)
        self._evidence_ids = list(c.evidence_ids)
        self._inbound_ids = list(c.inbound_ids)
        self._outcome = c.outcome
        self._wakeups = c.wakeups
        self._remedies = {r.position: r for r in c.remedies}
        self._remedy_keys = dict(c.remedy_keys)
        self._remedies_done = c.remedies_done
        self._remedy_waiting = c.remedy_waiting
        self._remedy_decision = c.remedy_decision
        self._review_round = c.review_round
        self._panel = c.panel
        self._awaiting_panel = c.awaiting_panel
        self._redraw_requested = c.redraw_requested
        self._past_panelists = list(c.past_panelists)
        self._vacancies = list(c.vacancies)
        self._votes = {v.person_id: (v.vote, v.cast_at) for v in c.votes}
        self._unsealed = c.unsealed
        self._ruling = c.ruling
        self._rulings = list(c.rulings)
        self._appeal = c.appeal
        self._appeal_deadline = c.appeal_deadline
        self._similar = c.similar
        self._recommendation = c.recommendation
        self._deadline_tasks = dict(c.deadline_tasks)
        self._review_checked = c.review_checked
        self._update_ids = list(c.update_ids)
        self._earlier_updates = frozenset(c.update_ids)
        self._live_version = c.live_version

    def _wake(self) -> None:
        """Make every waiting clock look again: a deadline moved or the stage changed."""
        self._wakeups += 1

    async def _choose_mediator(self, chosen_person_id: str | None) -> MediatorChoice:
        return await workflow.execute_activity_method(
            AssignmentActivities.assign_mediator,
            MediatorRequest(
                number=self._d.number,
                round=self._round + 1,
                party_ids=self._party_ids(),
                contested_objects=tuple(self._d.filing.contested_objects),
                excluded_person_ids=tuple(self._excluded),
                chosen_person_id=chosen_person_id,
                at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _release_seat(self, round_no: int, person_id: str) -> None:
        """Give back a seat reserved by `_choose_mediator` for a round that is not offered."""
        await workflow.execute_activity_method(
            AssignmentActivities.release_seat,
            SeatRelease(number=self._d.number, round=round_no, person_id=person_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _compute_deadline(
        self,
        purpose: str,
        calendar: str,
        days: int,
        *,
        whose: str | None = None,
        task: str | None = None,
    ) -> Deadline:
        """`days` business days from now on `calendar`, or, when the activity refuses that for
        good, on the board calendar and then the built-in one, told to the admins.

        `whose` names the calendar's holder for them; `task` is the task the deadline is for
        (their task about it closes with it).
        """
        try:
            return await self._deadline_on(purpose, calendar, days)
        except ActivityError as failure:
            reason = self._uncomputable(failure)
            if reason is None:
                raise
        holder = f"{whose}'s calendar" if whose else "calendar"
        reasons = [f"{holder} {calendar!r} could not be used: {reason}"]
        for fallback in (self._d.terms.board_calendar, BUILT_IN_CALENDAR):
            if fallback == calendar:
                continue
            try:
                deadline = await self._deadline_on(purpose, fallback, days)
            except ActivityError as failure:
                again = self._uncomputable(failure)
                if again is None:
                    raise
                reasons.append(f"the {fallback} calendar could not be used either: {again}")
                continue
            why = "; ".join(reasons)
            deadline = deadline.model_copy(
                update={"explanation": f"{deadline.explanation}; on {fallback} because {why}"}
            )
            await self._ask_admins_about_deadline(
                purpose,
                task,
                "deadline_fallback",
                f"the {purpose} deadline runs on the {fallback} calendar: {why}",
                deadline,
                content={"calendar": calendar, "used": fallback, "reason": why},
            )
            return deadline
        # Only a playbook with a zero-day stage gets here, and the schema refuses those.
        raise ApplicationError(
            f"the {purpose} deadline cannot be computed: {'; '.join(reasons)}",
            type="DeadlineNotComputed",
            non_retryable=True,
        )

    async def _deadline_on(self, purpose: str, calendar: str, days: int) -> Deadline:
        return await workflow.execute_activity_method(
            DeadlineActivities.compute_deadline,
            DeadlineRequest(
                purpose=purpose,
                calendar=calendar,
                playbook_version=self._d.terms.version,
                starts_at=workflow.now(),
                business_days=days,
                warning_fractions=self._d.terms.warning_fractions,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    def _uncomputable(self, failure: ActivityError) -> str | None:
        """Why a deadline activity failed for good, if this history carries on without it
        (DEADLINE_FALLBACK_PATCH); None: let the failure end what it ends, as it always did."""
        cause = failure.cause
        if not (isinstance(cause, ApplicationError) and cause.non_retryable):
            return None
        if not self._patched(DEADLINE_FALLBACK_PATCH):
            return None
        return cause.message

    async def _ask_admins_about_deadline(
        self,
        purpose: str,
        task: str | None,
        action: str,
        summary: str,
        deadline: Deadline,
        *,
        content: dict[str, Any],
    ) -> None:
        """Record a deadline that is not what the playbook says, with an admin task (one per
        deadline; it closes with `task`, or when an admin extends the deadline) and an email."""
        name = f"{task}-deadline" if task else f"deadline-{purpose}"
        self._deadline_tasks[purpose] = name
        opens: tuple[TaskOpen, ...] = ()
        if f"{self._d.number}:{name}" not in self._tasks:
            opens = (
                self._task(TaskKind.RESOLVE_DEADLINE, name, None, Role.ADMIN, deadline.due_at),
            )
        await self._record(
            SYSTEM,
            action,
            summary,
            content={"purpose": purpose, "due_at": deadline.due_at.isoformat(), **content},
            opens=opens,
            notify=(
                notice(
                    "deadline_problem",
                    (self._d.admin_email,),
                    purpose=purpose.split(":")[0],
                    reason=summary,
                    deadline=deadline.due_at,
                    explanation=deadline.explanation,
                ),
            ),
        )

    # ======================================================================================
    # Recording, tasks, notifications
    # ======================================================================================

    async def _record(
        self,
        actor: Actor,
        action: str,
        summary: str,
        *,
        content: dict[str, Any],
        stage: DisputeStage | None = None,
        deadline: Deadline | None = None,
        clear_deadline: bool = False,
        mediator_id: str | None = None,
        outcome: str | None = None,
        assignment: RecordAssignment | None = None,
        opens: tuple[TaskOpen, ...] = (),
        done: tuple[str, ...] = (),
        cancelled: tuple[str, ...] = (),
        evidence: EvidenceItem | None = None,
        notify: tuple[Notice, ...] = (),
    ) -> int:
        """Append to the audit trail, and in the same write project the read model, the
        task inbox and the outbox (`notify`), so they never disagree; returns the record's step
        (the key its emails are sent under).

        A record refused for good fails the action as before, and leaves the dispute going on:
        the next entry is preceded by a gap entry naming the step and why."""
        async with self._record_lock:
            if self._chained is None:
                self._chained = self._patched(AUDIT_CHAIN_PATCH)
            self._seq += 1
            step = self._seq
            at = workflow.now()
            if notify and self._noticed is None:
                self._noticed = self._patched(RECORD_NOTICES_PATCH)
            notices = (
                tuple(r for n in notify if (r := self._notification(step, n)) is not None)
                if self._noticed
                else ()
            )
            if stage is not None:
                self._stage_log.append((stage, at))
                self._projected = stage
            if self._local_record is None:
                self._local_record = self._patched(LOCAL_RECORD_PATCH)
            found_by: list[SearchAttributeUpdate[Any]] = []
            if stage is not None or deadline is not None or clear_deadline:
                found_by = self._search_attribute_updates(
                    stage or self._stage, deadline, clear_deadline
                )
                if found_by and not self._local_record:
                    workflow.upsert_search_attributes(found_by)
                    found_by = []
            shown = HistoryEntry(
                seq=step, at=at, actor=actor.id, role=actor.role, action=action, summary=summary
            )
            self._history.append(shown)
            live = self._live_delta()
            if live is not None:
                self._live_asked = live[0].version
            record = EventRecord(
                number=self._d.number,
                step=step,
                at=at,
                actor=actor,
                action=action,
                content={"summary": summary, **content},
                stage=stage,
                deadline=deadline,
                clear_deadline=clear_deadline,
                mediator_id=mediator_id,
                outcome=outcome,
                assignment=assignment,
                open_tasks=opens,
                done_tasks=done,
                cancelled_tasks=cancelled,
                evidence=evidence,
                unrecorded=tuple(self._unrecorded),
                notices=notices,
                live=live[0] if live else None,
            )
            try:
                recorded = await _as_activity(
                    (
                        workflow.execute_local_activity_method(
                            RecordActivities.record_event,
                            record,
                            start_to_close_timeout=ACTIVITY_TIMEOUT,
                            retry_policy=ACTIVITY_RETRY,
                        )
                        if self._local_record
                        else workflow.execute_activity_method(
                            RecordActivities.record_event,
                            record,
                            start_to_close_timeout=ACTIVITY_TIMEOUT,
                            retry_policy=ACTIVITY_RETRY,
                        )
                    ),
                    "record_event",
                )
            except ActivityError as failure:
                # The action fails, but what its handler changed stays: the read model gets it
                # now (its change may have been half sent), not with some later record.
                self._live_sent = None
                if live is not None:
                    # Never sent again under this version, should an attempt still land.
                    self._live_version = live[0].version
                if self._patched(LIVE_READ_MODEL_PATCH):
                    await self._project_live()
                if self._chained:
                    self._history.remove(shown)
                    # Itemised up to a bound: one refusal repeated must not grow every later
                    # record's input without end (the gap entry still counts the steps beyond).
                    if len(self._unrecorded) < audit.ITEMISED:
                        self._unrecorded.append(self._refusal(step, action, failure))
                if found_by:  # the stage moved all the same: it is found by its new one
                    workflow.upsert_search_attributes(found_by)
                raise
            if recorded.at is not None and recorded.at != at:
                # Replayed after a task a busy worker ended at this record's marker: the code
                # that stamped it ran one task early here. The trail's time is the run's.
                self._history[self._history.index(shown)] = shown.model_copy(
                    update={"at": recorded.at}
                )
                if stage is not None:  # appended above; only a record appends, one at a time
                    self._stage_log[-1] = (stage, recorded.at)
            if self._chained:
                self._unrecorded.clear()
                self._head = (recorded.seq, recorded.hash)
                head = f"{recorded.seq}:{recorded.hash}"
                found_by.append(search_attributes.AUDIT_HEAD.value_set(head))
            if found_by:
                workflow.upsert_search_attributes(found_by)
            await self._live_sent_with(live, behind=recorded.live_behind)
        if not self._noticed:
            for each in notify:  # as before the patch: an activity each, after the entry
                await self._send(step, each)
        return step

    # --- the live read model -----------------------------------------------------------------

    def _live_delta(self) -> tuple[LiveDelta, LiveSent] | None:
        """What changed in the live state since the read model was last sent it (everything,
        when that is not known), and what it will hold once this arrives; None: nothing."""
        state = self._live_view(whole=False)
        sent = self._live_sent
        dumped = state.model_dump(mode="json", exclude=set(LIVE_WHOLE))
        digests = {name: _digest(value) for name, value in dumped.items()}
        sections = {
            name: value
            for name, value in dumped.items()
            if sent is None or sent.sections.get(name) != digests[name]
        }
        items: dict[str, bytes] = {}
        changed: dict[str, list[Any]] = {"offers": [], "information_requests": []}
        for name, values in (
            ("offers", state.offers),
            ("information_requests", state.information_requests),
        ):
            for item in values:
                key = f"{name}:{item.id}"
                items[key] = _digest(item.model_dump(mode="json"))
                if sent is None or sent.items.get(key) != items[key]:
                    changed[name].append(item)
        notes_from = sent.notes if sent is not None else 0
        notes = tuple(self._notes[notes_from:])
        if sent is not None and not (sections or notes or any(changed.values())):
            return None
        version = self._live_version + 1
        delta = LiveDelta(
            version=version,
            base=sent.version if sent is not None else None,
            sections=sections,
            notes_from=notes_from,
            notes=notes,
            offers=tuple(changed["offers"]),
            information_requests=tuple(changed["information_requests"]),
        )
        return delta, LiveSent(version, digests, items, notes_from + len(notes))

    async def _live_sent_with(
        self, live: tuple[LiveDelta, LiveSent] | None, *, behind: bool
    ) -> None:
        """Note what the read model now holds; when it was behind, send it the whole state."""
        if live is not None:
            self._live_version = live[0].version
            self._live_sent = None if behind else live[1]
        if behind and self._patched(LIVE_READ_MODEL_PATCH):
            await self._project_live()

    async def _project_live(self) -> None:
        """Under the record lock: the live state's change, by itself; twice at most (the second
        time whole, should the read model be behind)."""
        for _ in range(2):
            live = self._live_delta()
            if live is None:
                return
            self._live_version = live[0].version
            try:
                applied: LiveApplied = await workflow.execute_activity_method(
                    RecordActivities.project_live,
                    LiveProjection(number=self._d.number, at=workflow.now(), live=live[0]),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                )
            except ActivityError as failure:
                # Only the pages are behind, not the dispute: the next record sends it all.
                workflow.logger.warning("%s: live state not sent: %s", self._d.number, failure)
                self._live_sent = None
                return
            self._live_sent = live[1] if applied.applied else None
            if applied.applied:
                return

    @staticmethod
    def _refusal(step: int, action: str, failure: ActivityError) -> UnrecordedStep:
        cause = failure.cause
        why = cause.message if isinstance(cause, ApplicationError) else str(cause or failure)
        kind = f"{cause.type}: " if isinstance(cause, ApplicationError) and cause.type else ""
        return UnrecordedStep(step=step, action=action, reason=f"{kind}{why}"[:300])

    def _search_attribute_updates(
        self, stage: DisputeStage, deadline: Deadline | None, clear_deadline: bool
    ) -> list[SearchAttributeUpdate[Any]]:
        """What the Temporal UI and `temporal workflow list --query` can find disputes by."""
        if not self._patched(SEARCH_ATTRIBUTES_PATCH):
            return []
        updates: list[SearchAttributeUpdate[Any]] = [
            search_attributes.STAGE.value_set(stage.value),
            search_attributes.CATEGORY.value_set(self._d.filing.category.value),
            search_attributes.CLAIMANT_TIER.value_set(self._d.claimant.tier.value),
            search_attributes.REGION.value_set(self._d.claimant.region),
        ]
        if deadline is not None:
            updates.append(search_attributes.SLA_DEADLINE.value_set(deadline.due_at))
        elif clear_deadline:
            updates.append(search_attributes.SLA_DEADLINE.value_unset())
        return updates

    async def _enter(
        self,
        stage: DisputeStage,
        summary: str,
        *,
        deadline: Deadline | None = None,
        clear: bool = False,
        opens: tuple[TaskOpen, ...] = (),
        cancelled: tuple[str, ...] = (),
        notify: tuple[Notice, ...] = (),
    ) -> int:
        if self._serialised() and not self._stage.is_open:
            # Terminal is terminal: a withdrawal or dismissal won the race for the dispute.
            workflow.logger.warning("not entering %s: %s is %s", stage, self._d.number, self._stage)
            for each in notify:  # sent under the last entry, as they always were
                await self._send(self._seq, each)
            return self._seq
        self._stage = stage
        self._wake()
        return await self._record(
            SYSTEM,
            f"stage_{stage.value}",
            summary,
            content={"stage": stage.value},
            stage=stage,
            deadline=deadline,
            clear_deadline=clear or deadline is None,
            opens=opens,
            cancelled=cancelled,
            notify=notify,
        )

    async def _conclude(self, stage: DisputeStage, actor: Actor, action: str, reason: str) -> None:
        """End the dispute in a terminal stage; cancels whatever was still open."""
        if self._serialised() and not self._stage.is_open:
            return
        stale = self._untask(*self._open_task_names())
        self._stage = stage
        self._pending_info = None
        self._outcome = self._outcome or action
        self._wake()
        await self._record(
            actor,
            action,
            reason,
            content={"reason": reason},
            stage=stage,
            clear_deadline=True,
            outcome=self._outcome,
            cancelled=stale,
            notify=(
                notice(
                    "closure",
                    (*self._everyone(), self._d.admin_email),
                    outcome=self._outcome,
                    reason=reason,
                ),
            ),
        )

    def _task(
        self, kind: TaskKind, name: str, assignee: str | None, role: Role, due: datetime | None
    ) -> TaskOpen:
        """A task to open with the next audit entry; visible in get_state from now on."""
        key = f"{self._d.number}:{name}"
        self._tasks[key] = OpenTask(key=key, kind=kind, assignee=assignee, due_at=due)
        return TaskOpen(
            key=key,
            number=self._d.number,
            kind=kind,
            title=f"{kind.value.replace('_', ' ')}: {self._d.number}",
            assignee_id=assignee,
            assignee_role=role,
            due_at=due,
            at=workflow.now(),
        )

    def _untask(self, *names: str) -> tuple[str, ...]:
        """Keys of the named tasks that are open, taken off the open list, to close with the
        next audit entry; the admins' task about a task's deadline goes with it."""
        keys = (f"{self._d.number}:{n}" for name in names for n in (name, f"{name}-deadline"))
        return tuple(key for key in keys if self._tasks.pop(key, None) is not None)

    def _open_task_names(self) -> tuple[str, ...]:
        prefix = f"{self._d.number}:"
        return tuple(key.removeprefix(prefix) for key in self._tasks)

    async def _send(self, seq: int, each: Notice) -> None:
        """Enqueue one email with an activity of its own (histories before
        RECORD_NOTICES_PATCH, and emails keyed on an entry recorded earlier)."""
        request = self._notification(seq, each)
        if request is None:
            return
        await workflow.execute_activity_method(
            NotificationActivities.send_notification,
            request,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
        )

    def _notification(self, seq: int, each: Notice) -> NotificationRequest | None:
        """The outbox's request for `each`, keyed on entry `seq`; None when nobody is to get it."""
        wanted = tuple(dict.fromkeys(r for r in each.recipients if r))
        if not wanted:
            return None
        context: dict[str, object] = {
            "number": self._d.number,
            "category": self._d.filing.category.value,
            "summary": self._d.filing.summary,
            "claimant": self._d.claimant.name,
            "respondents": [p.name for p in self._d.respondents],
            "stage": self._stage.value,
            "mediator": self._mediator.name if self._mediator else None,
        }
        for name, value in each.extra.items():
            context[name] = value.isoformat() if isinstance(value, datetime) else value
        return NotificationRequest(
            key=f"{self._d.number}:{seq}:{each.template}",
            number=self._d.number,
            template=each.template,
            recipients=wanted,
            context=context,
        )

    async def _attach_similar_precedents(self, purpose: str) -> None:
        f = self._d.filing
        found: SimilarPrecedents = await workflow.execute_activity_method(
            RecordActivities.find_similar_precedents,
            SimilarRequest(
                number=self._d.number,
                purpose=purpose,
                category=f.category,
                clauses=self._d.terms.clauses,
                text=f"{f.summary}\n{f.facts}",
                amount_at_stake=f.amount_at_stake,
                currency=f.currency,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._similar = found
        numbers = ", ".join(f"{m.dispute_number} ({m.score:.2f})" for m in found.matches)
        await self._record(
            SYSTEM,
            "similar_precedents",
            f"{len(found.matches)} similar precedents attached for {purpose}"
            + (f": {numbers}" if numbers else f" (none of {found.considered} compared is close)"),
            content=found.model_dump(mode="json"),
        )

    async def _attach_recommendation(self, purpose: str) -> None:
        """What the rules of engagement recommend, recorded with the facts it rests on. A
        playbook version the worker does not have recommends nothing (and says so); the dispute
        goes on without."""
        f = self._d.filing
        try:
            found: Recommendation = await workflow.execute_activity_method(
                EngagementActivities.recommend,
                EngagementRequest(
                    number=self._d.number,
                    purpose=purpose,
                    playbook_version=self._d.terms.version,
                    category=f.category,
                    claimant_id=f.claimant_id,
                    respondent_ids=tuple(f.respondent_ids),
                    contested_objects=tuple(f.contested_objects),
                    occurred_on=f.occurred_on,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
        except ActivityError as failure:
            if not isinstance(failure.cause, ApplicationError):
                raise
            await self._record(
                SYSTEM,
                "recommendation",
                f"the rules of engagement could not be applied for {purpose}: "
                f"{failure.cause.message}",
                content={"purpose": purpose, "error": failure.cause.message},
            )
            return
        self._recommendation = found
        if not found.tables:
            summary = (
                f"playbook {found.playbook_version} has no decision tables: nothing recommended"
            )
        elif found.outcome is None:
            summary = f"no rule of engagement applies to the facts known ({purpose})"
        else:
            remedies = ", ".join(r.value for r in found.remedies)
            summary = (
                f"the rules of engagement recommend {found.outcome.value}"
                + (f" with {remedies}" if remedies else "")
                + f" ({clause_ref(found.clause or '')}, {purpose})"
            )
        await self._record(SYSTEM, "recommendation", summary, content=found.model_dump(mode="json"))

    def _check_departure(
        self, *, outcome: str | None, remedies: tuple[Remedy, ...], reason: str | None
    ) -> None:
        """A decision departing from the recommendation goes ahead only with a reason."""
        found = departures(
            self._recommendation, outcome=outcome, remedies=(r.kind for r in remedies)
        )
        if found and not acknowledged(reason):
            raise ValueError(
                "departure_reason: this departs from what the rules of engagement recommend — "
                + "; ".join(found)
                + ". Say why (at least a sentence) to go ahead; the reason goes into the record"
            )

    def _departure_record(
        self, outcome: str | None, remedies: tuple[Remedy, ...], reason: str | None
    ) -> dict[str, Any]:
        """The departures the decider gave a reason for, for the audit entry of the decision."""
        found = departures(
            self._recommendation, outcome=outcome, remedies=(r.kind for r in remedies)
        )
        if not found:
            return {}
        return {"departures": list(found), "departure_reason": reason}

    def _divergences(
        self, outcome: str | None, remedies: tuple[Remedy, ...], clauses: tuple[str, ...]
    ) -> tuple[str, ...]:
        if self._similar is None:
            return ()
        if self._review_checked:
            # The dispute's own clause always counts: citing another one escapes nothing.
            clauses = (*self._d.terms.clauses, *clauses)
        return divergences(
            self._similar.matches,
            category=self._d.filing.category,
            clauses=clauses,
            outcome=outcome,
            remedies=remedies,
            claimant_id=self._d.claimant.partner_id,
        )

    async def _check_citations(
        self, clauses: tuple[str, ...], precedents: tuple[str, ...]
    ) -> tuple[str, ...]:
        """Refuse, naming each, a cited clause the pinned playbook does not have and a cited
        precedent that does not exist; the cited clauses as the playbook words them (a clause
        is cited by its reference, and the record keeps the playbook's text, not the typing).
        The category's clauses and the precedents in the case file are known; only the rest is
        looked up."""
        shown = {m.dispute_number for m in self._similar.matches} if self._similar else set()
        unshown = tuple(dict.fromkeys(p for p in precedents if p not in shown))
        if not unshown and not unknown_clauses(clauses, self._d.terms.clauses):
            return canonical_clauses(clauses, self._d.terms.clauses)
        version = self._d.terms.version
        try:
            citable: Citable = await workflow.execute_activity_method(
                CitationActivities.find_citable,
                CitationLookup(playbook_version=version, precedents=unshown),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
        except ActivityError as failure:
            if not isinstance(failure.cause, ApplicationError):
                raise
            # The pinned version is not on this worker: no clause of it can be vouched for.
            raise ApplicationError(
                f"clauses_applied: cannot be checked: {failure.cause.message}",
                type="UnknownCitation",
                non_retryable=True,
            ) from None
        known = ", ".join(clause_ref(c) for c in citable.playbook_clauses)
        problems = [
            f"clauses_applied: {c} is not a clause of playbook {version}, which this dispute "
            f"pinned (its clauses: {known})"
            for c in unknown_clauses(clauses, citable.playbook_clauses)
        ]
        missing = [p for p in unshown if p not in citable.precedents]
        if missing:
            named = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            verb = "is not a precedent" if len(missing) == 1 else "are not precedents"
            problems.append(
                f"precedents_cited: {named} {verb} (no decided dispute has that number)"
            )
        if problems:
            raise ApplicationError("; ".join(problems), type="UnknownCitation", non_retryable=True)
        return canonical_clauses(clauses, (*self._d.terms.clauses, *citable.playbook_clauses))

    def _check_consistency(
        self,
        *,
        outcome: str | None,
        remedies: tuple[Remedy, ...],
        clauses: tuple[str, ...],
        acknowledgement: str | None,
    ) -> None:
        """A decision diverging from the comparable precedents goes ahead only acknowledged."""
        found = self._divergences(outcome, remedies, clauses)
        if found and not acknowledged(acknowledgement):
            raise ValueError(
                "divergence_acknowledgement: this diverges from the precedents on the same clause"
                " — " + "; ".join(found) + ". Acknowledge it with a reason (at least a sentence)"
                " to go ahead; the reason goes into the record"
            )

    def _divergence_record(
        self,
        outcome: str | None,
        remedies: tuple[Remedy, ...],
        clauses: tuple[str, ...],
        acknowledgement: str | None,
    ) -> dict[str, Any]:
        """The divergences the decider acknowledged, for the audit entry of the decision."""
        found = self._divergences(outcome, remedies, clauses)
        if not found:
            return {}
        return {"divergences": list(found), "divergence_acknowledgement": acknowledgement}

    async def _write_precedent(
        self,
        outcome: str,
        remedies: tuple[Remedy, ...],
        rationale: str,
        *,
        clauses: tuple[str, ...] | None = None,
        precedents_cited: tuple[str, ...] = (),
        votes_summary: dict[str, int] | None = None,
        rationale_ref: TextRef | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            RecordActivities.write_precedent,
            PrecedentRecord(
                number=self._d.number,
                category=self._d.filing.category,
                playbook_version=self._d.terms.version,
                clauses=clauses or self._d.terms.clauses,
                facts=self._d.filing.facts,
                contested_objects=tuple(self._d.filing.contested_objects),
                outcome=outcome,
                remedies=remedies,
                rationale=rationale,
                timeline=self._timeline(),
                claimant_tier=self._d.claimant.tier,
                claimant_region=self._d.claimant.region,
                amount_at_stake=self._d.filing.amount_at_stake,
                decided_at=workflow.now(),
                parties=self._parties(),
                precedents_cited=precedents_cited,
                votes_summary=votes_summary or {},
                rationale_ref=rationale_ref,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    def _timeline(self) -> tuple[dict[str, str], ...]:
        """Time in each stage, and each deadline met or breached."""
        now = workflow.now()
        entries: list[dict[str, str]] = []
        for i, (stage, entered) in enumerate(self._stage_log):
            left = self._stage_log[i + 1][1] if i + 1 < len(self._stage_log) else now
            entries.append(
                {
                    "stage": stage.value,
                    "entered_at": entered.isoformat(),
                    "seconds": str(round((left - entered).total_seconds())),
                }
            )
        breached = {b.split(":")[0].split("-")[0] for b in self._breaches}
        for purpose in sorted({p.split(":")[0] for p in self._clocks} - {"appeal"}):
            entries.append(
                {"deadline": purpose, "result": "breached" if purpose in breached else "met"}
            )
        return tuple(entries)

    # --- small helpers ------------------------------------------------------------------------

    def _check(self, action: Action, payload: ActionPayload) -> None:
        """Reject before anything is recorded: the transition table, then who may act."""
        update = workflow.current_update_info()
        if update is not None and update.id in self._earlier_updates:
            # Applied before this run continued as new; Temporal only knows this run's ids.
            raise ValueError(
                f"this action (request {update.id}) was already applied; nothing was done again"
            )
        problem = why_not(self._stage, action, payload.actor.role)
        if problem:
            raise ValueError(problem)
        actor = payload.actor
        if actor.role is Role.PARTNER and actor.partner_id not in self._party_ids():
            raise ValueError(f"{actor.id} does not act for a party to {self._d.number}")
        if actor.role is Role.BOARD:
            if self._panel is None:
                raise ValueError(f"no panel has been drawn for {self._d.number} yet")
            if action is Action.RECUSE and actor.id not in (*self._panel_ids(), self._chair_id()):
                raise ValueError(f"{actor.id} is not on the panel of {self._d.number}")
            if action is Action.CAST_VOTE and actor.id not in self._panel_ids():
                raise ValueError(f"{actor.id} is not a voting member of the panel")
            chair_only = (Action.ISSUE_RULING, Action.DISMISS, Action.UNSEAL_BALLOT)
            if action in chair_only and actor.id != self._chair_id():
                raise ValueError(
                    f"only the chair of the panel may {action.value.replace('_', ' ')}"
                )
        if actor.role is Role.MEDIATOR and action is not Action.ACCEPT_ASSIGNMENT:
            current = self._mediator or self._candidate
            if current is None or current.person_id != actor.id:
                raise ValueError(f"{actor.id} is not the mediator assigned to {self._d.number}")

    def _check_remedies_allowed(self, remedies: tuple[Remedy, ...]) -> None:
        """Each remedy allowed for the category by the pinned playbook, and about the parties."""
        allowed = self._d.terms.allowed_remedies
        parties = set(self._party_ids())
        for i, remedy in enumerate(remedies):
            if remedy.kind not in allowed:
                raise ValueError(
                    f"remedies[{i}]: {remedy.kind.value} is not allowed for "
                    f"{self._d.filing.category.value} disputes by playbook "
                    f"{self._d.terms.version} (allowed: {', '.join(a.value for a in allowed)})"
                )
            outsiders = remedy_parties(remedy) - parties
            if outsiders:
                raise ValueError(
                    f"remedies[{i}]: names {', '.join(sorted(outsiders))}, not a party to "
                    f"{self._d.number}"
                )

    def _panel_ids(self) -> tuple[str, ...]:
        return tuple(m.person_id for m in self._panel.members) if self._panel else ()

    def _chair_id(self) -> str | None:
        chair = self._panel.chair if self._panel else None
        return chair.person_id if chair else None

    def _panel_emails(self, *, only_owing_votes: bool = False) -> tuple[str, ...]:
        if self._panel is None:
            return ()
        members = [
            m.email
            for m in self._panel.members
            if not (only_owing_votes and m.person_id in self._votes)
        ]
        chair = [self._panel.chair.email] if self._panel.chair else []
        return (*members, *chair)

    def _parties(self) -> tuple[Party, ...]:
        return (self._d.claimant, *self._d.respondents)

    def _party_ids(self) -> tuple[str, ...]:
        return tuple(p.partner_id for p in self._parties())

    def _party(self, partner_id: str) -> Party:
        return next(p for p in self._parties() if p.partner_id == partner_id)

    def _party_contacts(self) -> tuple[str, ...]:
        return tuple(c for p in self._parties() for c in p.contacts)

    def _mediator_email(self) -> tuple[str, ...]:
        return (self._mediator.email,) if self._mediator and self._mediator.email else ()

    def _everyone(self) -> tuple[str, ...]:
        return (*self._party_contacts(), *self._mediator_email())

    @staticmethod
    def _require(value: _T | None, problem: str) -> _T:
        # Not `assert`: in production a failed assert retries the workflow task forever.
        if value is None:
            raise ApplicationError(problem, type="InvariantBroken", non_retryable=True)
        return value

    def _result(self, message: str, reference: str | None = None) -> ActionResult:
        return ActionResult(
            number=self._d.number,
            stage=self._stage,
            message=message,
            reference=reference,
            step=self._seq,
            live_version=max(self._live_version, self._live_asked),
        )
