"""`accord show` after an appeal: the panel it lists is the round's own, never the first one."""

from __future__ import annotations

import pytest
from temporalio import workflow

from models.enums import TaskKind
from tests.conftest import Stack
from tests.test_cli import accord
from tests.test_formal_review import (
    PANEL,
    appeal_by_contoso,
    appoint_alternates_and_redraw,
    ruled,
)
from workflows.core import FRESH_APPEAL_PANEL_PATCH
from workflows.dispute import DisputeWorkflow


def panel_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith("panel ")]


@pytest.fixture
def before_fresh_appeal_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disputes running on the code from before the patch fresh-appeal-panel: an appeal left
    the first panel in the workflow's state until the fresh one was drawn."""
    patched = workflow.patched

    def unpatched(patch_id: str) -> bool:
        return False if patch_id == FRESH_APPEAL_PANEL_PATCH else patched(patch_id)

    monkeypatch.setattr(workflow, "patched", unpatched)


@pytest.mark.usefixtures("before_fresh_appeal_panel")
async def test_show_never_lists_the_first_panel_as_the_appeal_panel(stack: Stack) -> None:
    number = await ruled(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal_by_contoso(stack))
    # The demo board of the stack has one member per function: no fresh panel yet.
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    code, out = await accord(stack, "show", number)
    assert code == 0, out
    for line in panel_lines(out):
        assert "round 2" not in line or not any(p in line for p in PANEL), line
    state = await stack.state(number)
    assert (
        state.review is None
        or state.review.round == 1
        or not set(m.person_id for m in state.review.panel) & set(PANEL)
    ), state.review

    await appoint_alternates_and_redraw(stack, number)
    await stack.wait_for(number, lambda s: s.review is not None and s.review.round == 2)
    code, out = await accord(stack, "show", number)
    (line,) = panel_lines(out)
    assert "round 2: alt.sales" in line and "chair alt.chair" in line, out
