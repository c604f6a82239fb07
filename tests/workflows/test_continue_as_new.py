"""Continue-as-new (issue 14, item 1): when Temporal suggests it, a dispute in mediation waits
for the actions in progress and continues as new with all its state; the next run goes on
where it stood, and an action applied before is not applied again when it is sent again."""

from __future__ import annotations

import os

import pytest
from temporalio.client import WorkflowUpdateFailedError

from accord.disputes import texts
from accord.rules.audit import first_broken_link
from models.enums import DisputeStage
from models.payloads import (
    AcceptAssignment,
    Actor,
    AddMessage,
    AddNote,
    AnswerInformation,
    DisputeState,
    MailMessage,
    ProposeSettlement,
    RequestInformation,
    RespondToOffer,
)
from tests.conftest import CONVERTER, HISTORIES, Stack
from tests.history_splits import dispute_replayer, split_replay_failures
from tests.workflows.test_formal_review import SPLIT
from workflows.dispute import DisputeWorkflow


@pytest.fixture
def stack(eager_stack: Stack) -> Stack:
    """This module's disputes run on the dev server that suggests continuing as new early."""
    return eager_stack


async def run_id(stack: Stack, number: str) -> str:
    return str((await stack.handle(number).describe()).run_id)


def comparable(state: DisputeState) -> dict[str, object]:
    """What must be the same on both sides of the rollover."""
    return state.model_dump(
        mode="json",
        include={
            "stage",
            "mediator_id",
            "deadlines",
            "clock_paused",
            "open_tasks",
            "information_requests",
            "offers",
            "notes",
            "history",
            "outcome",
            "similar",
        },
    )


async def test_a_busy_mediation_continues_as_new_where_it_stood_and_settles(
    stack: Stack,
) -> None:
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    mediator = stack.actor(f"{state.candidate_mediator_id}@vendor.example")
    handle = stack.handle(number)
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=mediator, impartiality_declaration="No ties to either party."),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    first_run = await run_id(stack, number)
    asked = await handle.execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(actor=mediator, party_id="northwind", questions="When exactly?"),
    )
    kept = AddNote(actor=mediator, text="The first note, sent under a key of its own.")
    await handle.execute_update(DisputeWorkflow.add_note, kept, id="note-under-a-key")
    before: DisputeState | None = None
    sent = 1
    # Notes until Temporal suggests a new run and the dispute takes it (the limit is low here).
    while await run_id(stack, number) == first_run:
        assert sent < 60, "the dispute never continued as new"
        await stack.recorded(number)
        before = await stack.state(number)
        await handle.execute_update(
            DisputeWorkflow.add_note, AddNote(actor=mediator, text=f"Note {sent}.")
        )
        sent += 1
    assert before is not None
    after = await stack.wait_for(number, lambda s: len(s.notes) == sent)
    # Everything the first run held, the second holds: the last note is the only difference.
    assert comparable(
        after.model_copy(update={"notes": after.notes[:-1], "history": after.history[:-1]})
    ) == comparable(before)
    assert after.stage is DisputeStage.AWAITING_PARTY and after.clock_paused
    # The same request again (a retry) is not applied a second time in the new run.
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(DisputeWorkflow.add_note, kept, id="note-under-a-key")
    assert "was already applied" in str(again.value.cause)
    assert len((await stack.state(number)).notes) == sent
    # Mediation goes on in the new run: the answer resumes the clock, an offer settles it.
    await handle.execute_update(
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=stack.actor("nora@northwind.example"),
            request_id=asked.reference or "",
            answer="On 2 November.",
        ),
    )
    await settle_and_check(
        stack, number, mediator, first_run, "continue-as-new-in-mediation", notes=sent
    )


async def settle_and_check(
    stack: Stack, number: str, mediator: Actor, first_run: str, name: str, *, notes: int = 0
) -> None:
    """An offer every party accepts; then the dispute closes settled, its audit trail whole
    (one entry per seq, the chain intact, as the workflow counted them) and both runs replay."""
    handle = stack.handle(number)
    offer = await handle.execute_update(
        DisputeWorkflow.propose_settlement,
        ProposeSettlement(actor=mediator, terms="Northwind keeps it.", remedies=(SPLIT,)),
    )
    for login in ("nora@northwind.example", "carl@contoso.example"):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(login), offer_id=offer.reference or "", accept=True),
        )
    outcome = await handle.result()
    assert (outcome.stage, outcome.outcome) == (DisputeStage.CLOSED, "settled")
    final = await stack.state(number)
    events = stack.events(number)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert first_broken_link(events) is None
    assert [(h.seq, h.action) for h in final.history] == [(e.seq, e.action) for e in events]
    assert sum(1 for e in events if e.action == "note_added") == notes
    assert not final.open_tasks
    # Both runs replay on this code (the first ends in its continue-as-new); `make histories`
    # keeps them for the replay test, never overwriting one already stored.
    for n, run in enumerate((first_run, await run_id(stack, number)), start=1):
        history = await stack.client.get_workflow_handle(number, run_id=run).fetch_history()
        replayer = dispute_replayer(CONVERTER)
        await replayer.replay_workflow(history)
        # A sample of the busy shapes: these runs are long, and each shape a whole replay.
        assert await split_replay_failures(replayer, history, most=4) == []
        path = HISTORIES / f"{name}--run{n}.json"
        if os.environ.get("ACCORD_RECORD_HISTORIES") == "1" and not path.exists():
            path.write_text(history.to_json())


async def test_a_busy_triage_continues_as_new_with_its_offer_waiting(stack: Stack) -> None:
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    first_run = await run_id(stack, number)
    handle = stack.handle(number)
    nora = stack.actor("nora@northwind.example")
    before: DisputeState | None = None
    sent = 0
    # Replies from the claimant while the offer to the mediator waits, until a new run.
    while await run_id(stack, number) == first_run:
        assert sent < 80, "the dispute never continued as new"
        await stack.recorded(number)
        before = await stack.state(number)
        reply = AddMessage(
            actor=nora,
            message=MailMessage(
                inbound_id=sent + 1,
                sender=nora.id,
                subject=f"Re: [{number}] more detail {sent}",
                text=f"More detail, reply {sent}.",
                side_partner_id="northwind",
            ),
        )
        stored = texts.externalise(stack.sessions, number, reply, None)
        await handle.execute_update(DisputeWorkflow.add_message, stored)
        sent += 1
    assert before is not None
    await stack.wait_for_event(number, "message_received", sent)
    after = await stack.state(number)
    assert comparable(after.model_copy(update={"history": after.history[:-1]})) == comparable(
        before
    )
    assert after.stage is DisputeStage.TRIAGE
    assert after.candidate_mediator_id == state.candidate_mediator_id
    # The mediator accepts the offer made in the first run; mediation begins in the second.
    mediator = stack.actor(f"{state.candidate_mediator_id}@vendor.example")
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=mediator, impartiality_declaration="No ties to either party."),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    await settle_and_check(stack, number, mediator, first_run, "continue-as-new-in-triage")
    assert sum(1 for e in stack.events(number) if e.action == "message_received") == sent
