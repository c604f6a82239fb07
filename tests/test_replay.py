"""Replay stored histories of every path: a workflow change that breaks running disputes fails.

Histories are recorded by `make histories` (the path tests with ACCORD_RECORD_HISTORIES=1).
After a deliberate change to DisputeWorkflow, guard the old path with `workflow.patched(...)`
and keep the old histories: they must still replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import CONVERTER
from workflows.dispute import DisputeWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_stored() -> None:
    assert len(HISTORIES) >= 8, "run `make histories` to record the workflow histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[DisputeWorkflow], data_converter=CONVERTER)
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


KNOWN_DEFECTS = Path(__file__).parent / "histories_known_defects"


@pytest.mark.xfail(
    strict=True,
    reason=(
        "known defect, not yet mended: under load a local audit record finished as its workflow"
        " task was completed for a heartbeat (as the history reads): its marker went out with that"
        " task while the"
        " workflow went on (and asked for CONTINUE_AS_NEW_PATCH) only in the next one. Replayed,"
        " the record resolves in the first task, the workflow asks for the patch there, finds no"
        " marker in that task and takes the old path: nondeterminism, and the dispute's workflow"
        " task fails on every retry (bench.web, 1,000 open disputes, 2026-12-06)"
    ),
)
async def test_a_record_resolved_at_a_workflow_task_heartbeat_replays() -> None:
    path = KNOWN_DEFECTS / "record-resolved-at-a-task-heartbeat.json"
    replayer = Replayer(workflows=[DisputeWorkflow], data_converter=CONVERTER)
    history = WorkflowHistory.from_json("DSP-2026-000016", path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
