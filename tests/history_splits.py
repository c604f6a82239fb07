"""A recorded history as it reads when a local activity's marker went out one workflow task
before the code that followed it: the shape a busy worker records.

Temporal's core completes a workflow task with a forced new one while a local activity's
result is still on its way to the workflow: a query answered in that window
(`managed_run.rs`, "pending LA resolutions ... force a new task"), or a task heartbeat. The
marker then closes the first task and everything the workflow did after the record lands in
the next. Replayed, the record resolves from its marker in the first task, so whatever follows
it runs one task early: a `workflow.patched` asked there finds its marker only in a later task.
A history read from the stack has the usual shape; `splits` writes the busy one from it, at
every local activity marker followed by more commands, so a test can replay each.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from accord.runtime.wiring import WORKFLOW_RUNNER
from workflows.dispute import DisputeWorkflow
from workflows.exception import ExceptionWorkflow

_COMMAND_EVENTS = frozenset(
    EventType.Value(f"EVENT_TYPE_{name}")
    for name in (
        "MARKER_RECORDED",
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_CANCEL_REQUESTED",
        "TIMER_STARTED",
        "TIMER_CANCELED",
        "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
        "WORKFLOW_PROPERTIES_MODIFIED",
        "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
        "WORKFLOW_EXECUTION_FAILED",
        "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    )
)
"""Events written from a workflow task's completion (its commands and messages)."""

_LOCAL_ACTIVITY_MARKER = "core_local_activity"


def dispute_replayer(converter: DataConverter, **options: Any) -> Replayer:
    """A replayer of DisputeWorkflow (and ExceptionWorkflow) for the tests, which check determinism, not timing.

    It runs without the SDK's deadlock detector (`debug_mode`): on a machine busy enough to hold
    one workflow task past 2 s (CI on 2 cores), the detector interrupts the task mid-step, the
    SDK can then never finish evicting the run, and the replay hangs instead of answering
    (test_replay's starved replay). It runs the workers' own sandbox (WORKFLOW_RUNNER) unless
    told otherwise: a replay then meets what production meets, and each replay does not import
    the workflow's modules afresh into a sandbox of its own, as the SDK's default runner does
    (a tenth of the CPU of the race tests, which replay every dispute split after each record)."""
    options.setdefault("workflow_runner", WORKFLOW_RUNNER)
    return Replayer(
        workflows=[DisputeWorkflow, ExceptionWorkflow],
        data_converter=converter,
        debug_mode=True,
        **options,
    )


def _is_local_activity_marker(event: HistoryEvent) -> bool:
    return bool(
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == _LOCAL_ACTIVITY_MARKER
    )


def patch_of(event: dict[str, Any]) -> str | None:
    """The patch a `workflow.patched` marker event records, if it is one."""
    if event["eventType"] != "EVENT_TYPE_MARKER_RECORDED":
        return None
    details = event["markerRecordedEventAttributes"].get("details", {})
    for payload in details.get("patch-data", {}).get("payloads", []):
        return str(json.loads(base64.b64decode(payload["data"]))["id"])
    return None


def split_points(events: Sequence[HistoryEvent]) -> list[int]:
    """Indexes of local activity markers followed, in the same task's completion, by another
    command: where a busy worker may have ended the task."""
    return [
        at
        for at, event in enumerate(events[:-1])
        if _is_local_activity_marker(event) and events[at + 1].event_type in _COMMAND_EVENTS
    ]


def _renumbered(message: Message, shift_from: int, by: int) -> None:
    """Every event id in `message` (its own, and every reference to one, at any depth) at or
    past `shift_from` moved by `by`."""
    for field, value in message.ListFields():
        kind = field.message_type
        if kind is None:
            if (
                field.name == "event_id" or field.name.endswith("_event_id")
            ) and value >= shift_from:
                setattr(message, field.name, value + by)
        elif kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _renumbered(item, shift_from, by)
        else:
            for item in value if field.is_repeated else [value]:
                _renumbered(item, shift_from, by)


def _copy(event: HistoryEvent) -> HistoryEvent:
    copied = HistoryEvent()
    copied.CopyFrom(event)
    return copied


def split_after(history: WorkflowHistory, at: int) -> WorkflowHistory:
    """`history` with its workflow task ended right after the local activity marker at index
    `at`: a task scheduled, started and completed there (forced, as core asks), and the
    commands that followed the marker written from that new task. Built on the history's own
    events (a JSON round trip per split was most of the race tests' CPU)."""
    events = history.events
    marker = events[at]
    before = events[:at]
    scheduled, started, completed = (
        next(e for e in reversed(before) if e.event_type == kind)
        for kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        )
    )
    first_moved = marker.event_id + 1
    ids = [first_moved + n for n in range(3)]
    forced = [_copy(scheduled), _copy(started), _copy(completed)]
    for event, event_id in zip(forced, ids, strict=True):
        event.event_id = event_id
        event.event_time.CopyFrom(marker.event_time)
        event.task_id = 0
    forced[0].workflow_task_scheduled_event_attributes.attempt = 1
    forced[1].workflow_task_started_event_attributes.scheduled_event_id = ids[0]
    attributes = forced[2].workflow_task_completed_event_attributes
    attributes.scheduled_event_id, attributes.started_event_id = ids[0], ids[1]
    attributes.sdk_metadata.Clear()  # present and empty: this task asked for no flags
    attributes.sdk_metadata.SetInParent()
    moved = []
    for event in events[at + 1 :]:
        event = _copy(event)
        _renumbered(event, first_moved, 3)
        moved.append(event)
    return WorkflowHistory(history.workflow_id, [*before, marker, *forced, *moved])


def splits(
    history: WorkflowHistory, most: int | None = None
) -> Iterator[tuple[int, WorkflowHistory]]:
    """Each busy shape of `history`: (the marker's event id, the history split after it); at
    most `most` of them, spread evenly from the first to the last (each is a whole replay)."""
    points = split_points(history.events)
    if most is not None and len(points) > most:
        points = [points[round(k * (len(points) - 1) / (most - 1))] for k in range(most)]
    for at in points:
        yield history.events[at].event_id, split_after(history, at)


async def split_replay_failures(
    replayer: Replayer, history: WorkflowHistory, most: int | None = None
) -> list[str]:
    """Replay every busy shape of `history` (at most `most`) on `replayer`; each that fails,
    with why."""
    shapes = list(splits(history, most))

    async def each() -> AsyncIterator[WorkflowHistory]:
        for _, shape in shapes:
            yield shape

    failures = []
    async with replayer.workflow_replay_iterator(each()) as results:
        at = 0
        async for result in results:
            if result.replay_failure is not None:
                failures.append(
                    f"{history.workflow_id} split after event {shapes[at][0]}:"
                    f" {result.replay_failure}"
                )
            at += 1
    return failures
