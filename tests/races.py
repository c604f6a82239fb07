"""Races made to happen every time: an activity held on an event while a second action arrives.

A `Gate` wraps one real activity (same name, same code) so a test can hold the next call that
matches a predicate, start the racing update while the first one waits in the middle of its
handler, and then let it go (TEMPORAL.md, "Message handlers that mutate state").
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.client import (
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)

from activities.assignment import AssignmentActivities, PanelActivities
from activities.citations import CitationActivities
from activities.deadlines import DeadlineActivities
from activities.records import RecordActivities
from activities.remedies import RemedyActivities
from tests.history_splits import dispute_replayer, split_replay_failures

if TYPE_CHECKING:
    from tests.conftest import Stack

_T = TypeVar("_T")

GATED: dict[str, type] = {
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
"""The activities a race test can hold (the `gates` fixture wraps each for the next worker)."""

HANG = "HANG: no answer"


class Gate:
    """Holds the next call of one activity whose request matches, until released."""

    def __init__(self) -> None:
        self._when: Callable[[Any], bool] | None = None
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self, when: Callable[[Any], bool] = lambda _request: True) -> None:
        self.entered.clear()
        self.released.clear()
        self._when = when

    def release(self) -> None:
        self.released.set()

    async def reached(self, seconds: float = 20) -> None:
        """Wait until the held call is in the activity (fails the test after `seconds`)."""
        if not await asyncio.to_thread(self.entered.wait, seconds):
            raise AssertionError("the held activity was never called")

    def passing(self, request: Any) -> None:
        """Called at the start of the activity, in its thread: wait here if this call is held."""
        with self._lock:
            when = self._when
            held = when is not None and when(request)
            if held:
                self._when = None  # one call only: a retry or a later call goes through
        if held:
            self.entered.set()
            self.released.wait(60)


def gated(cls: type, name: str, gate: Gate) -> Callable[..., Any]:
    """`cls.name` as an activity of the same name that first passes through `gate`."""
    original = getattr(cls, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(self: Any, request: Any) -> Any:
            await asyncio.to_thread(gate.passing, request)
            return await original(self, request)

    else:

        @functools.wraps(original)
        def wrapper(self: Any, request: Any) -> Any:
            gate.passing(request)
            return original(self, request)

    # functools.wraps copied the original's activity definition; the wrapper gets its own.
    del wrapper.__dict__["__temporal_activity_definition"]
    return activity.defn(name=name)(wrapper)


async def begin(stack: Stack, number: str, update: Any, payload: Any) -> WorkflowUpdateHandle[Any]:
    """Send an action and return once the workflow has accepted it (its handler may wait)."""
    return await asyncio.wait_for(
        stack.handle(number).start_update(
            update, payload, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        ),
        30,
    )


async def outcome(handle: WorkflowUpdateHandle[Any], seconds: float = 30) -> Any:
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
    """An action sent and waited for: its result, "REFUSED: <rule>", or HANG."""
    try:
        return await asyncio.wait_for(stack.handle(number).execute_update(update, payload), seconds)
    except WorkflowUpdateFailedError as failure:
        return "REFUSED: " + str(getattr(failure.cause, "message", failure.cause))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return HANG


async def replay_all(stack: Stack) -> list[str]:
    """Replay the history of every dispute of the stack on the current code, as recorded and
    as a busy worker could have recorded it (split after each record: tests.history_splits);
    the failures."""
    failures = []
    replayer = dispute_replayer(stack.client.data_converter)
    for number in stack.numbers:
        history = await stack.handle(number).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures.append(f"{number}: {result.replay_failure!r}")
        failures += await split_replay_failures(replayer, history)
    return failures


async def runs_while_the_writer_is_held(sessions: Any, work: Awaitable[_T]) -> tuple[bool, _T]:
    """Start `work` while another thread's write transaction holds SQLite's writer (PostgreSQL:
    a transaction open), and tell whether the event loop came back meanwhile: work that waits
    for the writer on the loop's own thread keeps it until the holder lets go (bounded at 5 s,
    since a blocked loop cannot tell it to)."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with sessions.begin():
            holding.set()
            release.wait(timeout=5)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    holding.wait()
    task = asyncio.ensure_future(work)
    await asyncio.sleep(0.2)  # the loop comes back here only if `work` let it go
    loop_ran_while_held = holder.is_alive()
    release.set()
    holder.join()
    return loop_ran_while_held, await task


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """The type of each (regular) activity a history scheduled, in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


def local_activities(history: WorkflowHistory) -> list[dict[str, Any]]:
    """Each local activity a history recorded (one marker each), as the marker's data says it:
    activity_type, attempt, ...; with `completed`: whether it carries a result, not a failure."""
    found = []
    for e in history.events:
        marker = e.marker_recorded_event_attributes
        if e.HasField("marker_recorded_event_attributes") and (
            marker.marker_name == "core_local_activity"
        ):
            data = json.loads(marker.details["data"].payloads[0].data)
            found.append({**data, "completed": not marker.HasField("failure")})
    return found
