"""Human actions on a dispute: workflow Updates, each with a validator, and the state Query.

Each validator consults the transition table and then who may act; raising there rejects the
action before anything enters the history.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from accord.rules.consistency import MIN_ACKNOWLEDGEMENT, acknowledged
    from accord.rules.transitions import allowed_actions
    from activities.deadlines import DeadlineActivities
    from activities.remedies import RemedyActivities
    from models.enums import (
        Action,
        AssignmentState,
        DisputeStage,
        EvidenceVisibility,
        NoteVisibility,
        Role,
        TaskKind,
    )
    from models.payloads import (
        AcceptAssignment,
        ActionResult,
        AddEvidence,
        AddMessage,
        AddNote,
        AnswerInformation,
        AssignMediator,
        Deadline,
        DeclareImpasse,
        Dismiss,
        DisputeState,
        ExtendDeadline,
        ExtendDeadlineRequest,
        InformationRequestView,
        LinkFiling,
        NoteView,
        OfferView,
        ProposeSettlement,
        RecordAssignment,
        Recuse,
        RemedyWaiver,
        RequestInformation,
        RespondToOffer,
        RetryRemedy,
        WaiveRemedy,
        Withdraw,
    )
    from workflows.core import (
        ACTIVITY_RETRY,
        ACTIVITY_TIMEOUT,
        EXTENSION_WINDOW_PATCH,
        MEDIATION_STAGES,
        REFUSED_EVIDENCE_PATCH,
        REMEDY_STAGE_PATCH,
        Clock,
        InformationRequest,
        Offer,
        notice,
    )
    from workflows.review import BoardReview


def _kind(purpose: str) -> str:
    """A clock's kind: 'information' for 'information:info-1', else the purpose itself."""
    return purpose.split(":", 1)[0]


class DisputeActions(BoardReview):
    # ======================================================================================
    # Updates: human actions
    # ======================================================================================

    # --- assignment ---------------------------------------------------------------------

    @workflow.update
    async def accept_assignment(self, req: AcceptAssignment) -> ActionResult:
        async with self._deciding(lambda: self._validate_accept(req)):
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
        if not self._serialised():
            await workflow.wait_condition(lambda: self._stage is not DisputeStage.TRIAGE)
            return self._result("assignment accepted; mediation has begun")
        # Or once an action queued behind this one has overtaken it: say what happened.
        await workflow.wait_condition(
            lambda: self._stage is not DisputeStage.TRIAGE or self._mediator is not candidate
        )
        if not self._stage.is_open:
            return self._result(f"assignment accepted; the dispute was {self._stage.value} since")
        if self._mediator is not candidate:
            return self._result("assignment accepted; an admin has since reassigned the dispute")
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
        async with self._deciding(lambda: self._validate_recuse(req)):
            if req.actor.role is Role.BOARD:
                return await self._recuse_from_panel(req)
            person = self._require(self._mediator or self._candidate, "nobody is assigned")
            stale = self._untask(*self._open_task_names())
            withdrawn_offers = self._close_offers()
            self._excluded.append(req.actor.id)
            self._mediator = None
            self._candidate = None
            self._stage = DisputeStage.TRIAGE
            self._wake()
            await self._record(
                req.actor,
                "recused",
                f"{person.name} recused: {req.reason}",
                content={
                    "reason": req.reason,
                    "round": self._round,
                    **({"offers_closed": withdrawn_offers} if withdrawn_offers else {}),
                },
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
        if req.actor.role is Role.BOARD:
            if req.actor.id in self._votes:
                raise ValueError(f"{req.actor.id} has voted; a recusal is no longer possible")
            if self._ruling is not None:
                raise ValueError("the chair has already ruled")
            if self._unsealed and req.actor.id in self._panel_ids():
                # A seat left now would wait for a replacement who could never vote.
                raise ValueError("the ballot is open: a panelist can no longer recuse")

    @workflow.update
    async def assign_mediator(self, req: AssignMediator) -> ActionResult:
        async with self._deciding(lambda: self._validate_assign(req)):
            choice = await self._choose_mediator(chosen_person_id=req.person_id)
            if choice.person_id is None:
                raise ApplicationError(choice.reason, type="IneligibleMediator", non_retryable=True)
            if self._serialised():
                try:
                    self._still(lambda: self._validate_assign(req))
                except ApplicationError:
                    # The screening reserved the person's seat for a round now never offered.
                    await self._release_seat(self._round + 1, choice.person_id)
                    raise
            elif not self._stage.is_open or self._pending_info is not None:
                raise ApplicationError(
                    f"{self._d.number} changed while the mediator was screened; try again",
                    type="StaleAction",
                    non_retryable=True,
                )
            previous = self._mediator or self._candidate
            stale = self._untask(*(n for n in self._open_task_names() if n != "assign-mediator"))
            withdrawn_offers = self._close_offers()
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
                    content={
                        "person_id": previous.person_id,
                        "round": self._round,
                        **({"offers_closed": withdrawn_offers} if withdrawn_offers else {}),
                    },
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
        if self._admin_pick is not None and self._serial:
            raise ValueError(
                f"person_id: an admin's pick of {self._admin_pick[0].name} is being offered; "
                "reassign once it has been"
            )

    # --- mediation ------------------------------------------------------------------------

    @workflow.update
    async def add_note(self, req: AddNote) -> ActionResult:
        async with self._deciding(lambda: self._validate_note(req)):
            await self._check_texts(req.text_ref)
            note = NoteView(
                at=workflow.now(),
                author=req.actor.id,
                text=req.text or "",
                visibility=req.visibility,
                caucus_partner_id=req.caucus_partner_id,
                text_ref=req.text_ref,
            )
            self._notes.append(note)
            where = (
                "shared"
                if req.visibility is NoteVisibility.SHARED
                else f"caucus with {req.caucus_partner_id}"
            )
            # A stored text's entry holds its id and hash, not the body (TEXT_REFS_PATCH).
            shown = note.model_dump(mode="json", exclude={"text"} if req.text_ref else {"text_ref"})
            await self._record(req.actor, "note_added", f"note ({where})", content=shown)
            return self._result("note recorded")

    @add_note.validator
    def _validate_note(self, req: AddNote) -> None:
        self._check(Action.ADD_NOTE, req)
        if req.caucus_partner_id is not None and req.caucus_partner_id not in self._party_ids():
            raise ValueError(f"caucus_partner_id: {req.caucus_partner_id} is not a party")

    @workflow.update
    async def add_evidence(self, req: AddEvidence) -> ActionResult:
        async with self._deciding(lambda: self._validate_evidence(req)):
            item = req.evidence
            if item.id in self._evidence_ids:
                # The same item again (an intake retried after a crash): already on the record.
                return self._result(f"evidence {item.id} was already added", reference=item.id)
            self._evidence_ids.append(item.id)
            # The summary names the file only when every party may read it: the history is shown
            # to the parties, and a restricted item's name can say too much.
            shown = item.filename if item.visibility is EvidenceVisibility.PARTIES else "restricted"
            try:
                await self._record(
                    req.actor,
                    "evidence_added",
                    f"evidence added ({shown})",
                    content={"evidence_id": item.id, "sha256": item.sha256, "size": item.size},
                    evidence=item,
                )
            except ActivityError:
                if self._patched(REFUSED_EVIDENCE_PATCH):
                    self._evidence_ids.remove(item.id)
                raise
            return self._result(f"evidence {item.id} added", reference=item.id)

    @add_evidence.validator
    def _validate_evidence(self, req: AddEvidence) -> None:
        self._check(Action.ADD_EVIDENCE, req)
        item = req.evidence
        if item.side_partner_id is not None and item.side_partner_id not in self._party_ids():
            raise ValueError(f"evidence.side_partner_id: {item.side_partner_id} is not a party")
        if (
            req.actor.role is Role.PARTNER
            and item.visibility is EvidenceVisibility.SIDE
            and item.side_partner_id != req.actor.partner_id
        ):
            raise ValueError("evidence.side_partner_id: a party may limit evidence to its own side")

    @workflow.update
    async def add_message(self, req: AddMessage) -> ActionResult:
        async with self._deciding(lambda: self._validate_message(req)):
            message = req.message
            if message.inbound_id in self._inbound_ids:
                # The same email again (an intake retried after a crash): already on the record.
                return self._result("message was already added")
            await self._check_texts(message.text_ref)
            self._inbound_ids.append(message.inbound_id)
            await self._record(
                req.actor,
                "message_received",
                f"email from {message.sender}",
                content=message.model_dump(
                    mode="json", exclude={"text"} if message.text_ref else {"text_ref"}
                ),
            )
            return self._result("message added to the dispute")

    @add_message.validator
    def _validate_message(self, req: AddMessage) -> None:
        self._check(Action.ADD_MESSAGE, req)

    @workflow.update
    async def request_information(self, req: RequestInformation) -> ActionResult:
        async with self._deciding(lambda: self._validate_request(req)):
            await self._check_texts(req.questions_ref)
            party = self._party(req.party_id)
            request_id = f"info-{len(self._info) + 1}"
            now = workflow.now()
            # The stage changes at once, so a second request is refused while this one is set up;
            # the clock switches over only once the party's deadline exists.
            self._stage = DisputeStage.AWAITING_PARTY
            deadline = await self._compute_deadline(
                f"information:{request_id}",
                party.calendar,
                self._d.terms.information_days,
                whose=party.name,
                task=f"info-{request_id}",
            )
            self._info[request_id] = InformationRequest(
                id=request_id,
                party_id=req.party_id,
                questions=req.questions or "",
                requested_at=now,
                deadline=deadline,
                questions_ref=req.questions_ref,
            )
            self._clocks[f"information:{request_id}"] = Clock(deadline)
            self._pending_info = request_id
            self._wake()
            await self._record(
                req.actor,
                "information_requested",
                f"information requested from {party.name}; mediation clock paused",
                content={
                    "request_id": request_id,
                    "party_id": req.party_id,
                    **self._said("questions", req.questions, req.questions_ref),
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
                notify=(
                    notice(
                        "information_request",
                        party.contacts,
                        **self._said("questions", req.questions, req.questions_ref),
                        request_id=request_id,
                        deadline=deadline.due_at,
                        explanation=deadline.explanation,
                    ),
                ),
            )
            return self._result(f"{request_id} sent to {party.name}", reference=request_id)

    @request_information.validator
    def _validate_request(self, req: RequestInformation) -> None:
        self._check(Action.REQUEST_INFORMATION, req)
        if req.party_id not in self._party_ids():
            raise ValueError(f"party_id: {req.party_id} is not a party to {self._d.number}")

    @workflow.update
    async def answer_information(self, req: AnswerInformation) -> ActionResult:
        async with self._deciding(lambda: self._validate_answer(req)):
            await self._check_texts(req.answer_ref)
            request = self._info[req.request_id]
            request.answered_at = workflow.now()
            request.answer = req.answer or ""
            request.answer_ref = req.answer_ref
            await self._record(
                req.actor,
                "information_answered",
                f"{request.party_id} answered {req.request_id}",
                content={
                    "request_id": req.request_id,
                    **self._said("answer", req.answer, req.answer_ref),
                },
                done=self._untask(f"info-{req.request_id}"),
                notify=(
                    notice(
                        "information_answered", self._mediator_email(), request_id=req.request_id
                    ),
                ),
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
        async with self._deciding(lambda: self._validate_offer(req)):
            # A new offer supersedes any still open: their answers are no longer asked for.
            superseded: list[str] = []
            for offer in self._offers.values():
                if offer.open:
                    superseded += [f"{offer.id}-{p}" for p in self._party_ids()]
                offer.open = False
            offer_id = f"offer-{len(self._offers) + 1}"
            await self._check_texts(req.terms_ref)
            self._offers[offer_id] = Offer(id=offer_id, view=req, proposed_at=workflow.now())
            await self._record(
                req.actor,
                "settlement_proposed",
                f"{offer_id}: {len(req.remedies)} remedies proposed",
                content={
                    "offer_id": offer_id,
                    **self._said("terms", req.terms, req.terms_ref),
                    "remedies": [r.model_dump(mode="json") for r in req.remedies],
                    **self._divergence_record(
                        None, req.remedies, self._d.terms.clauses, req.divergence_acknowledgement
                    ),
                    **self._departure_record(None, req.remedies, req.departure_reason),
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
                notify=(
                    notice(
                        "offer",
                        self._party_contacts(),
                        offer_id=offer_id,
                        **self._said("terms", req.terms, req.terms_ref),
                        remedies=[r.model_dump(mode="json") for r in req.remedies],
                    ),
                ),
            )
            return self._result(f"{offer_id} sent to the parties", reference=offer_id)

    @propose_settlement.validator
    def _validate_offer(self, req: ProposeSettlement) -> None:
        self._check(Action.PROPOSE_SETTLEMENT, req)
        self._check_remedies_allowed(req.remedies)
        self._check_consistency(
            outcome=None,
            remedies=req.remedies,
            clauses=self._d.terms.clauses,
            acknowledgement=req.divergence_acknowledgement,
        )
        self._check_departure(outcome=None, remedies=req.remedies, reason=req.departure_reason)

    @workflow.update
    async def respond_to_offer(self, req: RespondToOffer) -> ActionResult:
        async with self._deciding(lambda: self._validate_response(req)):
            offer = self._offers[req.offer_id]
            partner_id = self._require(req.actor.partner_id, "a partner acts for a partner")
            offer.responses[partner_id] = req.accept
            verdict = "accepted" if req.accept else "rejected"
            if not req.accept:
                offer.open = False
            rejected = notice(
                "offer_rejected",
                (*self._mediator_email(), *self._party_contacts()),
                offer_id=offer.id,
                partner_id=partner_id,
                comment=req.comment,
            )
            await self._record(
                req.actor,
                f"offer_{verdict}",
                f"{partner_id} {verdict} {offer.id}",
                content={"offer_id": offer.id, "accept": req.accept, "comment": req.comment},
                done=self._untask(f"{offer.id}-{partner_id}"),
                # A rejection ends the offer: the other parties need not answer it any more.
                cancelled=()
                if req.accept
                else self._untask(
                    *(f"{offer.id}-{p}" for p in self._party_ids() if p != partner_id)
                ),
                notify=() if req.accept else (rejected,),
            )
            if not req.accept:
                return self._result(f"{offer.id} rejected; mediation continues")
            if not all(offer.responses.get(p) for p in self._party_ids()):
                return self._result(
                    f"{offer.id} accepted by {partner_id}; waiting for the other parties"
                )
            offer.open = False
            self._agreed = offer
            if self._serialised():
                # Agreed is settled: from this moment no offer, impasse or withdrawal can
                # overtake it while the lifecycle records the settlement.
                self._stage = DisputeStage.SETTLED
                self._wake()
        if self._serialised():
            # Answer once the settlement is in the read model; remedies may take days.
            await workflow.wait_condition(lambda: self._projected not in MEDIATION_STAGES)
        elif self._patched(REMEDY_STAGE_PATCH):
            await workflow.wait_condition(lambda: self._stage not in MEDIATION_STAGES)
        else:
            await workflow.wait_condition(lambda: not self._stage.is_open)
        return self._result(f"{offer.id} accepted by every party; the dispute is settled")

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
        async with self._deciding(lambda: self._validate_impasse(req)):
            # An open information request lapses: mediation is over, so its answer no longer
            # moves any clock.
            self._pending_info = None
            self._impasse = req.reason
            if self._serialised():
                # Mediation ends with the declaration: no offer or answer can follow it while
                # the lifecycle escalates.
                self._stage = DisputeStage.FORMAL_REVIEW
                self._wake()
            await self._record(
                req.actor, "impasse_declared", req.reason, content={"reason": req.reason}
            )
        if self._serialised():
            await workflow.wait_condition(lambda: self._projected not in MEDIATION_STAGES)
            if not self._stage.is_open:
                return self._result(f"impasse declared; the dispute was {self._stage.value} since")
        else:
            await workflow.wait_condition(lambda: self._stage not in MEDIATION_STAGES)
        return self._result("impasse declared; the dispute is in formal review")

    @declare_impasse.validator
    def _validate_impasse(self, req: DeclareImpasse) -> None:
        self._check(Action.DECLARE_IMPASSE, req)

    @workflow.update
    async def dismiss(self, req: Dismiss) -> ActionResult:
        async with self._deciding(lambda: self._validate_dismiss(req)):
            await self._conclude(DisputeStage.DISMISSED, req.actor, "dismissed", req.reason)
            return self._result("dismissed")

    @dismiss.validator
    def _validate_dismiss(self, req: Dismiss) -> None:
        self._check(Action.DISMISS, req)
        if self._ruling is not None and self._serial:
            raise ValueError("the panel has ruled: the ruling stands (it can be appealed)")
        if self._review_checked and req.actor.role is Role.BOARD and not acknowledged(req.reason):
            # The chair decides the dispute here, as a ruling would: the same bar for the why.
            raise ValueError(
                f"reason: a dismissal by the panel's chair decides the dispute and needs a "
                f"reason of substance (at least a sentence, {MIN_ACKNOWLEDGEMENT} characters)"
            )

    @workflow.update
    async def withdraw(self, req: Withdraw) -> ActionResult:
        async with self._deciding(lambda: self._validate_withdraw(req)):
            await self._conclude(DisputeStage.WITHDRAWN, req.actor, "withdrawn", req.reason)
            return self._result("withdrawn")

    @withdraw.validator
    def _validate_withdraw(self, req: Withdraw) -> None:
        self._check(Action.WITHDRAW, req)
        if req.actor.partner_id != self._d.filing.claimant_id:
            raise ValueError("only the claimant may withdraw a dispute")
        if self._ruling is not None and self._serial:
            raise ValueError("the panel has ruled: the ruling can be appealed, not withdrawn from")

    @workflow.update
    async def extend_deadline(self, req: ExtendDeadline) -> ActionResult:
        # The deadline the admin meant is the one running when the extension arrived (or the one
        # named): an action ahead of it in the queue may switch clocks (an acceptance, an answer).
        meant = req.deadline or _kind(self._extendable())
        async with self._deciding(lambda: self._validate_extend(req)):
            purpose = self._extendable()
            if self._serialised() and _kind(purpose) != meant:
                raise ApplicationError(
                    f"deadline: the {meant} deadline is no longer running (the {_kind(purpose)} "
                    "deadline is now); extend that one if it is meant",
                    type="RuleNoLongerHolds",
                    non_retryable=True,
                )
            clock = self._clocks[purpose]
            # The warnings not yet sent go to their shares of what is left of the window.
            remaining = self._patched(EXTENSION_WINDOW_PATCH)
            now = workflow.now()
            try:
                extended = await workflow.execute_activity_method(
                    DeadlineActivities.extend_deadline,
                    ExtendDeadlineRequest(
                        deadline=clock.deadline,
                        business_days=req.business_days,
                        reason=req.reason,
                        playbook_version=self._d.terms.version,
                        warnings_from=now if remaining else None,
                        warned=tuple(sorted(clock.warned)) if remaining else (),
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                )
            except ActivityError as failure:
                reason = self._uncomputable(failure)
                if reason is None:
                    raise
                raise ApplicationError(
                    f"the {purpose} deadline cannot be extended: {reason}",
                    type="DeadlineNotComputed",
                    non_retryable=True,
                ) from None
            # Warnings already sent are not sent again for the longer window.
            clock.deadline = extended
            self._wake()
            task = self._deadline_tasks.pop(purpose, None)
            await self._record(
                req.actor,
                "deadline_extended",
                f"{purpose} deadline extended by {req.business_days} business days: {req.reason}",
                content={
                    "purpose": purpose,
                    "business_days": req.business_days,
                    "reason": req.reason,
                    "due_at": extended.due_at.isoformat(),
                    **({"warnings_from": now.isoformat()} if remaining else {}),
                },
                deadline=extended,
                # An admin who extended a deadline the engine could not compute has seen to it.
                done=self._untask(task) if task else (),
            )
            return self._result(f"{purpose} deadline now {extended.due_at.isoformat()}")

    @extend_deadline.validator
    def _validate_extend(self, req: ExtendDeadline) -> None:
        self._check(Action.EXTEND_DEADLINE, req)
        purpose = self._extendable()
        if purpose not in self._clocks:
            raise ValueError("there is no running deadline to extend yet")
        if req.deadline is not None and req.deadline != _kind(purpose):
            raise ValueError(
                f"deadline: the {_kind(purpose)} deadline is running, not the {req.deadline} one"
            )

    def _extendable(self) -> str:
        """The clock an extension applies to: acceptance in triage, else mediation, or the
        party's deadline while the mediation clock is paused."""
        return self._running_clock(
            "acceptance" if self._stage is DisputeStage.TRIAGE else "mediation"
        )

    # --- remedies ---------------------------------------------------------------------------

    @workflow.update
    async def retry_remedy(self, req: RetryRemedy) -> ActionResult:
        async with self._deciding(lambda: self._validate_retry_remedy(req)):
            self._remedy_waiting = None
            await self._record(
                req.actor,
                "remedy_retried",
                f"remedy {req.position + 1} retried by an admin"
                + (f": {req.reason}" if req.reason else ""),
                content={"position": req.position, "reason": req.reason},
                done=self._untask(f"remedy-{req.position}"),
            )
            self._remedy_decision = "retry"
            return self._result(f"remedy {req.position + 1} is being applied again")

    @retry_remedy.validator
    def _validate_retry_remedy(self, req: RetryRemedy) -> None:
        self._check(Action.RETRY_REMEDY, req)
        self._check_remedy_waiting(req.position)

    @workflow.update
    async def waive_remedy(self, req: WaiveRemedy) -> ActionResult:
        async with self._deciding(lambda: self._validate_waive_remedy(req)):
            serialised = self._serialised()
            if not serialised:
                self._remedy_waiting = None
            try:
                await workflow.execute_activity_method(
                    RemedyActivities.waive_remedy,
                    RemedyWaiver(
                        key=self._remedy_keys[req.position],
                        reason=req.reason,
                        actor_id=req.actor.id,
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                )
            except ActivityError as failure:
                if not serialised or not isinstance(failure.cause, ApplicationError):
                    raise
                # The ledger shows the remedy applied after all: it is verified, not waived.
                raise ApplicationError(
                    failure.cause.message, type="RemedyNotWaived", non_retryable=True
                ) from None
            self._remedy_waiting = None
            progress = self._remedies[req.position]
            self._remedies[req.position] = progress.model_copy(update={"state": "waived"})
            await self._record(
                req.actor,
                "remedy_waived",
                f"remedy {req.position + 1} ({progress.kind.value}) waived: {req.reason}",
                content={"position": req.position, "reason": req.reason},
                done=self._untask(f"remedy-{req.position}"),
            )
            self._remedy_decision = "waive"
            return self._result(f"remedy {req.position + 1} waived")

    @waive_remedy.validator
    def _validate_waive_remedy(self, req: WaiveRemedy) -> None:
        self._check(Action.WAIVE_REMEDY, req)
        self._check_remedy_waiting(req.position)

    def _check_remedy_waiting(self, position: int) -> None:
        # Said as people number remedies (from 1, as `accord show` and the pages do), though
        # the payload's position counts from 0; a refusal is not recorded, so replay is as before.
        if self._remedy_waiting != position:
            waiting = (
                "no remedy is"
                if self._remedy_waiting is None
                else f"remedy {self._remedy_waiting + 1} is"
            )
            raise ValueError(f"position: {waiting} waiting for an admin, not remedy {position + 1}")

    @workflow.update
    async def link_filing(self, req: LinkFiling) -> ActionResult:
        async with self._deciding(lambda: self._validate_link(req)):
            if req.filing_key in self._linked:
                return self._result("filing already linked")
            self._linked.append(req.filing_key)
            await self._record(
                req.actor,
                "filing_linked",
                f"a matching filing was linked to this dispute: {req.summary}",
                content={
                    "filing_key": req.filing_key,
                    "summary": req.summary,
                    "filed_by": req.actor.id,
                },
                notify=(notice("filing_linked", (req.actor.id,), linked_summary=req.summary),),
            )
            item = req.evidence
            if item is not None and self._recommends and item.id not in self._evidence_ids:
                # A conflict alert made a filing that matched this open dispute: its snapshot.
                self._evidence_ids.append(item.id)
                await self._record(
                    req.actor,
                    "evidence_added",
                    f"evidence added ({item.filename}): the conflict alert's snapshot",
                    content={"evidence_id": item.id, "sha256": item.sha256, "size": item.size},
                    evidence=item,
                )
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
        return self._live_view(whole=True)

    def _live_view(self, *, whole: bool) -> DisputeState:
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
                    questions_ref=r.questions_ref,
                    answer_ref=r.answer_ref,
                )
                for r in self._info.values()
            ),
            offers=tuple(
                OfferView(
                    id=o.id,
                    remedies=o.view.remedies,
                    terms=o.view.terms or "",
                    proposed_at=o.proposed_at,
                    responses=dict(o.responses),
                    open=o.open,
                    terms_ref=o.view.terms_ref,
                )
                for o in self._offers.values()
            ),
            notes=tuple(self._notes) if whole else (),
            history=tuple(self._history) if whole else (),
            linked_filings=tuple(self._linked),
            remedies=tuple(self._remedies[p] for p in sorted(self._remedies)),
            review=self._review_view(),
            rulings=tuple(self._rulings),
            similar=self._similar,
            recommendation=self._recommendation,
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
        if self._stage is DisputeStage.FORMAL_REVIEW and "review" in self._clocks and self._panel:
            return (self._clocks["review"].deadline,)
        if self._stage is DisputeStage.REMEDY and "remedy" in self._clocks:
            return (self._clocks["remedy"].deadline,)
        if self._stage is DisputeStage.APPEAL_WINDOW and "appeal" in self._clocks:
            return (self._clocks["appeal"].deadline,)
        return ()
