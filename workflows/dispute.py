"""DisputeWorkflow: one per dispute, from filing through mediation to settlement or review.

Messages
- Updates (human actions, each validated against `TRANSITIONS` and the dispute before
  anything is recorded): accept_assignment, recuse, add_note, request_information,
  answer_information, propose_settlement, respond_to_offer, declare_impasse, dismiss,
  withdraw, extend_deadline, assign_mediator, link_filing.
- Query: get_state.

Invariants
- Every action and every engine decision is recorded through `_record`, one at a time, so
  the audit trail's sequence numbers and hash chain follow the order things happened.
- Deadlines are computed by activities (business days, holidays) and stored; the workflow
  only waits for the instants they name.
- While a party owes information the mediation clock is paused; it resumes moved by exactly
  the business time that passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from activities.deadlines import DeadlineActivities
    from activities.notify import NotificationActivities
    from activities.records import RecordActivities
    from models.enums import (
        Action,
        AssignmentState,
        DisputeStage,
        NoteVisibility,
        Role,
        TaskKind,
    )
    from models.payloads import (
        SYSTEM,
        AcceptAssignment,
        ActionPayload,
        ActionResult,
        Actor,
        AddNote,
        AnswerInformation,
        AssignMediator,
        Deadline,
        DeadlineRequest,
        DeclareImpasse,
        Dismiss,
        DisputeInput,
        DisputeOutcome,
        DisputeState,
        EventRecord,
        ExtendDeadline,
        ExtendDeadlineRequest,
        HistoryEntry,
        InformationRequestView,
        LinkFiling,
        MediatorChoice,
        MediatorRequest,
        NoteView,
        NotificationRequest,
        OfferView,
        OpenTask,
        Party,
        PrecedentRecord,
        ProposeSettlement,
        RecordAssignment,
        Recuse,
        RequestInformation,
        RespondToOffer,
        ShiftDeadlineRequest,
        TaskOpen,
        Withdraw,
        remedy_parties,
    )
    from workflows.transitions import allowed_actions, why_not

ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))

_T = TypeVar("_T")

MEDIATION_STAGES = frozenset({DisputeStage.MEDIATION, DisputeStage.AWAITING_PARTY})


@dataclass
class _InformationRequest:
    id: str
    party_id: str
    questions: str
    requested_at: datetime
    deadline: Deadline
    answered_at: datetime | None = None
    answer: str | None = None


@dataclass
class _Offer:
    id: str
    view: ProposeSettlement
    proposed_at: datetime
    responses: dict[str, bool] = field(default_factory=dict)
    open: bool = True


@dataclass
class _Clock:
    """One running deadline and the warnings already sent for it."""

    deadline: Deadline
    warned: set[float] = field(default_factory=set)


@workflow.defn
class DisputeWorkflow:
    def __init__(self) -> None:
        self._d: DisputeInput
        self._stage = DisputeStage.FILED
        self._seq = 0
        self._record_lock = asyncio.Lock()
        self._history: list[HistoryEntry] = []
        self._stage_log: list[tuple[DisputeStage, datetime]] = []
        self._round = 0
        self._candidate: MediatorChoice | None = None
        self._mediator: MediatorChoice | None = None
        self._excluded: list[str] = []
        self._admin_pick: tuple[MediatorChoice, Actor, str] | None = None
        self._clocks: dict[str, _Clock] = {}
        self._breaches: list[str] = []
        self._info: dict[str, _InformationRequest] = {}
        self._pending_info: str | None = None
        self._offers: dict[str, _Offer] = {}
        self._agreed: _Offer | None = None
        self._impasse: str | None = None
        self._notes: list[NoteView] = []
        self._tasks: dict[str, OpenTask] = {}
        self._linked: list[str] = []
        self._outcome: str | None = None
        self._wakeups = 0

    # ======================================================================================
    # The lifecycle (SPEC section 3), top to bottom
    # ======================================================================================

    @workflow.run
    async def run(self, dispute: DisputeInput) -> DisputeOutcome:
        self._d = dispute
        await self._acknowledge_filing()
        while self._stage.is_open and self._stage is not DisputeStage.FORMAL_REVIEW:
            await self._secure_neutral_mediator()
            if self._mediator is None:
                break
            await self._mediate()
            if self._agreed is not None:
                await self._settle()
            elif self._impasse is not None:
                await self._escalate_to_formal_review(self._impasse)
        if self._stage is DisputeStage.FORMAL_REVIEW:
            await self._hold_for_formal_review()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DisputeOutcome(number=self._d.number, stage=self._stage, outcome=self._outcome)

    async def _acknowledge_filing(self) -> None:
        f = self._d.filing
        seq = await self._record(
            SYSTEM,
            "filed",
            f"{f.category.value} filed by {f.filed_by} against {', '.join(f.respondent_ids)}",
            content={"filing": f.model_dump(mode="json"), "playbook": self._d.terms.version},
            stage=DisputeStage.FILED,
        )
        await self._notify(seq, "acknowledgement", self._d.claimant.contacts)
        await self._notify(
            seq, "respondent_notice", tuple(c for p in self._d.respondents for c in p.contacts)
        )

    async def _secure_neutral_mediator(self) -> None:
        """Triage: offer the dispute to eligible mediators until one accepts (SPEC 3).

        Only this loop makes offers; an admin's pick is queued by `assign_mediator` and
        offered here, so two offers can never race each other.
        """
        if self._stage is not DisputeStage.TRIAGE:
            await self._enter(DisputeStage.TRIAGE, "triage: finding a neutral mediator")
        while self._mediator is None and self._stage is DisputeStage.TRIAGE:
            if self._admin_pick is not None:
                choice, actor, reason = self._admin_pick
                await self._offer_to(choice, actor, reason)
                self._admin_pick = None
            elif self._candidate is None:
                choice = await self._choose_mediator(chosen_person_id=None)
                if self._admin_pick is not None or self._stage is not DisputeStage.TRIAGE:
                    continue  # an admin picked someone, or the dispute ended, meanwhile
                if choice.person_id is None:
                    await self._ask_admins_to_assign(choice.reason)
                    await workflow.wait_condition(
                        lambda: self._admin_pick is not None or not self._stage.is_open
                    )
                    continue
                await self._offer_to(choice, SYSTEM, choice.reason)
            offered_round = self._round
            expired = await self._run_clock(
                "acceptance",
                lambda: (
                    self._mediator is not None
                    or self._candidate is None
                    or self._admin_pick is not None
                    or self._stage is not DisputeStage.TRIAGE
                ),
            )
            if expired and self._round == offered_round and self._mediator is None:
                await self._expire_offer()

    async def _mediate(self) -> None:
        """Mediation: run the clock until settlement, impasse, recusal, or the deadline."""
        mediator = self._mediator
        if mediator is None or mediator.person_id is None:
            return
        deadline = await self._compute_deadline(
            "mediation", mediator.calendar or "", self._d.terms.mediation_days
        )
        self._clocks["mediation"] = _Clock(deadline)
        await self._enter(
            DisputeStage.MEDIATION,
            f"mediation with {mediator.name}",
            deadline=deadline,
            opens=(
                self._task(
                    TaskKind.MEDIATE, "mediate", mediator.person_id, Role.MEDIATOR, deadline.due_at
                ),
            ),
        )
        # The mediate task is closed by whatever ends mediation: settlement, escalation,
        # recusal, reassignment, withdrawal or dismissal.
        breached = await self._run_clock("mediation", self._mediation_concluded)
        if breached and self._stage in MEDIATION_STAGES:
            self._breaches.append("mediation")
            self._impasse = "the mediation deadline passed without a settlement"

    def _mediation_concluded(self) -> bool:
        return (
            self._agreed is not None
            or self._impasse is not None
            or self._mediator is None
            or self._stage not in MEDIATION_STAGES
        )

    async def _settle(self) -> None:
        """All parties accepted an offer: record the remedies, write the precedent, close."""
        offer = self._agreed
        if offer is None:
            return
        seq = await self._record(
            SYSTEM,
            "settled",
            f"all parties accepted {offer.id}",
            content={
                "offer": offer.id,
                "remedies": [r.model_dump(mode="json") for r in offer.view.remedies],
                "terms": offer.view.terms,
            },
            stage=DisputeStage.SETTLED,
            clear_deadline=True,
            outcome="settled",
            done=self._untask("mediate"),
        )
        self._outcome = "settled"
        await self._notify(seq, "settlement", self._everyone())
        await self._write_precedent(offer)
        await self._conclude(DisputeStage.CLOSED, SYSTEM, "closed", "settled in mediation")

    async def _escalate_to_formal_review(self, reason: str) -> None:
        stale = self._untask(*self._open_task_names())
        seq = await self._enter(
            DisputeStage.FORMAL_REVIEW,
            f"escalated to formal review: {reason}",
            clear=True,
            cancelled=stale,
            opens=(self._task(TaskKind.FORMAL_REVIEW, "formal-review", None, Role.ADMIN, None),),
        )
        await self._notify(
            seq, "escalation", (*self._everyone(), self._d.admin_email), reason=reason
        )

    async def _hold_for_formal_review(self) -> None:
        # The board's review is the next stage of the product; until it runs here the dispute
        # waits in formal review with an admin task, and can still be withdrawn.
        await workflow.wait_condition(lambda: not self._stage.is_open)

    # ======================================================================================
    # Neutral assignment
    # ======================================================================================

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

    async def _offer_to(self, choice: MediatorChoice, actor: Actor, reason: str) -> None:
        if choice.person_id is None:
            return
        deadline = await self._compute_deadline(
            "acceptance", choice.calendar or "", self._d.terms.acceptance_days
        )
        self._round += 1
        self._candidate = choice
        self._clocks["acceptance"] = _Clock(deadline)
        seq = await self._record(
            actor,
            "mediator_offered",
            f"offered to {choice.name}: {reason}",
            content={"person_id": choice.person_id, "round": self._round, "reason": reason},
            deadline=deadline,
            assignment=RecordAssignment(
                round=self._round, person_id=choice.person_id, state=AssignmentState.OFFERED
            ),
            done=self._untask("assign-mediator"),
            opens=(
                self._task(
                    TaskKind.ACCEPT_ASSIGNMENT,
                    f"accept-{self._round}",
                    choice.person_id,
                    Role.MEDIATOR,
                    deadline.due_at,
                ),
            ),
        )
        await self._notify(seq, "assignment", (choice.email or "",), deadline=deadline.due_at)

    async def _expire_offer(self) -> None:
        candidate = self._candidate
        if candidate is None or candidate.person_id is None:
            return
        self._candidate = None
        self._excluded.append(candidate.person_id)
        self._breaches.append("acceptance")
        await self._record(
            SYSTEM,
            "assignment_expired",
            f"{candidate.name} did not accept in time; reassigning",
            content={"person_id": candidate.person_id, "round": self._round},
            assignment=RecordAssignment(
                round=self._round, person_id=candidate.person_id, state=AssignmentState.EXPIRED
            ),
            cancelled=self._untask(f"accept-{self._round}"),
        )

    async def _ask_admins_to_assign(self, reason: str) -> None:
        seq = await self._record(
            SYSTEM,
            "no_eligible_mediator",
            reason,
            content={"reason": reason},
            opens=(
                self._task(TaskKind.ASSIGN_MEDIATOR, "assign-mediator", None, Role.ADMIN, None),
            ),
        )
        await self._notify(seq, "admin_task", (self._d.admin_email,), reason=reason)

    # ======================================================================================
    # Clocks: deadlines, warnings at the exact instant, pauses
    # ======================================================================================

    async def _run_clock(self, purpose: str, concluded: Callable[[], bool]) -> bool:
        """Wait until `concluded()` or the deadline; True when the deadline passed first.

        Wakes for each warning instant and whenever an update moves a deadline. While an
        information request is open the mediation clock stands still and the party's own
        deadline runs instead.
        """
        while not concluded():
            running = self._running_clock(purpose)
            clock = self._clocks[running]
            now = workflow.now()
            if now >= clock.deadline.due_at:
                if running == purpose:
                    await self._record(
                        SYSTEM,
                        "deadline_passed",
                        f"{purpose} deadline passed",
                        content={"purpose": purpose, "due_at": clock.deadline.due_at.isoformat()},
                    )
                    return True
                await self._information_overdue()
                continue
            for point in clock.deadline.warnings:
                if point.at <= now and point.fraction not in clock.warned:
                    await self._warn(running, clock, point.fraction)
            next_at = min(
                [p.at for p in clock.deadline.warnings if p.fraction not in clock.warned]
                + [clock.deadline.due_at]
            )
            seen = self._wakeups
            try:
                await workflow.wait_condition(
                    lambda seen=seen: concluded() or self._wakeups != seen,  # type: ignore[misc]
                    timeout=max(next_at - now, timedelta(seconds=0)),
                )
            except TimeoutError:
                pass
        return False

    def _running_clock(self, purpose: str) -> str:
        if purpose == "mediation" and self._pending_info is not None:
            return f"information:{self._pending_info}"
        return purpose

    def _wake(self) -> None:
        self._wakeups += 1

    async def _warn(self, purpose: str, clock: _Clock, fraction: float) -> None:
        clock.warned.add(fraction)
        pct = round(fraction * 100)
        seq = await self._record(
            SYSTEM,
            "deadline_warning",
            f"{pct}% of the {purpose} window has passed",
            content={
                "purpose": purpose,
                "fraction": fraction,
                "due_at": clock.deadline.due_at.isoformat(),
            },
        )
        await self._notify(
            seq,
            "warning",
            self._responsible_for(purpose),
            purpose=purpose.split(":")[0],
            percent=pct,
            deadline=clock.deadline.due_at,
            explanation=clock.deadline.explanation,
        )

    def _responsible_for(self, purpose: str) -> tuple[str, ...]:
        if purpose.startswith("information:"):
            request = self._info[purpose.split(":", 1)[1]]
            return self._party(request.party_id).contacts
        person = self._mediator if purpose == "mediation" else self._candidate
        return (person.email,) if person and person.email else (self._d.admin_email,)

    async def _information_overdue(self) -> None:
        request_id = self._pending_info
        if request_id is None:
            return
        self._breaches.append(f"information:{request_id}")
        await self._record(
            SYSTEM,
            "information_overdue",
            f"{self._info[request_id].party_id} did not answer {request_id} in time",
            content={"request_id": request_id},
            cancelled=self._untask(f"info-{request_id}"),
        )
        await self._resume_clock(f"the answer to {request_id} was not given in time")

    async def _resume_clock(self, why: str) -> None:
        """End the pause: move the mediation deadline by exactly the business time paused."""
        request_id = self._pending_info
        if request_id is None:
            return
        self._pending_info = None
        request = self._info[request_id]
        clock = self._clocks["mediation"]
        paused_until = workflow.now()
        moved = await workflow.execute_activity_method(
            DeadlineActivities.shift_deadline,
            ShiftDeadlineRequest(
                deadline=clock.deadline,
                paused_from=request.requested_at,
                paused_until=paused_until,
                playbook_version=self._d.terms.version,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        clock.deadline = moved
        self._stage = DisputeStage.MEDIATION
        await self._record(
            SYSTEM,
            "clock_resumed",
            f"mediation clock resumed: {why}",
            content={
                "request_id": request_id,
                "paused_from": request.requested_at.isoformat(),
                "paused_until": paused_until.isoformat(),
            },
            stage=DisputeStage.MEDIATION,
            deadline=moved,
        )
        self._wake()

    async def _compute_deadline(self, purpose: str, calendar: str, days: int) -> Deadline:
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

    # ======================================================================================
    # Updates: human actions
    # ======================================================================================

    def _check(self, action: Action, payload: ActionPayload) -> None:
        """Reject before anything is recorded: the transition table, then who may act."""
        problem = why_not(self._stage, action, payload.actor.role)
        if problem:
            raise ValueError(problem)
        actor = payload.actor
        if actor.role is Role.PARTNER and actor.partner_id not in self._party_ids():
            raise ValueError(f"{actor.id} does not act for a party to {self._d.number}")
        if actor.role is Role.MEDIATOR and action is not Action.ACCEPT_ASSIGNMENT:
            current = self._mediator or self._candidate
            if current is None or current.person_id != actor.id:
                raise ValueError(f"{actor.id} is not the mediator assigned to {self._d.number}")

    # --- assignment ---------------------------------------------------------------------

    @workflow.update
    async def accept_assignment(self, req: AcceptAssignment) -> ActionResult:
        candidate = self._require(self._candidate, "no mediator has been offered the dispute")
        self._mediator = candidate
        self._wake()
        await self._record(
            req.actor,
            "assignment_accepted",
            f"{candidate.name} accepted with an impartiality declaration",
            content={"declaration": req.impartiality_declaration, "round": self._round},
            mediator_id=candidate.person_id,
            assignment=RecordAssignment(
                round=self._round, person_id=req.actor.id, state=AssignmentState.ACCEPTED
            ),
            done=self._untask(f"accept-{self._round}"),
        )
        # Answer once mediation has begun, so the mediator's next action finds it open.
        await workflow.wait_condition(lambda: self._stage is not DisputeStage.TRIAGE)
        return self._result("assignment accepted; mediation has begun")

    @accept_assignment.validator
    def _validate_accept(self, req: AcceptAssignment) -> None:
        self._check(Action.ACCEPT_ASSIGNMENT, req)
        if self._candidate is None or self._candidate.person_id != req.actor.id:
            raise ValueError(f"{req.actor.id} has not been offered {self._d.number}")
        if self._mediator is not None:
            raise ValueError(f"{self._d.number} already has a mediator")

    @workflow.update
    async def recuse(self, req: Recuse) -> ActionResult:
        person = self._require(self._mediator or self._candidate, "nobody is assigned")
        stale = self._untask(*self._open_task_names())
        self._excluded.append(req.actor.id)
        self._mediator = None
        self._candidate = None
        self._stage = DisputeStage.TRIAGE
        self._wake()
        await self._record(
            req.actor,
            "recused",
            f"{person.name} recused: {req.reason}",
            content={"reason": req.reason, "round": self._round},
            stage=DisputeStage.TRIAGE,
            clear_deadline=True,
            mediator_id="",
            assignment=RecordAssignment(
                round=self._round, person_id=req.actor.id, state=AssignmentState.RECUSED
            ),
            cancelled=stale,
        )
        return self._result("recusal recorded; the dispute will be reassigned")

    @recuse.validator
    def _validate_recuse(self, req: Recuse) -> None:
        self._check(Action.RECUSE, req)

    @workflow.update
    async def assign_mediator(self, req: AssignMediator) -> ActionResult:
        choice = await self._choose_mediator(chosen_person_id=req.person_id)
        if choice.person_id is None:
            raise ApplicationError(choice.reason, type="IneligibleMediator", non_retryable=True)
        if not self._stage.is_open or self._pending_info is not None:
            raise ApplicationError(
                f"{self._d.number} changed while the mediator was screened; try again",
                type="StaleAction",
                non_retryable=True,
            )
        previous = self._mediator or self._candidate
        stale = self._untask(*(n for n in self._open_task_names() if n != "assign-mediator"))
        self._mediator = None
        self._candidate = None
        self._stage = DisputeStage.TRIAGE
        self._admin_pick = (choice, req.actor, f"assigned by an admin: {req.reason}")
        self._wake()
        if previous is not None and previous.person_id is not None:
            await self._record(
                req.actor,
                "mediator_released",
                f"{previous.name} released by an admin: {req.reason}",
                content={"person_id": previous.person_id, "round": self._round},
                stage=DisputeStage.TRIAGE,
                clear_deadline=True,
                mediator_id="",
                assignment=RecordAssignment(
                    round=self._round,
                    person_id=previous.person_id,
                    state=AssignmentState.RELEASED,
                ),
                cancelled=stale,
            )
        await workflow.wait_condition(lambda: self._admin_pick is None or not self._stage.is_open)
        return self._result(f"offered to {choice.name}")

    @assign_mediator.validator
    def _validate_assign(self, req: AssignMediator) -> None:
        self._check(Action.ASSIGN_MEDIATOR, req)
        if self._pending_info is not None:
            raise ValueError("a party owes information; reassign after the answer or its deadline")
        current = self._mediator or self._candidate
        if current is not None and current.person_id == req.person_id:
            raise ValueError(f"person_id: {req.person_id} is already assigned")
        if req.person_id in self._excluded:
            raise ValueError(f"person_id: {req.person_id} recused or let an offer expire here")

    # --- mediation ------------------------------------------------------------------------

    @workflow.update
    async def add_note(self, req: AddNote) -> ActionResult:
        note = NoteView(
            at=workflow.now(),
            author=req.actor.id,
            text=req.text,
            visibility=req.visibility,
            caucus_partner_id=req.caucus_partner_id,
        )
        self._notes.append(note)
        where = (
            "shared"
            if req.visibility is NoteVisibility.SHARED
            else f"caucus with {req.caucus_partner_id}"
        )
        await self._record(
            req.actor, "note_added", f"note ({where})", content=note.model_dump(mode="json")
        )
        return self._result("note recorded")

    @add_note.validator
    def _validate_note(self, req: AddNote) -> None:
        self._check(Action.ADD_NOTE, req)
        if req.caucus_partner_id is not None and req.caucus_partner_id not in self._party_ids():
            raise ValueError(f"caucus_partner_id: {req.caucus_partner_id} is not a party")

    @workflow.update
    async def request_information(self, req: RequestInformation) -> ActionResult:
        party = self._party(req.party_id)
        request_id = f"info-{len(self._info) + 1}"
        now = workflow.now()
        # The stage changes at once, so a second request is refused while this one is set up;
        # the clock switches over only once the party's deadline exists.
        self._stage = DisputeStage.AWAITING_PARTY
        deadline = await self._compute_deadline(
            f"information:{request_id}", party.calendar, self._d.terms.information_days
        )
        self._info[request_id] = _InformationRequest(
            id=request_id,
            party_id=req.party_id,
            questions=req.questions,
            requested_at=now,
            deadline=deadline,
        )
        self._clocks[f"information:{request_id}"] = _Clock(deadline)
        self._pending_info = request_id
        self._wake()
        seq = await self._record(
            req.actor,
            "information_requested",
            f"information requested from {party.name}; mediation clock paused",
            content={
                "request_id": request_id,
                "party_id": req.party_id,
                "questions": req.questions,
            },
            stage=DisputeStage.AWAITING_PARTY,
            deadline=deadline,
            opens=(
                self._task(
                    TaskKind.ANSWER_INFORMATION,
                    f"info-{request_id}",
                    req.party_id,
                    Role.PARTNER,
                    deadline.due_at,
                ),
            ),
        )
        await self._notify(
            seq,
            "information_request",
            party.contacts,
            questions=req.questions,
            request_id=request_id,
            deadline=deadline.due_at,
            explanation=deadline.explanation,
        )
        return self._result(f"{request_id} sent to {party.name}", reference=request_id)

    @request_information.validator
    def _validate_request(self, req: RequestInformation) -> None:
        self._check(Action.REQUEST_INFORMATION, req)
        if req.party_id not in self._party_ids():
            raise ValueError(f"party_id: {req.party_id} is not a party to {self._d.number}")

    @workflow.update
    async def answer_information(self, req: AnswerInformation) -> ActionResult:
        request = self._info[req.request_id]
        request.answered_at = workflow.now()
        request.answer = req.answer
        seq = await self._record(
            req.actor,
            "information_answered",
            f"{request.party_id} answered {req.request_id}",
            content={"request_id": req.request_id, "answer": req.answer},
            done=self._untask(f"info-{req.request_id}"),
        )
        await self._notify(
            seq, "information_answered", self._mediator_email(), request_id=req.request_id
        )
        await self._resume_clock(f"{request.party_id} answered {req.request_id}")
        return self._result("answer recorded; mediation clock resumed")

    @answer_information.validator
    def _validate_answer(self, req: AnswerInformation) -> None:
        self._check(Action.ANSWER_INFORMATION, req)
        request = self._info.get(req.request_id)
        if request is None or self._pending_info != req.request_id:
            raise ValueError(f"request_id: {req.request_id} is not an open information request")
        if request.party_id != req.actor.partner_id:
            raise ValueError(f"request_id: {req.request_id} was sent to {request.party_id}")

    @workflow.update
    async def propose_settlement(self, req: ProposeSettlement) -> ActionResult:
        # A new offer supersedes any still open: their answers are no longer asked for.
        superseded: list[str] = []
        for offer in self._offers.values():
            if offer.open:
                superseded += [f"{offer.id}-{p}" for p in self._party_ids()]
            offer.open = False
        offer_id = f"offer-{len(self._offers) + 1}"
        self._offers[offer_id] = _Offer(id=offer_id, view=req, proposed_at=workflow.now())
        seq = await self._record(
            req.actor,
            "settlement_proposed",
            f"{offer_id}: {len(req.remedies)} remedies proposed",
            content={
                "offer_id": offer_id,
                "terms": req.terms,
                "remedies": [r.model_dump(mode="json") for r in req.remedies],
            },
            cancelled=self._untask(*superseded),
            opens=tuple(
                self._task(
                    TaskKind.RESPOND_TO_OFFER,
                    f"{offer_id}-{party.partner_id}",
                    party.partner_id,
                    Role.PARTNER,
                    self._clocks["mediation"].deadline.due_at,
                )
                for party in self._parties()
            ),
        )
        await self._notify(
            seq,
            "offer",
            self._party_contacts(),
            offer_id=offer_id,
            terms=req.terms,
            remedies=[r.model_dump(mode="json") for r in req.remedies],
        )
        return self._result(f"{offer_id} sent to the parties", reference=offer_id)

    @propose_settlement.validator
    def _validate_offer(self, req: ProposeSettlement) -> None:
        self._check(Action.PROPOSE_SETTLEMENT, req)
        allowed = self._d.terms.allowed_remedies
        parties = set(self._party_ids())
        for i, remedy in enumerate(req.remedies):
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

    @workflow.update
    async def respond_to_offer(self, req: RespondToOffer) -> ActionResult:
        offer = self._offers[req.offer_id]
        partner_id = self._require(req.actor.partner_id, "a partner acts for a partner")
        offer.responses[partner_id] = req.accept
        verdict = "accepted" if req.accept else "rejected"
        if not req.accept:
            offer.open = False
        seq = await self._record(
            req.actor,
            f"offer_{verdict}",
            f"{partner_id} {verdict} {offer.id}",
            content={"offer_id": offer.id, "accept": req.accept, "comment": req.comment},
            done=self._untask(f"{offer.id}-{partner_id}"),
            # A rejection ends the offer: the other parties need not answer it any more.
            cancelled=()
            if req.accept
            else self._untask(*(f"{offer.id}-{p}" for p in self._party_ids() if p != partner_id)),
        )
        if not req.accept:
            await self._notify(
                seq,
                "offer_rejected",
                (*self._mediator_email(), *self._party_contacts()),
                offer_id=offer.id,
                partner_id=partner_id,
                comment=req.comment,
            )
            return self._result(f"{offer.id} rejected; mediation continues")
        if all(offer.responses.get(p) for p in self._party_ids()):
            offer.open = False
            self._agreed = offer
            await workflow.wait_condition(lambda: not self._stage.is_open)
            return self._result(f"{offer.id} accepted by every party; the dispute is settled")
        return self._result(f"{offer.id} accepted by {partner_id}; waiting for the other parties")

    @respond_to_offer.validator
    def _validate_response(self, req: RespondToOffer) -> None:
        self._check(Action.RESPOND_TO_OFFER, req)
        offer = self._offers.get(req.offer_id)
        if offer is None or not offer.open:
            raise ValueError(f"offer_id: {req.offer_id} is not an open settlement offer")
        if req.actor.partner_id in offer.responses:
            raise ValueError(
                f"offer_id: {req.actor.partner_id} has already answered {req.offer_id}"
            )

    @workflow.update
    async def declare_impasse(self, req: DeclareImpasse) -> ActionResult:
        # An open information request lapses: mediation is over, so its answer no longer
        # moves any clock.
        self._pending_info = None
        self._impasse = req.reason
        await self._record(
            req.actor, "impasse_declared", req.reason, content={"reason": req.reason}
        )
        await workflow.wait_condition(lambda: self._stage not in MEDIATION_STAGES)
        return self._result("impasse declared; the dispute is in formal review")

    @declare_impasse.validator
    def _validate_impasse(self, req: DeclareImpasse) -> None:
        self._check(Action.DECLARE_IMPASSE, req)

    @workflow.update
    async def dismiss(self, req: Dismiss) -> ActionResult:
        await self._conclude(DisputeStage.DISMISSED, req.actor, "dismissed", req.reason)
        return self._result("dismissed")

    @dismiss.validator
    def _validate_dismiss(self, req: Dismiss) -> None:
        self._check(Action.DISMISS, req)

    @workflow.update
    async def withdraw(self, req: Withdraw) -> ActionResult:
        await self._conclude(DisputeStage.WITHDRAWN, req.actor, "withdrawn", req.reason)
        return self._result("withdrawn")

    @withdraw.validator
    def _validate_withdraw(self, req: Withdraw) -> None:
        self._check(Action.WITHDRAW, req)
        if req.actor.partner_id != self._d.filing.claimant_id:
            raise ValueError("only the claimant may withdraw a dispute")

    @workflow.update
    async def extend_deadline(self, req: ExtendDeadline) -> ActionResult:
        purpose = self._running_clock(
            "acceptance" if self._stage is DisputeStage.TRIAGE else "mediation"
        )
        clock = self._clocks[purpose]
        extended = await workflow.execute_activity_method(
            DeadlineActivities.extend_deadline,
            ExtendDeadlineRequest(
                deadline=clock.deadline,
                business_days=req.business_days,
                reason=req.reason,
                playbook_version=self._d.terms.version,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        # Warnings already sent are not sent again for the longer window.
        clock.deadline = extended
        self._wake()
        await self._record(
            req.actor,
            "deadline_extended",
            f"{purpose} deadline extended by {req.business_days} business days: {req.reason}",
            content={
                "purpose": purpose,
                "business_days": req.business_days,
                "reason": req.reason,
                "due_at": extended.due_at.isoformat(),
            },
            deadline=extended,
        )
        return self._result(f"{purpose} deadline now {extended.due_at.isoformat()}")

    @extend_deadline.validator
    def _validate_extend(self, req: ExtendDeadline) -> None:
        self._check(Action.EXTEND_DEADLINE, req)
        purpose = self._running_clock(
            "acceptance" if self._stage is DisputeStage.TRIAGE else "mediation"
        )
        if purpose not in self._clocks:
            raise ValueError("there is no running deadline to extend yet")

    @workflow.update
    async def link_filing(self, req: LinkFiling) -> ActionResult:
        if req.filing_key in self._linked:
            return self._result("filing already linked")
        self._linked.append(req.filing_key)
        seq = await self._record(
            req.actor,
            "filing_linked",
            f"a matching filing was linked to this dispute: {req.summary}",
            content={
                "filing_key": req.filing_key,
                "summary": req.summary,
                "filed_by": req.actor.id,
            },
        )
        await self._notify(seq, "filing_linked", (req.actor.id,), linked_summary=req.summary)
        return self._result("linked to the open dispute")

    @link_filing.validator
    def _validate_link(self, req: LinkFiling) -> None:
        if not self._stage.is_open:
            raise ValueError(f"{self._d.number} is {self._stage.value}")

    # ======================================================================================
    # Query
    # ======================================================================================

    @workflow.query
    def get_state(self) -> DisputeState:
        return DisputeState(
            number=self._d.number,
            stage=self._stage,
            category=self._d.filing.category,
            claimant_id=self._d.filing.claimant_id,
            respondent_ids=tuple(self._d.filing.respondent_ids),
            mediator_id=self._mediator.person_id if self._mediator else None,
            candidate_mediator_id=(
                self._candidate.person_id if self._candidate and not self._mediator else None
            ),
            playbook_version=self._d.terms.version,
            deadlines=self._live_deadlines(),
            clock_paused=self._pending_info is not None,
            open_tasks=tuple(self._tasks.values()),
            information_requests=tuple(
                InformationRequestView(
                    id=r.id,
                    party_id=r.party_id,
                    questions=r.questions,
                    requested_at=r.requested_at,
                    due_at=r.deadline.due_at,
                    answered_at=r.answered_at,
                    answer=r.answer,
                )
                for r in self._info.values()
            ),
            offers=tuple(
                OfferView(
                    id=o.id,
                    remedies=o.view.remedies,
                    terms=o.view.terms,
                    proposed_at=o.proposed_at,
                    responses=dict(o.responses),
                    open=o.open,
                )
                for o in self._offers.values()
            ),
            notes=tuple(self._notes),
            history=tuple(self._history),
            linked_filings=tuple(self._linked),
            outcome=self._outcome,
            allowed_actions={role.value: allowed_actions(self._stage, role) for role in Role},
        )

    def _live_deadlines(self) -> tuple[Deadline, ...]:
        if self._stage is DisputeStage.TRIAGE and "acceptance" in self._clocks and self._candidate:
            return (self._clocks["acceptance"].deadline,)
        if self._stage in MEDIATION_STAGES:
            running = [self._clocks["mediation"].deadline]
            if self._pending_info is not None:
                running.append(self._clocks[f"information:{self._pending_info}"].deadline)
            return tuple(running)
        return ()

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
    ) -> int:
        """Append to the audit trail, and in the same write project the read model and the
        task inbox, so the two never disagree; returns the entry's seq."""
        async with self._record_lock:
            self._seq += 1
            seq = self._seq
            at = workflow.now()
            if stage is not None:
                self._stage_log.append((stage, at))
            self._history.append(
                HistoryEntry(
                    seq=seq, at=at, actor=actor.id, role=actor.role, action=action, summary=summary
                )
            )
            await workflow.execute_activity_method(
                RecordActivities.record_event,
                EventRecord(
                    number=self._d.number,
                    seq=seq,
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
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            return seq

    async def _enter(
        self,
        stage: DisputeStage,
        summary: str,
        *,
        deadline: Deadline | None = None,
        clear: bool = False,
        opens: tuple[TaskOpen, ...] = (),
        cancelled: tuple[str, ...] = (),
    ) -> int:
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
        )

    async def _conclude(self, stage: DisputeStage, actor: Actor, action: str, reason: str) -> None:
        """End the dispute in a terminal stage; cancels whatever was still open."""
        stale = self._untask(*self._open_task_names())
        self._stage = stage
        self._pending_info = None
        self._outcome = self._outcome or action
        self._wake()
        seq = await self._record(
            actor,
            action,
            reason,
            content={"reason": reason},
            stage=stage,
            clear_deadline=True,
            outcome=self._outcome,
            cancelled=stale,
        )
        await self._notify(
            seq,
            "closure",
            (*self._everyone(), self._d.admin_email),
            outcome=self._outcome,
            reason=reason,
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
        next audit entry."""
        keys = (f"{self._d.number}:{name}" for name in names)
        return tuple(key for key in keys if self._tasks.pop(key, None) is not None)

    def _open_task_names(self) -> tuple[str, ...]:
        prefix = f"{self._d.number}:"
        return tuple(key.removeprefix(prefix) for key in self._tasks)

    async def _notify(
        self, seq: int, template: str, recipients: tuple[str, ...], **extra: Any
    ) -> None:
        wanted = tuple(dict.fromkeys(r for r in recipients if r))
        if not wanted:
            return
        context: dict[str, object] = {
            "number": self._d.number,
            "category": self._d.filing.category.value,
            "summary": self._d.filing.summary,
            "claimant": self._d.claimant.name,
            "respondents": [p.name for p in self._d.respondents],
            "stage": self._stage.value,
            "mediator": self._mediator.name if self._mediator else None,
        }
        for name, value in extra.items():
            context[name] = value.isoformat() if isinstance(value, datetime) else value
        await workflow.execute_activity_method(
            NotificationActivities.send_notification,
            NotificationRequest(
                key=f"{self._d.number}:{seq}:{template}",
                number=self._d.number,
                template=template,
                recipients=wanted,
                context=context,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
        )

    async def _write_precedent(self, offer: _Offer) -> None:
        timeline = tuple(
            {"stage": stage.value, "entered_at": at.isoformat()} for stage, at in self._stage_log
        ) + tuple({"breach": b} for b in self._breaches)
        await workflow.execute_activity_method(
            RecordActivities.write_precedent,
            PrecedentRecord(
                number=self._d.number,
                category=self._d.filing.category,
                playbook_version=self._d.terms.version,
                clauses=self._d.terms.clauses,
                facts=self._d.filing.facts,
                contested_objects=tuple(self._d.filing.contested_objects),
                outcome="settled",
                remedies=offer.view.remedies,
                rationale=offer.view.terms,
                timeline=timeline,
                claimant_tier=self._d.claimant.tier,
                claimant_region=self._d.claimant.region,
                amount_at_stake=self._d.filing.amount_at_stake,
                decided_at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    # --- small helpers ------------------------------------------------------------------------

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
            number=self._d.number, stage=self._stage, message=message, reference=reference
        )
