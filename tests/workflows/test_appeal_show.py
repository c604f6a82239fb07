"""`accord show` after an appeal: the panel it lists is the round's own, never the first one."""

from __future__ import annotations

import re

import pytest
from temporalio import workflow

from models.enums import TaskKind
from models.tables import Person
from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.workflows.test_formal_review import (
    PANEL,
    appeal_by_contoso,
    appoint_alternates_and_redraw,
    ruled,
)
from workflows.core import FRESH_APPEAL_PANEL_PATCH
from workflows.dispute import DisputeWorkflow

pytestmark = pytest.mark.live_checked
"""Each state these paths wait for is checked in the read model the pages read (accord.disputes.live)."""


def panel_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith("panel ")]


@pytest.fixture(params=["patched", "begun before fresh-appeal-panel"])
def code_of(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Disputes on today's code, and disputes begun on the code from before the patch
    fresh-appeal-panel: there an appeal left the first panel in the workflow's state until the
    fresh one was drawn."""
    if request.param != "patched":
        patched = workflow.patched

        def unpatched(patch_id: str) -> bool:
            return False if patch_id == FRESH_APPEAL_PANEL_PATCH else patched(patch_id)

        monkeypatch.setattr(workflow, "patched", unpatched)
    return str(request.param)


async def test_show_never_lists_the_first_panel_as_the_appeal_panel(
    stack: Stack, code_of: str
) -> None:
    number = await ruled(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal_by_contoso(stack))
    # The board of the stack has one member per function: no fresh panel yet.
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    code, out = await accord(stack, "show", number)
    assert code == 0, out
    assert panel_lines(out) == [], out  # round 2 has no panel yet, and the first is not it
    assert (await stack.state(number)).review is None

    await appoint_alternates_and_redraw(stack, number)
    await stack.wait_for(number, lambda s: s.review is not None and s.review.round == 2)
    code, out = await accord(stack, "show", number)
    (line,) = panel_lines(out)
    assert "round 2: Alt Sales" in line and "chair Alt Chair" in line, out
    with stack.sessions.read() as session:  # show names people: the first panel by name
        first = [session.get(Person, member).name for member in PANEL]  # type: ignore[union-attr]
    assert not any(re.search(rf"\b{re.escape(name)}\b", line) for name in first), line
