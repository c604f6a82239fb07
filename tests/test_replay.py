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
