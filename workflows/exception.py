"""ExceptionWorkflow: one per request for an exception to the rules of engagement, from the
request to the board's decision and, once approved, to its expiry.

The lifecycle, top to bottom:
1. Requested: the partners whose protection it would lift are told and may object, for the
   playbook's `objection_days` business days on the board calendar.
2. In review: a panel of the board is drawn (screened exactly like a dispute's) and votes,
   sealed: the audit records a SHA-256 commitment per vote until the ballot opens, when every
   panelist has voted or when the decision deadline (`decision_days` business days) passes,
   and the chair and the admins are told it is overdue. The chair decides on the open ballot.
3. Approved: in force until the end of the day it was asked until (overlap detection and the
   rules of engagement honour it, RoE 2.1), then expired. Denied, withdrawn, or lapsed (still
   undecided on that day) ends it.

Messages: updates object, cast_vote, decide, withdraw, redraw_panel; query get_state. Actions
and the lifecycle share one lock; an action re-checks its rule once it holds it (another may
have changed the request while it waited), so two people acting at once are refused by rule,
never recorded both. The history is bounded (one objection per affected partner, one vote per
panelist, one decision), so the workflow never continues as new.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.assignment import PanelActivities
    from activities.deadlines import DeadlineActivities
    from activities.exceptions import ExceptionActivities
    from models.enums import ExceptionChoice, ExceptionState, Role
    from models.payloads import (
        SYSTEM,
        Actor,
        DeadlineRequest,
        DecideException,
        ExceptionActed,
        ExceptionInput,
        ExceptionNotice,
        ExceptionOutcome,
        ExceptionStanding,
        ExceptionStep,
        ExceptionView,
        ObjectToException,
        PanelChoice,
        PanelRequest,
        RedrawExceptionPanel,
        VoteOnException,
        WithdrawException,
    )
    from models.payloads.deadlines import Deadline
    from workflows.core import ACTIVITY_RETRY, ACTIVITY_TIMEOUT


def vote_commitment(vote: VoteOnException) -> str:
    """What the audit shows of a sealed vote; the opened ballot lets anyone check it."""
    body = json.dumps(
        {"choice": vote.choice.value, "reasons": vote.reasons},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{vote.actor.id}\n{body}".encode()).hexdigest()


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="ExceptionActionRefused", non_retryable=True)


@workflow.defn
class ExceptionWorkflow:
    @workflow.init
    def __init__(self, request: ExceptionInput) -> None:
        self._x = request
        self._lock = asyncio.Lock()
        self._state = ExceptionState.REQUESTED
        self._step = 0
        self._objections_open = True
        self._objections: dict[str, ObjectToException] = {}
        self._objections_close_at: datetime | None = None
        self._panel: PanelChoice | None = None
        self._awaiting_panel = False
        self._redraw = False
        self._excluded: list[str] = []
        self._decision_due_at: datetime | None = None
        self._votes: dict[str, VoteOnException] = {}
        self._ballot_open = False

    # ======================================================================================
    # The lifecycle
    # ======================================================================================

    @workflow.run
    async def run(self, request: ExceptionInput) -> ExceptionOutcome:
        x = request
        async with self._lock:
            window = await self._deadline("objections", x.objection_days, workflow.now())
            self._objections_close_at = window.due_at
            await self._record(
                Actor(id=x.requested_by, role=Role.PARTNER),
                "requested",
                f"exception to {x.clause} for {x.partner_id} at {x.scope.label()} until "
                f"{x.until}; the partners affected may object for {window.explanation}",
                state=ExceptionState.REQUESTED,
                detail={"affected": list(x.affected_partner_ids), "until": x.until.isoformat()},
                objections_close_at=window.due_at,
                notify=(ExceptionNotice(event="requested", audiences=("beneficiary", "affected")),),
            )
        closes = min(window.due_at, x.expires_at)
        if await self._until(closes, self._ended):
            return self._outcome()
        async with self._lock:
            if self._ended():
                return self._outcome()
            self._objections_open = False
            if closes >= x.expires_at:
                await self._lapse(f"its last day, {x.until}, came before the objections closed")
                return self._outcome()
            await self._record(
                SYSTEM,
                "objections_closed",
                f"objection window closed: {len(self._objections)} objection(s)",
                state=ExceptionState.IN_REVIEW,
                detail={"objected": sorted(self._objections)},
            )
            standing = await workflow.execute_activity_method(
                ExceptionActivities.standing,
                ExceptionStanding(exception_id=x.exception_id, partner_id=x.partner_id),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            if standing.ended is not None:
                # Nobody there can act on it any more: it does not go to the board.
                await self._lapse(standing.ended)
                return self._outcome()
        await self._review()
        if self._state is ExceptionState.APPROVED:
            await self._until(x.expires_at, lambda: False)
            async with self._lock:
                await self._record(
                    SYSTEM,
                    "expired",
                    f"the exception ended with {x.until}",
                    state=ExceptionState.EXPIRED,
                    notify=(
                        ExceptionNotice(event="expired", audiences=("beneficiary", "affected")),
                    ),
                )
        return self._outcome()

    async def _review(self) -> None:
        """Panels until the chair decides, or the request ends otherwise (withdrawn, or lapsed
        on its last day). An admin may have the panel drawn again (a member who left the board,
        a chair gone): the new panel votes afresh, the old panel's sealed votes set aside."""
        x = self._x

        def ended_or_redrawn() -> bool:
            return self._ended() or self._redraw

        while True:
            async with self._lock:
                if self._ended():
                    return
                if self._ballot_open and self._panel is not None:
                    # Redrawn once the ballot was open: the votes are known, so the members and
                    # their votes stand and only the chair is replaced.
                    if not await self._seat_panel(chair_only=True):
                        return
                else:
                    # Redrawn (an earlier panel sat): the next starts from an empty, sealed
                    # ballot.
                    self._votes = {}
                    self._ballot_open = False
                    self._panel = None
                    if not await self._seat_panel():
                        return
                due = await self._deadline("decision", x.decision_days, workflow.now())
                self._decision_due_at = due.due_at
                await self._record(
                    SYSTEM,
                    "panel_drawn",
                    f"{self._panel_words()}; the panel decides within {due.explanation}",
                    detail=self._panel_detail(),
                    panel=self._panel_detail(),
                    decision_due_at=due.due_at,
                    notify=(ExceptionNotice(event="panel", audiences=("panel", "chair")),),
                )
            if not await self._until(due.due_at, ended_or_redrawn):
                async with self._lock:
                    if not ended_or_redrawn():
                        if not self._ballot_open:
                            await self._open_ballot("the decision deadline passed")
                        await self._record(
                            SYSTEM,
                            "decision_overdue",
                            "the decision deadline passed undecided: the chair and the admins "
                            "are told",
                            notify=(
                                ExceptionNotice(event="overdue", audiences=("chair", "admins")),
                            ),
                        )
            if not await self._until(x.expires_at, ended_or_redrawn):
                async with self._lock:
                    if not ended_or_redrawn():
                        await self._lapse(f"undecided on {x.until}, the last day it was asked for")
                        return
            if self._ended():
                return

    async def _lapse(self, why: str) -> None:
        await self._record(
            SYSTEM,
            "lapsed",
            why,
            state=ExceptionState.LAPSED,
            notify=(ExceptionNotice(event="lapsed", audiences=("beneficiary", "affected")),),
        )

    async def _seat_panel(self, *, chair_only: bool = False) -> bool:
        """Draw the panel (under the lock), or with `chair_only` a new chair for the members
        sitting; when the board cannot seat one, ask the admins and wait for their redraw.
        False if the request ended meanwhile."""
        sitting = self._panel
        if chair_only and sitting is not None and sitting.chair is not None:
            self._excluded.append(sitting.chair.person_id)
        while True:
            self._redraw = False
            choice = await workflow.execute_activity_method(
                PanelActivities.draw_exception_panel,
                PanelRequest(
                    number=self._x.number,
                    party_ids=(self._x.partner_id, *self._x.affected_partner_ids),
                    contested_objects=self._x.objects,
                    excluded_person_ids=tuple(self._excluded),
                    functions=self._x.panel_functions,
                    at=workflow.now(),
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            if chair_only and sitting is not None and choice.chair is not None:
                choice = sitting.model_copy(
                    update={"chair": choice.chair, "reason": f"new chair {choice.chair.name}"}
                )
            if choice.complete:
                self._panel = choice
                self._awaiting_panel = False
                return True
            self._awaiting_panel = True
            # Nobody decides meanwhile: without a panel, or (a chair to replace) without a chair.
            self._panel = (
                sitting.model_copy(update={"chair": None}) if chair_only and sitting else None
            )
            await self._record(
                SYSTEM,
                "panel_incomplete",
                f"no panel can be seated: {choice.reason}",
                detail={"reason": choice.reason},
                panel={} if not chair_only else None,
                notify=(ExceptionNotice(event="panel_incomplete", audiences=("admins",)),),
            )
            self._lock.release()
            try:
                await self._until(self._x.expires_at, lambda: self._redraw or self._ended())
            finally:
                await self._lock.acquire()
            if self._ended():
                return False
            if not self._redraw:
                await self._lapse(
                    f"no panel was seated by {self._x.until}, the last day it was asked for"
                )
                return False

    async def _open_ballot(self, why: str) -> None:
        self._ballot_open = True
        await self._record(
            SYSTEM,
            "ballot_opened",
            f"ballot opened ({why}): {self._tally()}",
            detail={
                "votes": [
                    {
                        "person_id": v.actor.id,
                        "choice": v.choice.value,
                        "reasons": v.reasons,
                        "commitment": vote_commitment(v),
                    }
                    for v in self._votes.values()
                ]
            },
            notify=(ExceptionNotice(event="ballot_open", audiences=("chair",)),),
        )

    def _tally(self) -> str:
        approve = sum(v.choice is ExceptionChoice.APPROVE for v in self._votes.values())
        return f"{approve} to approve, {len(self._votes) - approve} to deny"

    # ======================================================================================
    # Actions
    # ======================================================================================

    def _ended(self) -> bool:
        return not self._state.is_open

    def _rule_object(self, action: ObjectToException) -> None:
        if self._ended() or not self._objections_open:
            raise _refuse("the objection window is closed")
        if action.actor.role is not Role.PARTNER or (
            action.actor.partner_id not in self._x.affected_partner_ids
        ):
            raise _refuse("only a partner this exception affects may object to it")
        if action.actor.partner_id in self._objections:
            raise _refuse(f"{action.actor.partner_id} has objected already")

    @workflow.update
    async def object(self, action: ObjectToException) -> ExceptionActed:
        async with self._acting(lambda: self._rule_object(action)):
            assert action.actor.partner_id is not None
            self._objections[action.actor.partner_id] = action
            step = await self._record(
                action.actor,
                "objected",
                f"{action.actor.partner_id} objected",
                detail={"partner_id": action.actor.partner_id, "reason": action.reason},
            )
            return self._acted("objection recorded; the panel will read it", step)

    @object.validator
    def _validate_object(self, action: ObjectToException) -> None:
        self._rule_object(action)

    def _members(self) -> dict[str, str]:
        if self._panel is None:
            return {}
        return {m.person_id: m.function for m in self._panel.members}

    def _rule_vote(self, action: VoteOnException) -> None:
        if self._ended() or self._panel is None or self._redraw:
            raise _refuse("no ballot is open for votes")
        if action.actor.role is not Role.BOARD or action.actor.id not in self._members():
            raise _refuse("only a member of this exception's panel may vote")
        if self._ballot_open:
            raise _refuse("the ballot is open: no vote is taken once the others are known")
        if action.actor.id in self._votes:
            raise _refuse("you have voted already")

    @workflow.update
    async def cast_vote(self, action: VoteOnException) -> ExceptionActed:
        async with self._acting(lambda: self._rule_vote(action)):
            self._votes[action.actor.id] = action
            step = await self._record(
                action.actor,
                "vote_cast",
                f"sealed vote {len(self._votes)} of {len(self._members())}",
                detail={"commitment": vote_commitment(action)},
            )
            if set(self._votes) == set(self._members()):
                await self._open_ballot("every panelist voted")
            return self._acted("vote recorded, sealed until the ballot opens", step)

    @cast_vote.validator
    def _validate_vote(self, action: VoteOnException) -> None:
        self._rule_vote(action)

    def _rule_decide(self, action: DecideException) -> None:
        if self._ended() or self._panel is None or self._panel.chair is None or self._redraw:
            raise _refuse("nothing is before the board to decide")
        if action.actor.role is not Role.BOARD or action.actor.id != self._panel.chair.person_id:
            raise _refuse("only the chair of this exception's panel decides it")
        if not self._ballot_open:
            raise _refuse("the ballot is sealed: the chair decides once it is open")
        if workflow.now() >= self._x.expires_at:
            raise _refuse(f"its last day, {self._x.until}, has passed: it can no longer be decided")

    @workflow.update
    async def decide(self, action: DecideException) -> ExceptionActed:
        async with self._acting(lambda: self._rule_decide(action)):
            approved = action.choice is ExceptionChoice.APPROVE
            state = ExceptionState.APPROVED if approved else ExceptionState.DENIED
            step = await self._record(
                action.actor,
                state.value,
                f"{'approved' if approved else 'denied'} by the chair ({self._tally()})"
                + (f", in force until the end of {self._x.until}" if approved else ""),
                state=state,
                detail={"reason": action.reason},
                decision=action,
                notify=(
                    ExceptionNotice(
                        event=state.value, audiences=("beneficiary", "affected", "panel")
                    ),
                ),
            )
            return self._acted(f"exception {state.value}", step)

    @decide.validator
    def _validate_decide(self, action: DecideException) -> None:
        self._rule_decide(action)

    def _rule_withdraw(self, action: WithdrawException) -> None:
        if self._ended():
            raise _refuse(f"the exception is {self._state.value}: it cannot be withdrawn")
        mine = action.actor.role is Role.PARTNER and action.actor.partner_id == self._x.partner_id
        if not mine and action.actor.role is not Role.ADMIN:
            raise _refuse("only the partner who asked, or an admin, may withdraw the request")

    @workflow.update
    async def withdraw(self, action: WithdrawException) -> ExceptionActed:
        async with self._acting(lambda: self._rule_withdraw(action)):
            step = await self._record(
                action.actor,
                "withdrawn",
                "request withdrawn",
                state=ExceptionState.WITHDRAWN,
                detail={"reason": action.reason},
                notify=(
                    ExceptionNotice(
                        event="withdrawn", audiences=("beneficiary", "affected", "panel")
                    ),
                ),
            )
            return self._acted("request withdrawn", step)

    @withdraw.validator
    def _validate_withdraw(self, action: WithdrawException) -> None:
        self._rule_withdraw(action)

    def _rule_redraw(self, action: RedrawExceptionPanel) -> None:
        if action.actor.role is not Role.ADMIN:
            raise _refuse("only an admin may redraw the panel")
        if self._ended() or self._redraw or (self._panel is None and not self._awaiting_panel):
            raise _refuse("no panel is waiting to be drawn, and none sits to be replaced")

    @workflow.update
    async def redraw_panel(self, action: RedrawExceptionPanel) -> ExceptionActed:
        async with self._acting(lambda: self._rule_redraw(action)):
            if self._ballot_open:
                step = await self._record(
                    action.actor,
                    "redraw_asked",
                    "a new chair to be drawn; the opened votes stand",
                    detail={"reason": action.reason, "votes_set_aside": 0},
                )
            else:
                set_aside = len(self._votes) if self._panel is not None else 0
                step = await self._record(
                    action.actor,
                    "redraw_asked",
                    "panel to be drawn again"
                    + (f"; {set_aside} sealed vote(s) set aside" if set_aside else ""),
                    detail={"reason": action.reason, "votes_set_aside": set_aside},
                    panel={},
                )
            self._redraw = True
            return self._acted("the panel will be drawn again", step)

    @redraw_panel.validator
    def _validate_redraw(self, action: RedrawExceptionPanel) -> None:
        self._rule_redraw(action)

    @workflow.query
    def get_state(self) -> ExceptionView:
        panel = self._panel
        return ExceptionView(
            exception_id=self._x.exception_id,
            state=self._state,
            objections_open=self._objections_open and not self._ended(),
            objected=tuple(sorted(self._objections)),
            panel=panel.members if panel else (),
            chair=panel.chair if panel else None,
            awaiting_panel=self._awaiting_panel,
            voted=tuple(self._votes),
            ballot_open=self._ballot_open,
            votes=tuple(self._votes.values()) if self._ballot_open else (),
            objections_close_at=self._objections_close_at,
            decision_due_at=self._decision_due_at,
        )

    # ======================================================================================
    # Plumbing
    # ======================================================================================

    def _acting(self, rule: Callable[[], None]) -> _Acting:
        return _Acting(self._lock, rule)

    def _acted(self, message: str, step: int) -> ExceptionActed:
        return ExceptionActed(
            exception_id=self._x.exception_id, state=self._state, message=message, step=step
        )

    async def _until(self, moment: datetime, condition: Callable[[], bool]) -> bool:
        """Wait (outside the lock) until `condition` holds, or `moment`: whether it held."""
        left = moment - workflow.now()
        if left <= timedelta(0):
            return condition()
        try:
            await workflow.wait_condition(condition, timeout=left)
        except TimeoutError:
            return condition()
        return True

    async def _deadline(self, purpose: str, days: int, start: datetime) -> Deadline:
        return await workflow.execute_activity_method(
            DeadlineActivities.compute_deadline,
            DeadlineRequest(
                purpose=f"exception {purpose}",
                calendar=self._x.board_calendar,
                playbook_version=self._x.playbook_version,
                starts_at=start,
                business_days=days,
                warning_fractions=(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    def _panel_detail(self) -> dict[str, Any]:
        assert self._panel is not None
        return {
            "members": [m.model_dump(mode="json") for m in self._panel.members],
            "chair": self._panel.chair.model_dump(mode="json") if self._panel.chair else None,
        }

    def _panel_words(self) -> str:
        assert self._panel is not None
        return self._panel.reason

    async def _record(
        self,
        actor: Actor,
        action: str,
        summary: str,
        *,
        detail: dict[str, Any] | None = None,
        state: ExceptionState | None = None,
        objections_close_at: datetime | None = None,
        decision_due_at: datetime | None = None,
        panel: dict[str, Any] | None = None,
        decision: DecideException | None = None,
        notify: tuple[ExceptionNotice, ...] = (),
    ) -> int:
        """One step into the audit and the read model (with its mail), in the order taken."""
        self._step += 1
        await workflow.execute_activity_method(
            ExceptionActivities.record_exception_step,
            ExceptionStep(
                exception_id=self._x.exception_id,
                step=self._step,
                at=workflow.now(),
                actor=actor.id,
                action=action,
                summary=summary,
                detail=detail or {},
                state=state,
                objections_close_at=objections_close_at,
                decision_due_at=decision_due_at,
                panel=panel,
                decision=decision,
                notify=notify,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        if state is not None:
            self._state = state
        return self._step

    def _outcome(self) -> ExceptionOutcome:
        return ExceptionOutcome(exception_id=self._x.exception_id, state=self._state)


class _Acting:
    """The lock for one action, its rule checked again once held."""

    def __init__(self, lock: asyncio.Lock, rule: Callable[[], None]) -> None:
        self._lock = lock
        self._rule = rule

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        try:
            self._rule()
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
