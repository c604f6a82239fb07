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
import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from accord.runtime import WORKFLOW_RUNNER
from workflows.dispute import DisputeWorkflow

_COMMAND_EVENTS = frozenset(
    f"EVENT_TYPE_{name}"
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
    """A replayer of DisputeWorkflow for the tests, which check determinism, not timing.

    It runs without the SDK's deadlock detector (`debug_mode`): on a machine busy enough to hold
    one workflow task past 2 s (CI on 2 cores), the detector interrupts the task mid-step, the
    SDK can then never finish evicting the run, and the replay hangs instead of answering
    (test_replay's starved replay). It runs the workers' own sandbox (WORKFLOW_RUNNER) unless
    told otherwise: a replay then meets what production meets, and each replay does not import
    the workflow's modules afresh into a sandbox of its own, as the SDK's default runner does
    (a tenth of the CPU of the race tests, which replay every dispute split after each record)."""
    options.setdefault("workflow_runner", WORKFLOW_RUNNER)
    return Replayer(
        workflows=[DisputeWorkflow], data_converter=converter, debug_mode=True, **options
    )


def _is_local_activity_marker(event: dict[str, Any]) -> bool:
    attributes = event.get("markerRecordedEventAttributes", {})
    return bool(attributes.get("markerName") == _LOCAL_ACTIVITY_MARKER)


def patch_of(event: dict[str, Any]) -> str | None:
    """The patch a `workflow.patched` marker event records, if it is one."""
    if event["eventType"] != "EVENT_TYPE_MARKER_RECORDED":
        return None
    details = event["markerRecordedEventAttributes"].get("details", {})
    for payload in details.get("patch-data", {}).get("payloads", []):
        return str(json.loads(base64.b64decode(payload["data"]))["id"])
    return None


def split_points(events: list[dict[str, Any]]) -> list[int]:
    """Indexes of local activity markers followed, in the same task's completion, by another
    command: where a busy worker may have ended the task."""
    points = []
    for at, event in enumerate(events[:-1]):
        if _is_local_activity_marker(event) and events[at + 1]["eventType"] in _COMMAND_EVENTS:
            points.append(at)
    return points


def _renumbered(events: list[dict[str, Any]], shift_from: int, by: int) -> None:
    """Every event id (and every reference to one) at or past `shift_from` moved by `by`."""

    def moved(value: str) -> str:
        return str(int(value) + by) if int(value) >= shift_from else value

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "eventId" or (key.endswith("EventId") and isinstance(value, str)):
                    if isinstance(value, str) and value.isdigit():
                        node[key] = moved(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(events)


def split_after(history: WorkflowHistory, at: int) -> WorkflowHistory:
    """`history` with its workflow task ended right after the local activity marker at index
    `at`: a task scheduled, started and completed there (forced, as core asks), and the
    commands that followed the marker written from that new task."""
    events: list[dict[str, Any]] = json.loads(history.to_json())["events"]
    marker = events[at]
    completed = next(
        e for e in reversed(events[:at]) if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"
    )
    started = next(
        e for e in reversed(events[:at]) if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_STARTED"
    )
    scheduled = next(
        e for e in reversed(events[:at]) if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"
    )
    first_moved = int(marker["eventId"]) + 1
    _renumbered(events, first_moved, 3)
    ids = [str(first_moved + n) for n in range(3)]
    when = marker["eventTime"]
    new_scheduled = copy.deepcopy(scheduled) | {"eventId": ids[0], "eventTime": when}
    new_scheduled["workflowTaskScheduledEventAttributes"]["attempt"] = 1
    new_started = copy.deepcopy(started) | {"eventId": ids[1], "eventTime": when}
    new_started["workflowTaskStartedEventAttributes"]["scheduledEventId"] = ids[0]
    new_completed = copy.deepcopy(completed) | {"eventId": ids[2], "eventTime": when}
    attributes = new_completed["workflowTaskCompletedEventAttributes"]
    attributes.update(scheduledEventId=ids[0], startedEventId=ids[1], sdkMetadata={})
    for event in (new_scheduled, new_started, new_completed):
        event.pop("taskId", None)
    events[at + 1 : at + 1] = [new_scheduled, new_started, new_completed]
    return WorkflowHistory.from_json(history.workflow_id, {"events": events})


def splits(
    history: WorkflowHistory, most: int | None = None
) -> Iterator[tuple[int, WorkflowHistory]]:
    """Each busy shape of `history`: (the marker's event id, the history split after it); at
    most `most` of them, spread evenly from the first to the last (each is a whole replay)."""
    events = json.loads(history.to_json())["events"]
    points = split_points(events)
    if most is not None and len(points) > most:
        points = [points[round(k * (len(points) - 1) / (most - 1))] for k in range(most)]
    for at in points:
        yield int(events[at]["eventId"]), split_after(history, at)


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
