"""Formal review by a governance-board panel: the draw, the sealed ballot, the chair's ruling,
and the appeal window.

Votes stay sealed — in the query, in every message and error, and in the audit trail, which
records only a SHA-256 commitment per vote — until the ballot is opened: when every panelist has
voted, when the review deadline passes, or when the chair opens it (recorded, with a reason) once
a quorum has voted. The entry that opens it carries every vote, so each commitment can be
checked. The chair rules only on an open ballot, and nobody votes once it is open: a late vote
would be cast knowing the others.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from accord.rules.consistency import acknowledged
    from activities.assignment import PanelActivities
    from models.enums import Action, DisputeStage, Role, TaskKind, VoteOutcome
    from models.payloads import (
        SYSTEM,
        ActionResult,
        Actor,
        Appeal,
        CastVote,
        IssueRuling,
        PanelChoice,
        PanelRequest,
        Recuse,
        RedrawPanel,
        Remedy,
        ReviewView,
        RulingView,
        TaskOpen,
        UnsealBallot,
        VoteView,
        dump_said,
    )
    from workflows.clocks import DisputeClocks
    from workflows.core import (
        ACTIVITY_RETRY,
        ACTIVITY_TIMEOUT,
        FRESH_APPEAL_PANEL_PATCH,
        REPLACEMENT_REASONS_PATCH,
        SIMILAR_PRECEDENTS_PATCH,
        Clock,
        Notice,
        notice,
    )


def _vote_commitment(vote: CastVote) -> str:
    # A stored reason is committed to by its hash (the reference), an inline one by itself.
    body = json.dumps(
        dump_said(vote, "reasons", exclude={"actor"}), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(f"{vote.actor.id}\n{body}".encode()).hexdigest()


class BoardReview(DisputeClocks):
    # ======================================================================================
    # One round of review: panel, ballot, ruling (called from the lifecycle)
    # ======================================================================================

    async def _run_review_round(self, round_no: int, *, resumed: bool = False) -> RulingView | None:
        """Draw a panel and wait for the chair's ruling; None if the dispute ended first.

        An overdue panel is escalated to the executive sponsor and still never rules by
        default: the round waits for the chair.

        `resumed`: a run continued as new in this round (LATE_CONTINUE_AS_NEW_PATCH); its
        panel (or the wait for one), ballot, clock and tasks are carried.
        """
        if resumed and not self._awaiting_panel and self._panel is not None:
            return await self._await_ruling(self._panel)
        if not resumed:
            self._review_round = round_no
            self._votes = {}
            self._unsealed = False
            self._ruling = None
        # Resumed while the admins complete the board: wait on; any other resumed round with
        # no panel (none can be handed on so) draws one.
        panel = await self._draw_panel(resumed=resumed and self._awaiting_panel)
        if panel is None:
            return None
        if self._patched(SIMILAR_PRECEDENTS_PATCH):
            # The panel's case file: compared again, as precedents may have been written since.
            await self._attach_similar_precedents(f"review-{round_no}")
        if self._recommends:
            await self._attach_recommendation(f"review-{round_no}")
        # A fallback deadline's admin task closes with the ruling it times.
        deadline = await self._compute_deadline(
            "review",
            self._d.terms.board_calendar,
            self._d.terms.formal_review_days,
            whose="the board",
            task=f"ruling-{round_no}",
        )
        self._clocks["review"] = Clock(deadline)
        opens: list[TaskOpen] = [
            self._task(
                TaskKind.CAST_VOTE,
                f"vote-{round_no}-{m.person_id}",
                m.person_id,
                Role.BOARD,
                deadline.due_at,
            )
            for m in panel.members
        ]
        if panel.chair is not None:
            opens.append(
                self._task(
                    TaskKind.ISSUE_RULING,
                    f"ruling-{round_no}",
                    panel.chair.person_id,
                    Role.BOARD,
                    deadline.due_at,
                )
            )
        await self._record(
            SYSTEM,
            "panel_drawn",
            f"review round {round_no}: {panel.reason}",
            content={
                "round": round_no,
                "members": [m.model_dump(mode="json") for m in panel.members],
                "chair": panel.chair.model_dump(mode="json") if panel.chair else None,
            },
            deadline=deadline,
            done=self._untask("formal-review", f"compose-panel-{round_no}"),
            opens=tuple(opens),
            notify=(
                notice(
                    "panel_assignment",
                    self._panel_emails(),
                    round=round_no,
                    deadline=deadline.due_at,
                    explanation=deadline.explanation,
                ),
            ),
        )
        return await self._await_ruling(panel)

    async def _await_ruling(self, panel: PanelChoice) -> RulingView | None:
        """Wait for the chair's ruling, with the review clock and, once it passed, without."""

        def ruled() -> bool:
            return self._ruling is not None or not self._stage.is_open

        # Escalated before a continue-as-new: the clock has run out, the round only waits.
        if f"review-{self._review_round}" not in self._breaches:
            while True:
                breached = await self._run_clock(
                    "review", lambda: ruled() or self._rollover_wanted()
                )
                if breached or ruled():
                    break
                # Votes and messages of a busy review: the next run takes up the round here.
                await self._continue_as_new(ruled)
            if not breached or ruled():
                return self._ruling if self._stage.is_open else None
            await self._escalate_overdue_review(panel)
        await self._wait_rolling(ruled)
        return self._ruling if self._stage.is_open else None

    async def _draw_panel(self, *, resumed: bool = False) -> PanelChoice | None:
        """`resumed`: a run continued as new while the admins were completing the board."""

        def redraw() -> bool:
            return self._redraw_requested or not self._stage.is_open

        while self._stage.is_open:
            if not resumed:
                self._redraw_requested = False
                choice = await self._request_panel(
                    excluded=tuple(self._past_panelists), functions=self._d.terms.panel_functions
                )
                if choice.complete:
                    self._panel = choice
                    self._awaiting_panel = False
                    return choice
                # Never a silently smaller panel: the admins complete the board, then redraw.
                self._awaiting_panel = True
                await self._ask_admins_to_compose_panel(choice.reason)
            resumed = False
            await self._wait_rolling(redraw)
        return None

    async def _request_panel(
        self, *, excluded: tuple[str, ...], functions: tuple[str, ...]
    ) -> PanelChoice:
        return await workflow.execute_activity_method(
            PanelActivities.draw_panel,
            PanelRequest(
                number=self._d.number,
                party_ids=self._party_ids(),
                contested_objects=tuple(self._d.filing.contested_objects),
                excluded_person_ids=excluded,
                functions=functions,
                round=self._review_round,
                at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _ask_admins_to_compose_panel(self, reason: str) -> None:
        """Record why the panel cannot be completed; one open admin task however often."""
        name = f"compose-panel-{self._review_round}"
        await self._record(
            SYSTEM,
            "panel_incomplete",
            reason,
            content={"round": self._review_round, "reason": reason},
            opens=(self._task(TaskKind.COMPOSE_PANEL, name, None, Role.ADMIN, None),)
            if f"{self._d.number}:{name}" not in self._tasks
            else (),
            notify=(notice("admin_task", (self._d.admin_email,), reason=reason),),
        )

    async def _announce_ruling(
        self, seq: int, template: str, ruling: RulingView, **extra: object
    ) -> None:
        await self._send(seq, self._ruling_notice(template, ruling, **extra))

    def _ruling_notice(self, template: str, ruling: RulingView, **extra: object) -> Notice:
        return notice(
            template,
            (*self._party_contacts(), *self._panel_emails()),
            outcome=ruling.outcome.value,
            **self._said("rationale", ruling.rationale, ruling.rationale_ref),
            **extra,
        )

    async def _escalate_overdue_review(self, panel: PanelChoice) -> None:
        self._breaches.append(f"review-{self._review_round}")
        self._unsealed = True
        # The ballot is open now: whoever has not voted can no longer do so.
        late = self._untask(
            *(f"vote-{self._review_round}-{p}" for p in self._panel_ids() if p not in self._votes)
        )
        sponsor = panel.sponsor
        await self._record(
            SYSTEM,
            "review_overdue",
            "the review deadline passed without a ruling; escalated to the executive sponsor",
            content={
                "round": self._review_round,
                "votes": self._votes_content(),
                "sponsor": sponsor.person_id if sponsor else None,
            },
            opens=(
                self._task(
                    TaskKind.EXECUTIVE_REVIEW,
                    f"executive-review-{self._review_round}",
                    sponsor.person_id if sponsor else None,
                    Role.ADMIN,
                    None,
                ),
            ),
            cancelled=late,
            notify=(
                notice(
                    "review_overdue",
                    (
                        *(((sponsor.email,)) if sponsor else ()),
                        self._d.admin_email,
                        *self._panel_emails(),
                    ),
                    round=self._review_round,
                ),
            ),
        )

    async def _open_appeal_window(self, *, resumed: bool = False) -> bool:
        """After a first ruling: True if a party appealed in time.

        `resumed`: a run continued as new while the window was open; its deadline is carried
        and the ruling was announced by the run before."""
        if resumed:
            deadline = self._clocks["appeal"].deadline
        else:
            deadline = await self._compute_deadline(
                "appeal", self._d.terms.board_calendar, self._d.terms.appeal_days, whose="the board"
            )
            self._appeal_deadline = deadline.due_at
            self._clocks["appeal"] = Clock(deadline)
            await self._enter(
                DisputeStage.APPEAL_WINDOW,
                "ruled; the appeal window is open",
                deadline=deadline,
                notify=(
                    self._ruling_notice(
                        "ruling",
                        self._rulings[-1],
                        deadline=deadline.due_at,
                        explanation=deadline.explanation,
                    ),
                ),
            )
        await self._wait_rolling(
            lambda: self._appeal is not None or not self._stage.is_open, until=deadline.due_at
        )
        if self._appeal is not None and self._stage.is_open:
            self._past_panelists += [*self._panel_ids(), self._chair_id() or ""]
            if self._patched(FRESH_APPEAL_PANEL_PATCH):
                # The first panel's work is done: nothing of it may decide the appeal.
                self._panel = None
                self._votes = {}
                self._vacancies = []
                self._unsealed = False
                self._ruling = None
            await self._enter(
                DisputeStage.FORMAL_REVIEW,
                "appeal: review by a fresh panel",
                cancelled=self._untask("deadline-appeal"),
            )
            return True
        if self._stage.is_open:
            await self._record(
                SYSTEM,
                "appeal_window_closed",
                "no appeal within the window",
                content={"deadline": deadline.due_at.isoformat()},
                done=self._untask("deadline-appeal"),
            )
        return False

    # ======================================================================================
    # Updates
    # ======================================================================================

    @workflow.update
    async def cast_vote(self, req: CastVote) -> ActionResult:
        async with self._deciding(lambda: self._validate_vote(req)):
            await self._check_texts(req.reasons_ref)
            at = workflow.now()
            self._votes[req.actor.id] = (req, at)
            everyone_voted = set(self._votes) >= set(self._panel_ids())
            if self._serialised() and any(seat != "chair" for seat in self._vacancies):
                everyone_voted = False  # a vacant seat's vote is still to come
            await self._record(
                req.actor,
                "vote_cast",
                f"{req.actor.name or req.actor.id} cast a sealed vote",
                content={"round": self._review_round, "sealed": _vote_commitment(req)},
                done=self._untask(f"vote-{self._review_round}-{req.actor.id}"),
            )
            if everyone_voted and not self._unsealed:
                await self._open_ballot(SYSTEM, "every panelist has voted: the ballot is open")
            return self._result("vote recorded; sealed until every panelist has voted")

    @cast_vote.validator
    def _validate_vote(self, req: CastVote) -> None:
        self._check(Action.CAST_VOTE, req)
        if req.actor.id in self._votes:
            raise ValueError(f"{req.actor.id} has already voted in this round")
        if self._ruling is not None:
            raise ValueError("the chair has already ruled")
        if self._unsealed:
            raise ValueError(
                "the ballot is open: the votes cast can be read, so no vote can be added to it"
            )
        self._check_remedies(req.outcome, req.remedies)

    @workflow.update
    async def issue_ruling(self, req: IssueRuling) -> ActionResult:
        async with self._deciding(lambda: self._validate_ruling(req)):
            await self._check_texts(req.rationale_ref)
            clauses = req.clauses_applied
            if self._review_checked:
                clauses = await self._check_citations(req.clauses_applied, req.precedents_cited)
                # The lookup awaited: look again (a dispute from before the decision lock runs
                # its handlers side by side, so another may have acted meanwhile).
                self._still(lambda: self._validate_ruling(req))
            final = self._review_round > 1
            ruling = RulingView(
                round=self._review_round,
                chair_id=req.actor.id,
                outcome=req.outcome,
                remedies=req.remedies,
                rationale=req.rationale or "",
                votes_relied_on=req.votes_relied_on,
                clauses_applied=clauses,
                precedents_cited=req.precedents_cited,
                against_majority_reason=req.against_majority_reason,
                issued_at=workflow.now(),
                final=final,
                rationale_ref=req.rationale_ref,
            )
            self._unsealed = True
            self._ruling = ruling
            self._rulings.append(ruling)
            stale = self._untask(*(n for n in self._open_task_names() if n.startswith("vote-")))
            await self._record(
                req.actor,
                "ruling_issued",
                f"{'final ' if final else ''}ruling: {req.outcome.value}",
                content={
                    **dump_said(ruling, "rationale"),
                    "votes": self._votes_content(),
                    **self._divergence_record(
                        req.outcome.value,
                        req.remedies,
                        req.clauses_applied,
                        req.divergence_acknowledgement,
                    ),
                    **self._departure_record(req.outcome.value, req.remedies, req.departure_reason),
                },
                done=self._untask(f"ruling-{self._review_round}"),
                cancelled=stale,
            )
        # Answer once the ruling has taken effect: the appeal window is open, or remedies run.
        await workflow.wait_condition(lambda: self._stage is not DisputeStage.FORMAL_REVIEW)
        return self._result(f"{'final ' if final else ''}ruling issued: {req.outcome.value}")

    @issue_ruling.validator
    def _validate_ruling(self, req: IssueRuling) -> None:
        self._check(Action.ISSUE_RULING, req)
        if self._ruling is not None:
            raise ValueError("the chair has already ruled in this round")
        # Once the ballot is open no vote can be added, so only a sealed ballot waits for a seat.
        waiting_for = [v for v in self._vacancies if not self._unsealed or v == "chair"]
        if waiting_for:
            raise ValueError(
                f"the panel's {', '.join(waiting_for)} seat is vacant; rule once it is filled"
            )
        if not self._unsealed:
            # Say nothing of what the sealed votes are, only how many there are.
            raise ValueError(
                f"the ballot is sealed ({self._ballot_count()}): the chair rules once every "
                "panelist has voted, the review deadline has passed, or the chair has opened the "
                "ballot with a reason once a quorum has voted"
            )
        unknown = set(req.votes_relied_on) - set(self._votes)
        if unknown:
            raise ValueError(f"votes_relied_on: no vote from {', '.join(sorted(unknown))}")
        self._check_remedies(req.outcome, req.remedies)
        majority = self._majority_outcome()
        if (
            majority is not None
            and req.outcome is not majority
            and not acknowledged(req.against_majority_reason)
        ):
            raise ValueError(
                f"against_majority_reason: the majority voted {majority.value}; a ruling of "
                f"{req.outcome.value} must say why (at least a sentence)"
            )
        self._check_consistency(
            outcome=req.outcome.value,
            remedies=req.remedies,
            clauses=req.clauses_applied,
            acknowledgement=req.divergence_acknowledgement,
        )
        self._check_departure(
            outcome=req.outcome.value, remedies=req.remedies, reason=req.departure_reason
        )

    @workflow.update
    async def unseal_ballot(self, req: UnsealBallot) -> ActionResult:
        async with self._deciding(lambda: self._validate_unseal(req)):
            await self._open_ballot(req.actor, f"the chair opened the ballot: {req.reason}")
            return self._result("the ballot is open; the chair may rule")

    @unseal_ballot.validator
    def _validate_unseal(self, req: UnsealBallot) -> None:
        self._check(Action.UNSEAL_BALLOT, req)
        if self._unsealed:
            raise ValueError("the ballot is already open")
        if self._ruling is not None:
            raise ValueError("the chair has already ruled")
        quorum = self._quorum()
        if len(self._votes) < quorum:
            raise ValueError(f"no quorum yet: {self._ballot_count()}, {quorum} needed")

    async def _open_ballot(self, actor: Actor, summary: str) -> None:
        """Open the ballot: every vote into the record; those who did not vote no longer can."""
        self._unsealed = True
        not_voted = [pid for pid in self._panel_ids() if pid not in self._votes]
        await self._record(
            actor,
            "votes_unsealed",
            summary,
            content={
                "round": self._review_round,
                "votes": self._votes_content(),
                **({"not_voted": not_voted} if not_voted else {}),
            },
            cancelled=self._untask(*(f"vote-{self._review_round}-{pid}" for pid in not_voted)),
        )

    @workflow.update
    async def appeal(self, req: Appeal) -> ActionResult:
        async with self._deciding(lambda: self._validate_appeal(req)):
            self._appeal = req
            await self._record(
                req.actor,
                "appeal_filed",
                f"{req.actor.partner_id} appealed the ruling",
                content={
                    "grounds": req.grounds,
                    "new_evidence": [e.model_dump(mode="json") for e in req.new_evidence],
                },
                notify=(
                    notice(
                        "appeal_received",
                        (*self._party_contacts(), self._d.admin_email),
                        partner_id=req.actor.partner_id or "",
                        grounds=req.grounds,
                    ),
                ),
            )
        await workflow.wait_condition(lambda: self._stage is not DisputeStage.APPEAL_WINDOW)
        return self._result("appeal received; a fresh panel will review the dispute")

    @appeal.validator
    def _validate_appeal(self, req: Appeal) -> None:
        self._check(Action.APPEAL, req)
        if self._appeal is not None:
            raise ValueError("the ruling has already been appealed; only one appeal is allowed")
        if self._appeal_deadline is not None and workflow.now() > self._appeal_deadline:
            raise ValueError(f"the appeal window closed at {self._appeal_deadline.isoformat()}")

    @workflow.update
    async def redraw_panel(self, req: RedrawPanel) -> ActionResult:
        async with self._deciding(lambda: self._validate_redraw(req)):
            await self._record(
                req.actor,
                "panel_redraw",
                f"panel redraw requested: {req.reason}",
                content={"reason": req.reason},
            )
            if self._vacancies:
                filled = await self._fill_vacancies()
                return self._result("the vacant seats are filled" if filled else "still too few")
            self._redraw_requested = True
            return self._result("the panel will be drawn again")

    @redraw_panel.validator
    def _validate_redraw(self, req: RedrawPanel) -> None:
        self._check(Action.REDRAW_PANEL, req)
        if not self._awaiting_panel and not self._vacancies:
            raise ValueError("the panel is complete; there is nothing to redraw")

    async def _recuse_from_panel(self, req: Recuse) -> ActionResult:
        """A panelist (or the chair) steps down; a replacement for that seat is drawn."""
        panel = self._panel
        if panel is None:
            raise ApplicationError("no panel", type="InvariantBroken", non_retryable=True)
        if panel.chair is not None and panel.chair.person_id == req.actor.id:
            seat = "chair"
            self._panel = panel.model_copy(update={"chair": None})
        else:
            leaving = next(m for m in panel.members if m.person_id == req.actor.id)
            seat = leaving.function
            self._panel = panel.model_copy(
                update={"members": tuple(m for m in panel.members if m is not leaving)}
            )
        self._past_panelists.append(req.actor.id)
        self._vacancies.append(seat)
        stale = self._untask(
            f"vote-{self._review_round}-{req.actor.id}",
            *((f"ruling-{self._review_round}",) if seat == "chair" else ()),
        )
        await self._record(
            req.actor,
            "panel_recused",
            f"{req.actor.name or req.actor.id} recused from the panel ({seat}): {req.reason}",
            content={"round": self._review_round, "seat": seat, "reason": req.reason},
            cancelled=stale,
        )
        filled = await self._fill_vacancies()
        return self._result(
            "recusal recorded; a replacement was drawn"
            if filled
            else "recusal recorded; no eligible replacement, the admins are asked to add one"
        )

    async def _fill_vacancies(self) -> bool:
        """Draw replacements for the vacant seats; an admin task when one cannot be filled."""
        panel = self._panel
        if panel is None:
            return False
        choice = await self._request_panel(
            excluded=(*self._past_panelists, *self._panel_ids()),
            functions=tuple(v for v in self._vacancies if v != "chair"),
        )
        new_members = [m for m in choice.members if m.function in self._vacancies]
        chair = choice.chair if "chair" in self._vacancies else None
        missing = [
            f
            for f in self._vacancies
            if f != "chair" and f not in {m.function for m in new_members}
        ]
        if "chair" in self._vacancies and chair is None:
            missing.append("chair")
        if missing:
            why = f"no eligible replacement for the panel's {', '.join(missing)} seat"
            if not choice.complete and self._patched(REPLACEMENT_REASONS_PATCH):
                seats = ", ".join(f.replace("_", " ") for f in missing)
                why = f"no eligible replacement for the panel's {seats} seat: {choice.reason}"
            await self._ask_admins_to_compose_panel(why)
            return False
        self._vacancies = []
        self._panel = panel.model_copy(
            update={"members": (*panel.members, *new_members), "chair": chair or panel.chair}
        )
        due = self._clocks["review"].deadline.due_at
        # On an open ballot (the deadline opened it) a newcomer has no vote to cast.
        voting = () if self._unsealed and self._serialised() else new_members
        opens = [
            self._task(
                TaskKind.CAST_VOTE,
                f"vote-{self._review_round}-{m.person_id}",
                m.person_id,
                Role.BOARD,
                due,
            )
            for m in voting
        ]
        if chair is not None:
            opens.append(
                self._task(
                    TaskKind.ISSUE_RULING,
                    f"ruling-{self._review_round}",
                    chair.person_id,
                    Role.BOARD,
                    due,
                )
            )
        joined = [*new_members, *((chair,) if chair else ())]
        await self._record(
            SYSTEM,
            "panel_replacement",
            f"replacement drawn: {', '.join(m.name for m in joined)}",
            content={
                "round": self._review_round,
                "joined": [m.model_dump(mode="json") for m in joined],
            },
            done=self._untask(f"compose-panel-{self._review_round}"),
            opens=tuple(opens),
            notify=(
                notice(
                    "panel_assignment",
                    tuple(m.email for m in joined),
                    round=self._review_round,
                    deadline=due,
                    explanation=self._clocks["review"].deadline.explanation,
                ),
            ),
        )
        return True

    # ======================================================================================
    # Helpers
    # ======================================================================================

    def _check_remedies(self, outcome: VoteOutcome, remedies: tuple[Remedy, ...]) -> None:
        if outcome is VoteOutcome.DENY and remedies:
            raise ValueError("remedies: a deny outcome carries no remedies")
        if outcome is not VoteOutcome.DENY and not remedies:
            raise ValueError(f"remedies: a {outcome.value} outcome names at least one remedy")
        self._check_remedies_allowed(remedies)

    def _seats(self) -> int:
        """The panel's voting seats, vacant ones included: a recusal does not lower the quorum."""
        return len(self._panel_ids()) + sum(1 for seat in self._vacancies if seat != "chair")

    def _quorum(self) -> int:
        return self._seats() // 2 + 1

    def _ballot_count(self) -> str:
        return f"{len(self._votes)} of {self._seats()} votes cast"

    def _majority_outcome(self) -> VoteOutcome | None:
        counts = Counter(vote.outcome for vote, _ in self._votes.values())
        if not counts:
            return None
        (top, n), *_ = counts.most_common()
        return top if n > len(self._votes) / 2 else None

    def _panel_replaced(self) -> bool:
        """The panel held is the one an appeal replaced: a dispute begun before
        FRESH_APPEAL_PANEL_PATCH keeps the first panel after an appeal until the fresh one is
        drawn (recused members leave the panel, so only an appeal makes all of it past). It is
        no panel of the current round, so the state shows none (read by the query only:
        nothing the workflow does changes, and histories replay as before)."""
        held = {*self._panel_ids(), self._chair_id() or ""} - {""}
        return bool(held) and held <= set(self._past_panelists)

    def _votes_content(self) -> list[dict[str, object]]:
        return [
            {
                "panelist": pid,
                "cast_at": at.isoformat(),
                "commitment": _vote_commitment(vote),
                **dump_said(vote, "reasons", exclude={"actor"}),
            }
            for pid, (vote, at) in sorted(self._votes.items())
        ]

    def _review_view(self) -> ReviewView | None:
        if self._panel is None or self._panel_replaced():
            return None
        return ReviewView(
            round=self._review_round,
            panel=self._panel.members,
            chair=self._panel.chair,
            votes=tuple(
                VoteView(
                    person_id=pid,
                    cast_at=at,
                    outcome=vote.outcome if self._unsealed else None,
                    remedies=vote.remedies if self._unsealed else (),
                    reasons=vote.reasons if self._unsealed else None,
                    reasons_ref=vote.reasons_ref if self._unsealed else None,
                )
                for pid, (vote, at) in sorted(self._votes.items())
            ),
            sealed=not self._unsealed,
            quorum=self._quorum(),
            appeal_deadline=self._appeal_deadline,
            appealed_by=self._appeal.actor.partner_id if self._appeal else None,
        )
