"""Two people acting on one dispute at the same moment: the decision lock, rules re-checked once
it is held, and terminal stages that stay terminal.

Each race is made deterministic: the first action's activity is held on an event (tests/races.py)
while the second action arrives, then released.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from accord.runtime.wiring import build_worker
from activities.records import RecordActivities
from models.enums import DisputeStage, TaskState
from models.payloads import (
    SYSTEM,
    ActionResult,
    AddNote,
    AnswerInformation,
    AssignMediator,
    DeclareImpasse,
    EventRecord,
    RequestInformation,
    RespondToOffer,
    Withdraw,
)
from models.tables import Dispute, Task
from tests.conftest import MailCapture, Stack, dev_stack
from tests.races import Gate, begin, outcome, replay_all
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from workflows.dispute import DisputeWorkflow


def read_model(stack: Stack, number: str) -> tuple[Dispute, list[Task]]:
    with stack.sessions.read() as session:
        dispute = session.get(Dispute, number)
        assert dispute is not None
        tasks = list(session.exec(select(Task).where(Task.dispute_number == number)).all())
        return dispute, tasks


async def test_a_reassignment_racing_an_impasse_never_sends_an_escalated_dispute_back(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number = (await race.file()).number
    mediator = await in_mediation(race, number)
    other = next(m for m in ("kenji.sato", "sam.okafor", "greta.hoffmann") if m != mediator)
    gates["assign_mediator"].hold(lambda request: request.chosen_person_id == other)
    reassign = await begin(
        race,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=race.actor("alex.admin"), person_id=other, reason="Workload"),
    )
    await gates["assign_mediator"].reached()
    impasse = await begin(
        race,
        number,
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=race.actor(mediator), reason="Neither side will move."),
    )
    gates["assign_mediator"].release()

    assert isinstance(await outcome(reassign), ActionResult)
    refused = await outcome(impasse)
    # The reassignment held the dispute first; the impasse is refused by the rule it now breaks.
    assert refused == (
        "declare_impasse is not possible while the dispute is triage "
        "(possible in: awaiting_party, mediation)"
    )
    state = await race.wait_for(number, lambda s: s.candidate_mediator_id == other)
    assert state.stage is DisputeStage.TRIAGE
    assert "impasse_declared" not in race.actions(number)
    assert "stage_formal_review" not in race.actions(number)


async def test_an_answer_racing_a_withdrawal_leaves_the_dispute_withdrawn_in_step(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number = (await race.file()).number
    mediator = await in_mediation(race, number)
    handle = race.handle(number)
    await handle.execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=race.actor(mediator), party_id="northwind", questions="When did you register?"
        ),
    )
    gates["shift_deadline"].hold()
    answer = await begin(
        race,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=race.actor("nora@northwind.example"),
            request_id="info-1",
            answer="On 2 November, see the portal log.",
        ),
    )
    await gates["shift_deadline"].reached()
    withdraw = await begin(
        race,
        number,
        DisputeWorkflow.withdraw,
        Withdraw(actor=race.actor("nora@northwind.example"), reason="Settled between us."),
    )
    gates["shift_deadline"].release()

    assert isinstance(await outcome(answer), ActionResult)
    assert isinstance(await outcome(withdraw), ActionResult)
    result = await handle.result()
    assert result.stage is DisputeStage.WITHDRAWN
    dispute, tasks = read_model(race, number)
    assert dispute.stage is DisputeStage.WITHDRAWN
    assert dispute.stage_deadline is None
    assert [t.key for t in tasks if t.state is TaskState.OPEN] == []
    actions = race.actions(number)
    assert actions.index("clock_resumed") < actions.index("withdrawn")
    assert actions[-1] == "withdrawn"


async def accepted_by_the_respondent(stack: Stack) -> tuple[str, str]:
    """A dispute in mediation with offer-1 accepted by Contoso; Northwind's answer is pending."""
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    await handle.execute_update(
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=stack.actor("carl@contoso.example"), offer_id="offer-1", accept=True),
    )
    return number, mediator


async def test_a_withdrawal_after_every_party_accepted_is_refused(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number, _ = await accepted_by_the_respondent(race)
    handle = race.handle(number)
    gates["record_event"].hold(lambda record: record.action == "settled")
    accept = await begin(
        race,
        number,
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=race.actor("nora@northwind.example"), offer_id="offer-1", accept=True),
    )
    await gates["record_event"].reached()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await asyncio.wait_for(
            handle.execute_update(
                DisputeWorkflow.withdraw,
                Withdraw(actor=race.actor("nora@northwind.example"), reason="Changed our mind."),
            ),
            30,
        )
    assert "withdraw is not possible while the dispute is settled" in str(refused.value.cause)
    gates["record_event"].release()

    assert isinstance(await outcome(accept), ActionResult)
    result = await handle.result()
    assert result.stage is DisputeStage.CLOSED and result.outcome == "settled"
    assert "withdrawn" not in race.actions(number)


async def test_a_new_offer_after_the_last_acceptance_of_the_old_one_is_refused(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number, mediator = await accepted_by_the_respondent(race)
    handle = race.handle(number)
    gates["record_event"].hold(
        lambda record: (
            record.action == "offer_accepted" and record.actor.id != "carl@contoso.example"
        )
    )
    accept = await begin(
        race,
        number,
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=race.actor("nora@northwind.example"), offer_id="offer-1", accept=True),
    )
    await gates["record_event"].reached()
    superseding = await begin(
        race, number, DisputeWorkflow.propose_settlement, split_offer(race, mediator)
    )
    gates["record_event"].release()

    assert isinstance(await outcome(accept), ActionResult)
    assert "propose_settlement is not possible while the dispute is settled" in str(
        await outcome(superseding)
    )
    await handle.result()
    settled = next(e for e in race.events(number) if e.action == "settled")
    assert settled.content["offer"] == "offer-1"
    assert race.actions(number).count("settlement_proposed") == 1


async def test_the_read_model_never_leaves_a_terminal_stage(stack_on_both: Stack) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("nora@northwind.example"), reason="Settled between us."),
    )
    await stack.handle(number).result()
    last = stack.events(number)[-1]
    assert last.action == "withdrawn"
    late = EventRecord(
        number=number,
        seq=last.seq + 1,
        at=last.at,
        actor=SYSTEM,
        action="stage_mediation",
        content={"summary": "a stale decision"},
        stage=DisputeStage.MEDIATION,
    )
    with pytest.raises(ApplicationError) as refused:
        RecordActivities(stack.sessions).record_event(late)
    assert refused.value.type == "TerminalStage" and refused.value.non_retryable
    assert f"{number} is withdrawn" in refused.value.message
    dispute, _ = read_model(stack, number)
    assert dispute.stage is DisputeStage.WITHDRAWN
    assert stack.events(number)[-1].seq == last.seq  # nothing written
    # An entry that does not change the stage is still recorded (a late message, say).
    note = late.model_copy(update={"action": "message_received", "stage": None})
    assert RecordActivities(stack.sessions).record_event(note).seq == last.seq + 1


async def ends_in_step(stack: Stack, number: str) -> DisputeStage:
    """The workflow's end, and the read model at that end: same stage, nothing left open."""
    result = await stack.handle(number).result()
    dispute, tasks = read_model(stack, number)
    assert dispute.stage is result.stage and not result.stage.is_open
    assert dispute.stage_deadline is None and dispute.closed_at is not None
    assert [t.key for t in tasks if t.state is TaskState.OPEN] == []
    state = await stack.state(number)
    assert state.open_tasks == () and state.deadlines == ()
    return result.stage


WITHDRAW = Withdraw(actor=SYSTEM, reason="We settled it between us.")


@pytest.mark.parametrize("where", ["triage", "awaiting_party", "formal_review"])
async def test_a_withdrawal_ends_the_dispute_with_nothing_left_open(
    stack: Stack, where: str
) -> None:
    from tests.workflows.test_formal_review import in_review

    if where == "formal_review":
        number = await in_review(stack)
    else:
        number = (await stack.file()).number
        if where == "triage":
            await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
        else:
            mediator = await in_mediation(stack, number)
            await stack.handle(number).execute_update(
                DisputeWorkflow.request_information,
                RequestInformation(
                    actor=stack.actor(mediator), party_id="contoso", questions="Your order date?"
                ),
            )
    state = await stack.state(number)
    assert state.stage.value == where and state.open_tasks and state.deadlines
    await stack.handle(number).execute_update(
        DisputeWorkflow.withdraw,
        WITHDRAW.model_copy(update={"actor": stack.actor("nora@northwind.example")}),
    )
    assert await ends_in_step(stack, number) is DisputeStage.WITHDRAWN


async def test_a_withdrawal_racing_the_final_word_of_the_panel_is_refused(
    race: Stack, gates: dict[str, Gate]
) -> None:
    from tests.workflows.test_formal_review import PANEL, in_review, open_ballot, ruling, vote

    number = await in_review(race)
    for who in PANEL[:3]:
        await vote(race, number, who)
    await open_ballot(race, number)
    gates["record_event"].hold(lambda record: record.action == "ruling_issued")
    ruled = await begin(race, number, DisputeWorkflow.issue_ruling, ruling(race))
    await gates["record_event"].reached()
    withdraw = await begin(
        race,
        number,
        DisputeWorkflow.withdraw,
        WITHDRAW.model_copy(update={"actor": race.actor("nora@northwind.example")}),
    )
    gates["record_event"].release()
    assert isinstance(await outcome(ruled), ActionResult)
    assert await outcome(withdraw) == (
        "the panel has ruled: the ruling can be appealed, not withdrawn from"
    )
    await race.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    assert "withdrawn" not in race.actions(number)


async def test_a_worker_dying_while_an_action_holds_the_lock_loses_no_action(
    gates: dict[str, Gate],
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> None:
    # The worst point: an answer holds the decision lock in the middle of its activity, a
    # withdrawal waits behind it, and the worker dies. A fresh worker replays the dispute (the
    # lock is rebuilt from the history) and finishes both, in their order, once each.
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path, worker_grace=timedelta(0))
    await stack.worker.__aenter__()
    try:
        number = (await stack.file()).number
        mediator = await in_mediation(stack, number)
        handle = stack.handle(number)
        await handle.execute_update(
            DisputeWorkflow.request_information,
            RequestInformation(
                actor=stack.actor(mediator), party_id="northwind", questions="When?"
            ),
        )
        gates["shift_deadline"].hold()
        answer = await begin(
            stack,
            number,
            DisputeWorkflow.answer_information,
            AnswerInformation(
                actor=stack.actor("nora@northwind.example"),
                request_id="info-1",
                answer="On 2 November, see the portal log.",
            ),
        )
        await gates["shift_deadline"].reached()
        withdraw = await begin(
            stack,
            number,
            DisputeWorkflow.withdraw,
            Withdraw(actor=stack.actor("nora@northwind.example"), reason="Settled between us."),
        )
        await stack.worker.shutdown()  # dies: no grace for the activity holding the lock
        gates["shift_deadline"].release()
        stack.worker = build_worker(
            stack.client, stack.services, stack.settings.task_queue, fail_workflows_on_bugs=True
        )
        await stack.worker.__aenter__()
        # The dead worker's attempt times out (30 s) and is retried on the new one.
        assert isinstance(await outcome(answer, seconds=90), ActionResult)
        assert isinstance(await outcome(withdraw, seconds=30), ActionResult)
        result = await asyncio.wait_for(handle.result(), 30)
    finally:
        await stack.worker.__aexit__(None, None, None)
    assert result.stage is DisputeStage.WITHDRAWN
    dispute, tasks = read_model(stack, number)
    assert dispute.stage is DisputeStage.WITHDRAWN and dispute.stage_deadline is None
    assert [t.key for t in tasks if t.state is TaskState.OPEN] == []
    actions = stack.actions(number)
    assert actions.count("information_answered") == 1 and actions.count("withdrawn") == 1
    assert actions.index("clock_resumed") < actions.index("withdrawn") == len(actions) - 1
    assert await replay_all(stack) == []


async def test_a_worker_stopped_in_the_middle_of_a_local_record_records_the_action_once(
    gates: dict[str, Gate],
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> None:
    # The worst point since LOCAL_RECORD_PATCH: a note's audit entry is being written inside
    # the workflow task (a local activity) when the worker is stopped. Whether that task is
    # completed or a fresh worker replays the dispute and writes the entry again under the same
    # step, the note is on the record once, the next action goes on, the history replays.
    stack = dev_stack(
        dev_server, sqlite_url, smtp, tmp_path, worker_grace=timedelta(0), workflow_task_seconds=2
    )
    await stack.worker.__aenter__()
    try:
        number = (await stack.file()).number
        mediator = await in_mediation(stack, number)
        handle = stack.handle(number)
        gates["record_event"].hold(lambda record: record.action == "note_added")
        note = asyncio.create_task(
            handle.execute_update(
                DisputeWorkflow.add_note,
                AddNote(actor=stack.actor(mediator), text="Called both sides; offer next week."),
            )
        )
        await gates["record_event"].reached()
        # Stopped with no grace while the record is held: a local activity in flight keeps its
        # worker from stopping until it returns, so the record is let go once the stop began.
        stopping = asyncio.create_task(stack.worker.shutdown())
        await asyncio.sleep(0.5)
        gates["record_event"].release()
        await asyncio.wait_for(stopping, 30)
        stack.worker = build_worker(
            stack.client, stack.services, stack.settings.task_queue, fail_workflows_on_bugs=True
        )
        await stack.worker.__aenter__()
        assert isinstance(await asyncio.wait_for(note, 60), ActionResult)
        await asyncio.wait_for(
            handle.execute_update(
                DisputeWorkflow.add_note,
                AddNote(actor=stack.actor(mediator), text="Offer sent to both parties."),
            ),
            30,
        )
        assert [n.text for n in (await stack.state(number)).notes] == [
            "Called both sides; offer next week.",
            "Offer sent to both parties.",
        ]
    finally:
        await stack.worker.__aexit__(None, None, None)
    assert stack.actions(number).count("note_added") == 2
    assert await replay_all(stack) == []
