"""Deadline clocks of DisputeWorkflow: waits, warnings at the exact instant, pauses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.deadlines import DeadlineActivities
    from models.enums import (
        DisputeStage,
    )
    from models.payloads import (
        SYSTEM,
        ShiftDeadlineRequest,
    )
    from workflows.core import ACTIVITY_RETRY, ACTIVITY_TIMEOUT, Clock, DisputeCore, notice


class DisputeClocks(DisputeCore):
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
                await self._wait(
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

    async def _warn(self, purpose: str, clock: Clock, fraction: float) -> None:
        clock.warned.add(fraction)
        pct = round(fraction * 100)
        await self._record(
            SYSTEM,
            "deadline_warning",
            f"{pct}% of the {purpose} window has passed",
            content={
                "purpose": purpose,
                "fraction": fraction,
                "due_at": clock.deadline.due_at.isoformat(),
            },
            notify=(
                notice(
                    "warning",
                    self._responsible_for(purpose),
                    purpose=purpose.split(":")[0],
                    percent=pct,
                    deadline=clock.deadline.due_at,
                    explanation=clock.deadline.explanation,
                ),
            ),
        )

    def _responsible_for(self, purpose: str) -> tuple[str, ...]:
        if purpose.startswith("information:"):
            request = self._info[purpose.split(":", 1)[1]]
            return self._party(request.party_id).contacts
        if purpose == "remedy":
            return (self._d.admin_email,)
        if purpose == "review":
            # Warnings double as vote reminders: the panelists still owing a vote, and the chair.
            return self._panel_emails(only_owing_votes=True) or (self._d.admin_email,)
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
        try:
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
        except ActivityError as failure:
            reason = self._uncomputable(failure)
            if reason is None:
                raise
            # The clock resumes where it stood; an admin gives the paused days back.
            why_not = f"the pause could not be measured on the {clock.deadline.calendar} calendar"
            moved = clock.deadline.model_copy(
                update={"explanation": f"{clock.deadline.explanation}; not moved: {why_not}"}
            )
            await self._ask_admins_about_deadline(
                "mediation",
                "mediate",
                "deadline_not_moved",
                f"the mediation deadline was not moved for the pause: {why_not}: {reason}",
                moved,
                content={"calendar": clock.deadline.calendar, "reason": reason},
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
