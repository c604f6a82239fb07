"""Search attributes: each dispute can be found in the Temporal UI and with
`temporal workflow list --query` by stage, category, deadline, claimant tier and region."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models import search_attributes as sa
from tests.conftest import MailCapture, Stack, dev_stack
from tests.workflows.test_dispute_paths import in_mediation


async def attributes(handle: WorkflowHandle) -> dict[str, object]:  # type: ignore[type-arg]
    described = await handle.describe()
    return {p.key.name: p.value for p in described.typed_search_attributes}


async def attributes_once(
    handle: WorkflowHandle,  # type: ignore[type-arg]
    stage: str,
    deadline: object,
) -> dict[str, object]:
    """The attributes once they show `stage` and `deadline`, asked again for up to 20 s. The
    state a query answers runs ahead of the attributes, which land with each record; under
    load the describe can fall between a stage's record clearing the deadline and the next one
    setting it, where temporalio cannot decode the cleared Datetime ("fromisoformat: argument
    must be str")."""
    deadline_at = asyncio.get_running_loop().time() + 20
    while True:
        try:
            found = await attributes(handle)
        except TypeError:
            found = {}
        if found.get("AccordStage") == stage and found.get("AccordSlaDeadline") == deadline:
            return found
        if asyncio.get_running_loop().time() > deadline_at:
            return found
        await asyncio.sleep(0.1)


async def test_attributes_follow_the_stage_and_the_deadline(stack: Stack) -> None:
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    [acceptance] = [d for d in state.deadlines if d.purpose == "acceptance"]
    found = await attributes_once(stack.handle(number), "triage", acceptance.due_at)
    assert found["AccordStage"] == "triage"
    assert found["AccordCategory"] == "deal_registration"
    assert (found["AccordClaimantTier"], found["AccordRegion"]) == ("platinum", "NA-East")
    assert found["AccordSlaDeadline"] == acceptance.due_at
    # Nothing personal: no party, person or amount among them (Temporal adds its own record of
    # the patches a workflow went through).
    assert set(found) - {"TemporalChangeVersion"} == set(sa.TYPES)

    await in_mediation(stack, number)
    state = await stack.state(number)
    [mediation] = [d for d in state.deadlines if d.purpose == "mediation"]
    found = await attributes_once(stack.handle(number), "mediation", mediation.due_at)
    assert found["AccordStage"] == "mediation"
    assert found["AccordSlaDeadline"] == mediation.due_at


async def test_disputes_are_listed_by_query_on_a_dev_server_started_as_make_run_does(
    dev_server: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    # The dev server is started with DEV_SERVER_FLAGS alone (as `make run` starts it): the
    # attributes exist before any worker registers them. The time-skipping server cannot list.
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)
    async with stack.worker:
        number = (await stack.file()).number
        await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
        query = "AccordStage = 'triage' AND AccordCategory = 'deal_registration'"
        listed: list[str] = []
        for _ in range(100):  # visibility follows a moment behind
            listed = [w.id async for w in stack.client.list_workflows(query)]
            if number in listed:
                break
            await asyncio.sleep(0.2)
        assert number in listed
        assert [w.id async for w in stack.client.list_workflows("AccordStage = 'closed'")] == []
