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

This module is the lifecycle, read top to bottom; the updates and the query are in
`workflows/actions.py`, the deadline clocks in `workflows/clocks.py`, and the recording,
task and notification plumbing in `workflows/core.py`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.remedies import RemedyActivities
    from models.enums import (
        AssignmentState,
        DisputeStage,
        Role,
        TaskKind,
    )
    from models.payloads import (
        SYSTEM,
        Actor,
        DisputeInput,
        DisputeOutcome,
        MediatorChoice,
        RecordAssignment,
        Remedy,
        RemedyOrder,
        RemedyProgress,
        RulingView,
    )
    from workflows.actions import DisputeActions
    from workflows.core import (
        CONTINUE_AS_NEW_PATCH,
        FORMAL_REVIEW_PATCH,
        LATE_CONTINUE_AS_NEW_PATCH,
        MEDIATION_STAGES,
        PATCHES_AT_START_PATCH,
        RECOMMENDATION_PATCH,
        REMEDY_DEADLINE_PATCH,
        REMEDY_RETRY,
        REMEDY_STAGE_PATCH,
        REVIEW_DECISIONS_PATCH,
        REVIEW_STAGES,
        SIMILAR_PRECEDENTS_PATCH,
        Clock,
        Offer,
        notice,
    )


@workflow.defn
class DisputeWorkflow(DisputeActions):
    # ======================================================================================
    # The lifecycle (SPEC section 3), top to bottom
    # ======================================================================================

    @workflow.init
    def __init__(self, dispute: DisputeInput) -> None:
        # Here, not in run: actions sent while a run continued as new reach the next run in
        # its first activation, and their validators need the dispute and its state already.
        super().__init__()
        # In the run's first task, before any record can split a task (PATCHES_AT_START_PATCH).
        self._patches_at_start = workflow.patched(PATCHES_AT_START_PATCH)
        self._recommends = workflow.patched(RECOMMENDATION_PATCH)
        self._d = dispute
        if dispute.carried is not None:
            self._restore(dispute.carried)

    @workflow.run
    async def run(self, dispute: DisputeInput) -> DisputeOutcome:
        carried = dispute.carried
        # The lifecycle holds the decision lock throughout, except while it waits (`_wait`).
        async with self._deciding():
            if carried is None:
                await self._acknowledge_filing()
            elif self._stage in MEDIATION_STAGES:
                # A run continued as new from mediation (CONTINUE_AS_NEW_PATCH) goes on there.
                await self._mediate(resumed=True)
                if self._agreed is not None:
                    await self._settle()
                elif self._impasse is not None:
                    await self._escalate_to_formal_review(self._impasse)
            elif self._stage is DisputeStage.REMEDY and self._outcome == "settled":
                # Continued as new (LATE_CONTINUE_AS_NEW_PATCH) in a settlement's remedy stage.
                await self._settle(resumed=True)
            elif self._stage in REVIEW_STAGES:
                # Continued as new in formal review, the appeal window or a ruling's remedies.
                await self._formal_review(resumed=True)
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
                await self._formal_review()
        # Actions still waiting for the lock find the dispute ended and are refused by rule.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DisputeOutcome(number=self._d.number, stage=self._stage, outcome=self._outcome)

    async def _acknowledge_filing(self) -> None:
        f = self._d.filing
        origin = self._d.origin if self._recommends else None
        await self._record(
            SYSTEM,
            "filed",
            f"{f.category.value} filed by {f.filed_by} against {', '.join(f.respondent_ids)}"
            + (f" from conflict alert {origin.alert_id}" if origin else ""),
            content={
                "filing": f.model_dump(mode="json"),
                "playbook": self._d.terms.version,
                **({"alert_id": origin.alert_id} if origin else {}),
            },
            stage=DisputeStage.FILED,
            notify=(
                notice("acknowledgement", self._d.claimant.contacts),
                notice(
                    "respondent_notice", tuple(c for p in self._d.respondents for c in p.contacts)
                ),
            ),
        )
        if origin is not None:
            # The alert's snapshot: who registered what, when, as the detection saw it.
            item = origin.evidence
            self._evidence_ids.append(item.id)
            await self._record(
                origin.converted_by,
                "evidence_added",
                f"evidence added ({item.filename}): the conflict alert's snapshot",
                content={"evidence_id": item.id, "sha256": item.sha256, "size": item.size},
                evidence=item,
            )

    async def _secure_neutral_mediator(self) -> None:
        """Triage: offer the dispute to eligible mediators until one accepts (SPEC 3).

        Only this loop makes offers; an admin's pick is queued by `assign_mediator` and
        offered here, so two offers can never race each other.
        """
        if self._stage is not DisputeStage.TRIAGE:
            await self._enter(DisputeStage.TRIAGE, "triage: finding a neutral mediator")
        if self._similar is None and self._patched(SIMILAR_PRECEDENTS_PATCH):
            await self._attach_similar_precedents("triage")
        if self._recommendation is None and self._recommends:
            await self._attach_recommendation("triage")
        # Parties' replies arrive in triage too: it may continue as new while an offer waits.
        self._rollover = self._patched(CONTINUE_AS_NEW_PATCH)
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
                    await self._wait(
                        lambda: self._admin_pick is not None or not self._stage.is_open
                    )
                    continue
                await self._offer_to(choice, SYSTEM, choice.reason)
            offered_round = self._round

            def answered() -> bool:
                return (
                    self._mediator is not None
                    or self._candidate is None
                    or self._admin_pick is not None
                    or self._stage is not DisputeStage.TRIAGE
                )

            expired = await self._run_clock(
                "acceptance", lambda: answered() or self._rollover_wanted()
            )
            if not expired and not answered():
                # The next run takes up the loop here: the offer and its clock are carried.
                await self._continue_as_new()
            if expired and self._round == offered_round and self._mediator is None:
                await self._expire_offer()

    async def _mediate(self, *, resumed: bool = False) -> None:
        """Mediation: run the clock until settlement, impasse, recusal, or the deadline.

        `resumed`: a run continued as new in mediation; its clock and task are carried."""
        mediator = self._mediator
        if mediator is None or mediator.person_id is None:
            return
        if not resumed:
            deadline = await self._compute_deadline(
                "mediation",
                mediator.calendar or "",
                self._d.terms.mediation_days,
                whose=mediator.name,
                task="mediate",
            )
            self._clocks["mediation"] = Clock(deadline)
            await self._enter(
                DisputeStage.MEDIATION,
                f"mediation with {mediator.name}",
                deadline=deadline,
                opens=(
                    self._task(
                        TaskKind.MEDIATE,
                        "mediate",
                        mediator.person_id,
                        Role.MEDIATOR,
                        deadline.due_at,
                    ),
                ),
            )
        # Mediation is where a dispute's history grows (notes, replies, information): here it
        # continues as new when Temporal suggests it.
        self._rollover = self._patched(CONTINUE_AS_NEW_PATCH)
        # The mediate task is closed by whatever ends mediation: settlement, escalation,
        # recusal, reassignment, withdrawal or dismissal.
        while True:
            breached = await self._run_clock(
                "mediation", lambda: self._mediation_concluded() or self._rollover_wanted()
            )
            if breached or self._mediation_concluded():
                break
            # Returns only when the state is too large to hand on: mediation goes on here.
            await self._continue_as_new()
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

    async def _settle(self, *, resumed: bool = False) -> None:
        """All parties accepted an offer: record the remedies, write the precedent, close.

        `resumed`: a run continued as new in the remedy stage that followed the settlement."""
        offer = self._agreed
        if offer is None or not self._stage.is_open:
            return
        if resumed:
            await self._apply_remedies(offer.view.remedies, decision="settlement", resumed=True)
            await self._settled_precedent_and_close(offer)
            return
        lapsed: tuple[str, ...] = ()
        if self._serialised() and self._pending_info is not None:
            # Agreed while a party owed information: the request lapses with mediation.
            lapsed = self._untask(f"info-{self._pending_info}")
            self._pending_info = None
        await self._record(
            SYSTEM,
            "settled",
            f"all parties accepted {offer.id}",
            content={
                "offer": offer.id,
                "remedies": [r.model_dump(mode="json") for r in offer.view.remedies],
                **self._said("terms", offer.view.terms, offer.view.terms_ref),
            },
            stage=DisputeStage.SETTLED,
            clear_deadline=True,
            outcome="settled",
            done=self._untask("mediate"),
            cancelled=lapsed,
            notify=(notice("settlement", self._everyone()),),
        )
        self._outcome = "settled"
        if self._patched(REMEDY_STAGE_PATCH):
            await self._apply_remedies(offer.view.remedies, decision="settlement")
        await self._settled_precedent_and_close(offer)

    async def _settled_precedent_and_close(self, offer: Offer) -> None:
        await self._write_precedent(
            "settled",
            offer.view.remedies,
            offer.view.terms or "",
            rationale_ref=offer.view.terms_ref,
        )
        await self._conclude(DisputeStage.CLOSED, SYSTEM, "closed", "settled in mediation")

    async def _apply_remedies(
        self, remedies: tuple[Remedy, ...], decision: str, *, resumed: bool = False
    ) -> None:
        """Remedy stage: each remedy applied exactly once, then verified, in order; one that
        keeps failing waits for an admin to retry or waive it. Closes only when all are done.

        `resumed`: a run continued as new while a remedy waited for an admin. The remedies
        before it are done (their keys are carried: the ledger never applies one twice), the
        deadline and its warnings are carried, and the wait for the admin goes on."""
        # A remedy can wait days for an admin while parties write: it may continue as new.
        # Only under the decision lock: without it the deadline's watch could be halfway
        # through recording its escalation when the run hands on.
        self._rollover = self._patched(LATE_CONTINUE_AS_NEW_PATCH) and self._serialised()
        if resumed:
            await self._resume_remedies(remedies, decision)
            return
        watch = None
        if self._patched(REMEDY_DEADLINE_PATCH):
            deadline = await self._compute_deadline(
                "remedy", self._d.terms.board_calendar, self._d.terms.remedy_days
            )
            self._clocks["remedy"] = Clock(deadline)
            await self._enter(
                DisputeStage.REMEDY, f"applying {len(remedies)} remedies", deadline=deadline
            )
            # The deadline runs beside the remedies: passing it escalates, it stops nothing.
            watch = asyncio.create_task(self._watch_remedy_deadline())
        else:
            await self._enter(DisputeStage.REMEDY, f"applying {len(remedies)} remedies")
        for position in range(len(remedies)):
            await self._apply_remedy(remedies, decision, position)
        self._remedies_done = True
        if watch is not None:
            await self._wait(watch.done)
            await watch

    async def _apply_remedy(self, remedies: tuple[Remedy, ...], decision: str, at: int) -> None:
        remedy = remedies[at]
        self._remedies[at] = RemedyProgress(position=at, kind=remedy.kind, state="pending")
        self._remedy_keys[at] = f"{self._d.number}:{decision}:{at}"
        while await self._remedy_attempt(self._remedy_order(remedies, at)) == "retry":
            pass

    def _remedy_order(self, remedies: tuple[Remedy, ...], at: int) -> RemedyOrder:
        return RemedyOrder(
            key=self._remedy_keys[at], number=self._d.number, position=at, remedy=remedies[at]
        )

    async def _resume_remedies(self, remedies: tuple[Remedy, ...], decision: str) -> None:
        watch = None
        if "remedy" in self._clocks and "remedy" not in self._breaches:
            # The deadline's watch goes on from the warnings already sent (they are carried).
            watch = asyncio.create_task(self._watch_remedy_deadline())
        waiting = self._remedy_waiting
        if waiting is None:
            raise ApplicationError(
                "continued as new in the remedy stage with no remedy waiting for an admin",
                type="InvariantBroken",
                non_retryable=True,
            )
        if await self._remedy_decided() == "retry":
            while await self._remedy_attempt(self._remedy_order(remedies, waiting)) == "retry":
                pass
        for position in range(waiting + 1, len(remedies)):
            await self._apply_remedy(remedies, decision, position)
        self._remedies_done = True
        if watch is not None:
            await self._wait(watch.done)
            await watch

    async def _watch_remedy_deadline(self) -> None:
        # Beside the lifecycle, so it takes the decision lock like any other actor.
        async with self._deciding():
            await self._escalate_overdue_remedies()

    async def _escalate_overdue_remedies(self) -> None:
        breached = await self._run_clock("remedy", lambda: self._remedies_done)
        if not breached:
            return
        self._breaches.append("remedy")
        await self._record(
            SYSTEM,
            "remedy_overdue",
            "the remedy deadline passed with remedies still outstanding; escalated to the admins",
            content={"remedies": [r.model_dump(mode="json") for r in self._remedies.values()]},
            opens=(self._task(TaskKind.RESOLVE_REMEDY, "remedy-overdue", None, Role.ADMIN, None),),
            notify=(
                notice(
                    "admin_task",
                    (self._d.admin_email,),
                    reason="the remedy deadline passed with remedies still outstanding",
                ),
            ),
        )

    async def _remedy_attempt(self, order: RemedyOrder) -> str:
        """One try with the activity's retries; 'done', or 'retry' when an admin said so."""
        try:
            result = await self._unlocked(
                workflow.execute_activity_method(
                    RemedyActivities.apply_remedy,
                    order,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=REMEDY_RETRY,
                )
            )
        except ActivityError as failure:
            reason = str(failure.cause or failure)
            return await self._ask_admins_about_remedy(order, reason)
        kind = order.remedy.kind
        self._remedies[order.position] = RemedyProgress(
            position=order.position, kind=kind, state=result.state, adapter=result.adapter
        )
        await self._record(
            SYSTEM,
            "remedy_applied",
            f"remedy {order.position + 1} ({kind.value}) applied through {result.adapter}",
            content={"key": order.key, "adapter": result.adapter, "reference": result.external_ref},
            notify=(
                notice(
                    "remedy_applied",
                    (*self._party_contacts(), self._d.admin_email),
                    position=order.position,
                    kind=kind.value,
                    adapter=result.adapter,
                    reference=result.external_ref,
                ),
            ),
        )
        return "done"

    async def _ask_admins_about_remedy(self, order: RemedyOrder, reason: str) -> str:
        kind = order.remedy.kind
        self._remedies[order.position] = RemedyProgress(
            position=order.position, kind=kind, state="failed", error=reason
        )
        serialised = self._serialised()
        if serialised:
            # Waiting from the moment the admins' task exists: an admin who acts on it at once
            # queues on the decision lock instead of being told nothing is waiting.
            self._remedy_decision = None
            self._remedy_waiting = order.position
        await self._record(
            SYSTEM,
            "remedy_failed",
            f"remedy {order.position + 1} ({kind.value}) could not be applied: {reason}",
            content={"key": order.key, "reason": reason},
            opens=(
                self._task(
                    TaskKind.RESOLVE_REMEDY, f"remedy-{order.position}", None, Role.ADMIN, None
                ),
            ),
            notify=(
                notice(
                    "remedy_failed",
                    (self._d.admin_email,),
                    position=order.position,
                    kind=kind.value,
                    reason=reason,
                ),
            ),
        )
        if not serialised:
            self._remedy_decision = None
            self._remedy_waiting = order.position
        return await self._remedy_decided()

    async def _remedy_decided(self) -> str:
        """Wait for an admin to retry or waive the remedy waiting (continuing as new meanwhile
        if this run may): 'retry' or 'waive'."""
        await self._wait_rolling(lambda: self._remedy_decision is not None)
        decision, self._remedy_decision = self._remedy_decision or "retry", None
        return decision

    async def _escalate_to_formal_review(self, reason: str) -> None:
        if not self._stage.is_open:
            return
        stale = self._untask(*self._open_task_names())
        await self._enter(
            DisputeStage.FORMAL_REVIEW,
            f"escalated to formal review: {reason}",
            clear=True,
            cancelled=stale,
            opens=(self._task(TaskKind.FORMAL_REVIEW, "formal-review", None, Role.ADMIN, None),),
            notify=(notice("escalation", (*self._everyone(), self._d.admin_email), reason=reason),),
        )

    async def _formal_review(self, *, resumed: bool = False) -> None:
        """Formal review: a panel rules; one appeal to a fresh panel, whose ruling is final;
        then the ruling's remedies, the precedent, and the close.

        `resumed`: a run continued as new (LATE_CONTINUE_AS_NEW_PATCH) in a round, the appeal
        window or the remedy stage goes on there."""
        if not resumed:
            if not self._patched(FORMAL_REVIEW_PATCH):
                # Disputes escalated before the review existed wait here, as they always did.
                await self._wait(lambda: not self._stage.is_open)
                return
            self._review_checked = self._patched(REVIEW_DECISIONS_PATCH)
        # A review can take weeks of votes, evidence and messages: it may continue as new.
        self._rollover = self._patched(LATE_CONTINUE_AS_NEW_PATCH)
        stage = self._stage if resumed else DisputeStage.FORMAL_REVIEW
        if stage is DisputeStage.REMEDY:
            await self._ruled_remedies_precedent_and_close(self._rulings[-1], resumed=True)
            return
        ruling: RulingView | None
        if stage is DisputeStage.FORMAL_REVIEW:
            ruling = await self._run_review_round(
                self._review_round if resumed else 1, resumed=resumed
            )
            if ruling is None:
                return
        else:
            ruling = self._rulings[-1]  # resumed in the appeal window
        if ruling.round > 1:
            # Resumed in the appeal's round, which has now ruled.
            await self._announce_ruling(self._seq, "final_ruling", ruling)
        elif await self._open_appeal_window(resumed=stage is DisputeStage.APPEAL_WINDOW):
            ruling = await self._run_review_round(2)
            if ruling is None:
                return
            # Keyed on the latest audit entry, the final ruling's own.
            await self._announce_ruling(self._seq, "final_ruling", ruling)
        await self._ruled_remedies_precedent_and_close(ruling)

    async def _ruled_remedies_precedent_and_close(
        self, ruling: RulingView, *, resumed: bool = False
    ) -> None:
        if not self._stage.is_open:
            return
        self._outcome = f"ruled_{ruling.outcome.value}"
        if ruling.remedies:
            await self._apply_remedies(
                ruling.remedies, decision=f"ruling-{ruling.round}", resumed=resumed
            )
        votes = Counter(
            v["outcome"] for v in self._votes_content() if isinstance(v.get("outcome"), str)
        )
        await self._write_precedent(
            ruling.outcome.value,
            ruling.remedies,
            ruling.rationale,
            rationale_ref=ruling.rationale_ref,
            clauses=ruling.clauses_applied,
            precedents_cited=ruling.precedents_cited,
            votes_summary={str(k): n for k, n in votes.items()},
        )
        await self._conclude(
            DisputeStage.CLOSED, SYSTEM, "closed", f"ruled {ruling.outcome.value} by the board"
        )

    # ======================================================================================
    # Neutral assignment
    # ======================================================================================

    async def _offer_to(self, choice: MediatorChoice, actor: Actor, reason: str) -> None:
        if choice.person_id is None:
            return
        deadline = await self._compute_deadline(
            "acceptance",
            choice.calendar or "",
            self._d.terms.acceptance_days,
            whose=choice.name,
            task=f"accept-{self._round + 1}",
        )
        self._round += 1
        self._candidate = choice
        self._clocks["acceptance"] = Clock(deadline)
        await self._record(
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
            notify=(notice("assignment", (choice.email or "",), deadline=deadline.due_at),),
        )

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
        await self._record(
            SYSTEM,
            "no_eligible_mediator",
            reason,
            content={"reason": reason},
            opens=(
                self._task(TaskKind.ASSIGN_MEDIATOR, "assign-mediator", None, Role.ADMIN, None),
            ),
            notify=(notice("admin_task", (self._d.admin_email,), reason=reason),),
        )
