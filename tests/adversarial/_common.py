"""Shared plumbing of the adversarial probes: more gated activities, a race stack that replays
every dispute it ran when the test ends, and helpers that fail instead of hanging."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.assignment import AssignmentActivities, PanelActivities
from activities.citations import CitationActivities
from activities.deadlines import DeadlineActivities
from activities.records import RecordActivities
from activities.remedies import RemedyActivities
from tests.conftest import Stack
from tests.test_formal_review import PANEL, in_review, open_ballot, vote
from workflows.dispute import DisputeWorkflow

GATED = {
    "assign_mediator": AssignmentActivities,
    "shift_deadline": DeadlineActivities,
    "extend_deadline": DeadlineActivities,
    "compute_deadline": DeadlineActivities,
    "record_event": RecordActivities,
    "draw_panel": PanelActivities,
    "apply_remedy": RemedyActivities,
    "waive_remedy": RemedyActivities,
    "find_citable": CitationActivities,
}

HANG = "HANG: no answer"


async def begin(stack: Stack, number: str, update: Any, payload: Any) -> WorkflowUpdateHandle[Any]:
    return await asyncio.wait_for(
        stack.handle(number).start_update(
            update, payload, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        ),
        30,
    )


async def outcome(handle: WorkflowUpdateHandle[Any], seconds: float = 20) -> Any:
    """The action's result, the rule it was refused with, or HANG."""
    try:
        return await asyncio.wait_for(handle.result(), seconds)
    except WorkflowUpdateFailedError as failure:
        return str(getattr(failure.cause, "message", failure.cause))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return HANG


async def try_update(
    stack: Stack, number: str, update: Any, payload: Any, seconds: float = 20
) -> Any:
    try:
        return await asyncio.wait_for(stack.handle(number).execute_update(update, payload), seconds)
    except WorkflowUpdateFailedError as failure:
        return "REFUSED: " + str(getattr(failure.cause, "message", failure.cause))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return HANG


async def replay_all(stack: Stack) -> list[str]:
    """Replay the history of every dispute of the stack on the current code; the failures."""
    failures = []
    for number in stack.numbers:
        history = await stack.handle(number).fetch_history()
        replayer = Replayer(workflows=[DisputeWorkflow], data_converter=pydantic_data_converter)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures.append(f"{number}: {result.replay_failure!r}")
    return failures


async def ballot_open(stack: Stack) -> str:
    """A dispute in review whose chair opened the ballot once three of five had voted."""
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    return number
