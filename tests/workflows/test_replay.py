"""Replay stored histories of every path: a workflow change that breaks running disputes fails.

Histories are recorded by `make histories` (the path tests with ACCORD_RECORD_HISTORIES=1).
After a deliberate change to DisputeWorkflow, guard the old path with `workflow.patched(...)`
and keep the old histories: they must still replay.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleUpdateInput,
    Interceptor,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from models.payloads import Recorded
from tests.conftest import CONVERTER, Stack
from tests.history_splits import dispute_replayer, patch_of, split_replay_failures, splits
from tests.workflows.test_dispute_paths import settled
from tests.workflows.test_formal_review import ruled
from workflows import core

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_histories_are_stored() -> None:
    assert len(HISTORIES) >= 8, "run `make histories` to record the workflow histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays(path: Path) -> None:
    replayer = dispute_replayer(CONVERTER)
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    if any(
        patch_of(e) == core.PATCHES_AT_START_PATCH for e in json.loads(path.read_text())["events"]
    ):
        # Recorded on code that settles its patches at the start: split after each record too.
        assert await split_replay_failures(replayer, history) == []


async def test_a_split_history_is_the_busy_shape_the_code_before_patches_at_start_fails() -> None:
    """The splits are the shape a busy worker records, not the history unchanged: a dispute
    recorded before `patches-at-start` asked a patch after a record in the same task, and split
    after that record it fails replay as such disputes failed on busy workers (TMPRL1100)."""
    path = (
        HISTORIES[0].parent / "test_each_record_is_one_marker_and_one_search_attribute_upsert.json"
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = dispute_replayer(CONVERTER)
    assert (await replayer.replay_workflow(history)).replay_failure is None
    failures = await split_replay_failures(replayer, history)
    assert failures and all("TMPRL1100" in f for f in failures), failures
    assert failures[0].startswith(f"{path.stem} split after event 17:"), failures[0]


KNOWN_DEFECTS = Path(__file__).parents[1] / "histories_known_defects"


def reset_point(events: list[dict[str, Any]], patch: str) -> int:
    """The operator's guide's reset point for a dispute whose task fails with "patch marker
    encountered for change <patch>": the completed workflow task before the one that wrote that
    patch's marker (docs/operations.md, "A dispute whose workflow task keeps failing")."""

    marker = next(e for e in events if patch_of(e) == patch)
    written_by = int(marker["markerRecordedEventAttributes"]["workflowTaskCompletedEventId"])
    completed = [
        int(e["eventId"])
        for e in events
        if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED" and int(e["eventId"]) < written_by
    ]
    return completed[-1]


async def test_a_dispute_split_on_the_code_before_patches_at_start_replays_once_reset() -> None:
    """A dispute's history from the code before `patches-at-start` (bench.web, 1,000 open
    disputes, 2026-12-06): a record's marker went out one task before the workflow asked for
    `continue-as-new`. No code can replay it (the patch's answer is lost with the task), so its
    workflow task fails on every retry; the guide's reset, to the task before the one that wrote
    the patch, leaves a history that replays, and the workflow redoes the record (keyed by its
    step, so written once)."""
    path = KNOWN_DEFECTS / "record-resolved-at-a-task-heartbeat.json"
    replayer = dispute_replayer(CONVERTER)
    events = json.loads(path.read_text())["events"]
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json("DSP-2026-000016", {"events": events}),
        raise_on_replay_failure=False,
    )
    failure = str(result.replay_failure)
    assert "TMPRL1100" in failure and "change continue-as-new" in failure, failure

    at = reset_point(events, "continue-as-new")
    assert at == 26
    # A reset to a completed task keeps the history up to that task's start and runs it again.
    kept = [e for e in events if int(e["eventId"]) < at]
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json("DSP-2026-000016", {"events": kept}),
        raise_on_replay_failure=False,
    )
    assert result.replay_failure is None, result.replay_failure


async def test_each_dispute_replays_where_a_busy_worker_ended_a_task_after_a_record(
    stack: Stack,
) -> None:
    """A busy worker can complete a workflow task with a local record's marker before the
    workflow has seen the record's result (a query answered meanwhile, a task heartbeat): what
    the workflow did next lands in the next task (tests.history_splits). Every dispute must
    replay with its history ended there, after each of its records in turn: settled in
    mediation, and ruled by a panel."""
    numbers = [
        await ruled(stack),
        await settled(
            stack,
            contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0077"}],
            summary="Contoso registered our Globex deal after we did",
        ),
    ]
    replayer = dispute_replayer(stack.client.data_converter)
    tried, failures = 0, []
    for number in numbers:
        history = await stack.handle(number).fetch_history()
        tried += len(list(splits(history)))
        failures += await split_replay_failures(replayer, history)
    assert tried >= 20, "the paths should have records followed by more work in their task"
    assert failures == []


def test_every_patch_is_asked_at_the_start_of_a_run() -> None:
    """A patch left out of PATCHES would be asked where the code reaches it, where a busy
    worker's split task can hide its marker from a replay (PATCHES_AT_START_PATCH)."""
    defined = {
        value
        for name, value in vars(core).items()
        if name.endswith("_PATCH") and name != "PATCHES_AT_START_PATCH"
    }
    assert set(core.PATCHES) | set(core.LATER_PATCHES) == defined
    assert len(core.PATCHES) + len(core.LATER_PATCHES) == len(defined)


class _FinalHistory(WorkflowInboundInterceptor):
    """The workflow's own history entries once its run returns, in `entries` (a replay)."""

    entries: list[tuple[int, str, datetime]] = []

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        result = await super().execute_workflow(input)
        _FinalHistory.entries = [(h.seq, h.action, h.at) for h in workflow.instance()._history]
        return result


class _ReadFinalHistory(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _FinalHistory


async def test_a_replay_keeps_each_entrys_time_as_the_trail_holds_it(stack: Stack) -> None:
    """A busy worker that ended a task at a record's marker ran the code after it (the next
    record, stamped with the clock) one task later than a replay runs it: the trail holds the
    later time. Each record's marker carries the trail's time, and a replay takes it over: here
    the `settled` entry's marker says half a second later than the clock the replay reads."""
    number = await settled(stack)
    history = await stack.handle(number).fetch_history()
    converter = stack.client.data_converter
    later: dict[int, datetime] = {}
    for event in history.events:
        if event.marker_recorded_event_attributes.marker_name != "core_local_activity":
            continue
        result = event.marker_recorded_event_attributes.details["result"]
        [recorded] = await converter.decode(result.payloads, [Recorded])
        assert recorded.at is not None, "each record's marker carries the entry's time"
        if recorded.seq == len(stack.events(number)) - 3:  # settled, then remedy, applied, closed
            moved = recorded.model_copy(update={"at": recorded.at + timedelta(milliseconds=500)})
            later[moved.seq] = moved.at
            encoded = await converter.encode([moved])
            del result.payloads[:]
            result.payloads.extend(encoded)
    assert [action for seq, action, _ in _trail(stack, number) if seq in later] == ["settled"]

    replayer = dispute_replayer(
        converter,
        interceptors=[_ReadFinalHistory()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    _FinalHistory.entries = []
    await replayer.replay_workflow(history)
    replayed = {seq: at for seq, _, at in _FinalHistory.entries}
    trail = {seq: at for seq, _, at in _trail(stack, number)}
    assert replayed == trail | later


def _trail(stack: Stack, number: str) -> list[tuple[int, str, datetime]]:
    return [(e.seq, e.action, e.at) for e in stack.events(number)]


class _Starved(WorkflowInboundInterceptor):
    """The replay's first `accept_assignment` held past the SDK's deadlock timeout (2 s), as a
    worker starved of CPU holds it."""

    held = False

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        if input.update == "accept_assignment" and not _Starved.held:
            _Starved.held = True
            time.sleep(2.5)
        return await super().handle_update_handler(input)


class _Starve(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Starved


@pytest.mark.timeout(30)
async def test_a_replay_starved_of_cpu_still_answers() -> None:
    """A replay on a machine busy enough to hold one workflow task past 2 s (CI, 2 cores, both
    busy) must still say whether the history replays. With the SDK's deadlock detector on, the
    task is interrupted mid-step, its eviction can never finish, and the replay hangs until the
    suite's timeout (seen: test_stored_history_replays, 120 s)."""
    path = HISTORIES[0].parent / "test_mediator_dismisses_with_a_reason.json"
    _Starved.held = False
    replayer = dispute_replayer(
        CONVERTER, interceptors=[_Starve()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False
    )
    assert _Starved.held
    assert result.replay_failure is None, result.replay_failure
