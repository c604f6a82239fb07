"""Adversarial probes on mediation and remedies: offers, information, impasse, roles that ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from models.enums import DisputeStage, TaskKind, TaskState
from models.payloads import (
    AcceptAssignment,
    ActionResult,
    AddNote,
    AnswerInformation,
    AssignMediator,
    DeclareImpasse,
    Dismiss,
    ExtendDeadline,
    Recuse,
    RequestInformation,
    RespondToOffer,
    RetryRemedy,
    WaiveRemedy,
)
from models.tables import Task
from tests.conftest import MailCapture, Stack, make_settings, seed
from tests.races import Gate, begin, outcome, replay_all, try_update
from tests.webhook_receiver import Receiver
from tests.workflows.test_dispute_paths import DECLARATION, in_mediation, split_offer
from workflows.dispute import DisputeWorkflow

NORA = "nora@northwind.example"
CARL = "carl@contoso.example"
MEDIATORS = ("kenji.sato", "sam.okafor", "greta.hoffmann")


def respond(stack: Stack, who: str, accept: bool, offer: str = "offer-1") -> RespondToOffer:
    return RespondToOffer(actor=stack.actor(who), offer_id=offer, accept=accept)


async def test_a_released_mediators_offer_does_not_settle_the_dispute_under_the_next_one(
    race: Stack,
) -> None:
    stack = race
    number = (await stack.file()).number
    first = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, first))
    await handle.execute_update(DisputeWorkflow.respond_to_offer, respond(stack, NORA, True))
    second = next(m for m in MEDIATORS if m != first)
    await handle.execute_update(
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor("alex.admin"), person_id=second, reason="Conflict found"),
    )
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(second), impartiality_declaration=DECLARATION),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    state = await stack.state(number)
    still_open = [o.id for o in state.offers if o.open]
    tasks = [t.key for t in state.open_tasks if t.kind is TaskKind.RESPOND_TO_OFFER]
    late = await try_update(
        stack, number, DisputeWorkflow.respond_to_offer, respond(stack, CARL, True)
    )
    if not str(late).startswith("REFUSED"):
        await stack.wait_for_event(number, "settled")
    settled = [e.content.get("offer") for e in stack.events(number) if e.action == "settled"]
    report = (
        f"offers still open under {second}: {still_open} (respond tasks open: {tasks}); "
        f"Contoso's acceptance of {first}'s offer: {getattr(late, 'message', late)!r}; "
        f"settled on: {settled}"
    )
    assert still_open == [] and settled == [], report


async def test_a_recused_mediators_offer_does_not_settle_the_dispute_under_the_next_one(
    race: Stack,
) -> None:
    stack = race
    number = (await stack.file()).number
    first = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, first))
    await handle.execute_update(DisputeWorkflow.respond_to_offer, respond(stack, NORA, True))
    await handle.execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor(first), reason="I used to work for Contoso, I just learnt."),
    )
    second = await stack.wait_for(number, lambda s: s.candidate_mediator_id not in (None, first))
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(
            actor=stack.actor(second.candidate_mediator_id), impartiality_declaration=DECLARATION
        ),
    )
    late = await try_update(
        stack, number, DisputeWorkflow.respond_to_offer, respond(stack, CARL, True)
    )
    if not str(late).startswith("REFUSED"):
        await stack.wait_for_event(number, "settled")
    settled = [e.content.get("offer") for e in stack.events(number) if e.action == "settled"]
    report = (
        f"Contoso's acceptance of the recused {first}'s offer: "
        f"{getattr(late, 'message', late)!r}; settled on: {settled}"
    )
    assert settled == [], report


async def test_the_ended_mediators_try_everything(race: Stack) -> None:
    """A released mediator and a candidate whose offer expired (then released) act again."""
    stack = race
    number = (await stack.file()).number
    first = await in_mediation(stack, number)
    second = next(m for m in MEDIATORS if m != first)
    await stack.handle(number).execute_update(
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor("alex.admin"), person_id=second, reason="Conflict found"),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(second), impartiality_declaration=DECLARATION),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    await stack.recorded(number)
    before = len(stack.events(number))
    who = stack.actor(first)
    attempts = {
        "accept": (
            DisputeWorkflow.accept_assignment,
            AcceptAssignment(actor=who, impartiality_declaration=DECLARATION),
        ),
        "recuse": (DisputeWorkflow.recuse, Recuse(actor=who, reason="Stepping down from it.")),
        "note": (DisputeWorkflow.add_note, AddNote(actor=who, text="A note from the past.")),
        "info": (
            DisputeWorkflow.request_information,
            RequestInformation(actor=who, party_id="contoso", questions="Anything?"),
        ),
        "offer": (DisputeWorkflow.propose_settlement, split_offer(stack, first)),
        "impasse": (
            DisputeWorkflow.declare_impasse,
            DeclareImpasse(actor=who, reason="No movement at all."),
        ),
        "dismiss": (
            DisputeWorkflow.dismiss,
            Dismiss(actor=who, reason="Out of scope entirely, dismissed."),
        ),
    }
    results = {k: await try_update(stack, number, u, p) for k, (u, p) in attempts.items()}
    accepted = {k: v for k, v in results.items() if not str(v).startswith("REFUSED")}
    assert accepted == {} and len(stack.events(number)) == before, accepted


async def test_both_parties_accepting_at_once_settle_once(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    gates["record_event"].hold(lambda r: r.action == "offer_accepted")
    a = await begin(stack, number, DisputeWorkflow.respond_to_offer, respond(stack, NORA, True))
    await gates["record_event"].reached()
    b = await begin(stack, number, DisputeWorkflow.respond_to_offer, respond(stack, CARL, True))
    twice = await begin(stack, number, DisputeWorkflow.respond_to_offer, respond(stack, NORA, True))
    gates["record_event"].release()
    results = [await outcome(h) for h in (a, b, twice)]
    result = await stack.handle(number).result()
    assert result.stage is DisputeStage.CLOSED, results
    assert stack.actions(number).count("settled") == 1, results
    assert stack.actions(number).count("offer_accepted") == 2, results
    assert isinstance(results[2], str), results


async def test_a_rejection_racing_a_new_offer(race: Stack, gates: dict[str, Gate]) -> None:
    stack = race
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    gates["record_event"].hold(lambda r: r.action == "settlement_proposed")
    proposal = await begin(
        stack, number, DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    await gates["record_event"].reached()
    reject = await try_update(
        stack, number, DisputeWorkflow.respond_to_offer, respond(stack, CARL, False)
    )
    gates["record_event"].release()
    assert isinstance(await outcome(proposal), ActionResult)
    assert str(reject).startswith("REFUSED") and "offer-1" in str(reject), reject
    state = await stack.state(number)
    assert [(o.id, o.open) for o in state.offers] == [("offer-1", False), ("offer-2", True)]
    tasks = sorted(
        t.key.split(":")[1] for t in state.open_tasks if t.kind is TaskKind.RESPOND_TO_OFFER
    )
    assert tasks == ["offer-2-contoso", "offer-2-northwind"], tasks


async def test_an_information_request_racing_an_impasse(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    gates["compute_deadline"].hold(lambda r: r.purpose.startswith("information"))
    ask = await begin(
        stack,
        number,
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Order date?"
        ),
    )
    await gates["compute_deadline"].reached()
    impasse = await begin(
        stack,
        number,
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    gates["compute_deadline"].release()
    asked, declared = await outcome(ask), await outcome(impasse)
    state = await stack.wait_for(number, lambda s: s.review is not None)
    with stack.sessions.read() as session:
        open_info = [
            t.key
            for t in session.exec(select(Task).where(Task.dispute_number == number)).all()
            if t.state is TaskState.OPEN and t.kind is TaskKind.ANSWER_INFORMATION
        ]
    report = f"request: {asked!r}; impasse: {declared!r}; open info tasks {open_info}"
    assert state.stage is DisputeStage.FORMAL_REVIEW and not state.clock_paused, report
    assert open_info == [], report
    answer = await try_update(
        stack,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(actor=stack.actor(CARL), request_id="info-1", answer="1 November."),
    )
    assert str(answer).startswith("REFUSED"), answer


async def test_an_answer_racing_the_information_deadline(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Order date?"
        ),
    )
    state = await stack.state(number)
    due = next(d for d in state.deadlines if d.purpose.startswith("information")).due_at
    await stack.env.sleep(due - await stack.env.get_current_time() - timedelta(minutes=1))
    gates["record_event"].hold(lambda r: r.action == "information_overdue")
    sleeping = asyncio.create_task(
        stack.env.sleep(due - await stack.env.get_current_time() + timedelta(seconds=1))
    )
    await gates["record_event"].reached()
    answer = await begin(
        stack,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(actor=stack.actor(CARL), request_id="info-1", answer="1 November."),
    )
    gates["record_event"].release()
    await asyncio.wait_for(sleeping, 30)
    said = await outcome(answer)
    await stack.wait_for_event(number, "clock_resumed")
    assert isinstance(said, str) and (
        "not an open information request" in said
        or "not possible while the dispute is mediation" in said
    ), said
    assert stack.actions(number).count("clock_resumed") == 1
    assert "information_answered" not in stack.actions(number)


async def test_an_extension_racing_the_mediation_deadline(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = (await stack.file()).number
    await in_mediation(stack, number)
    due = (await stack.state(number)).deadlines[0].due_at
    await stack.env.sleep(due - await stack.env.get_current_time() - timedelta(minutes=1))
    gates["record_event"].hold(lambda r: r.action == "deadline_passed")
    sleeping = asyncio.create_task(
        stack.env.sleep(due - await stack.env.get_current_time() + timedelta(seconds=1))
    )
    await gates["record_event"].reached()
    extend = await begin(
        stack,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=stack.actor("alex.admin"), business_days=3, reason="Parties are close"
        ),
    )
    gates["record_event"].release()
    await asyncio.wait_for(sleeping, 30)
    said = await outcome(extend)
    await stack.wait_for(number, lambda s: s.review is not None)
    assert isinstance(said, str), said
    assert "deadline_extended" not in stack.actions(number)


async def test_a_settlement_while_a_party_owes_information_leaves_nothing_of_it_open(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    await handle.execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(
            actor=stack.actor(mediator), party_id="contoso", questions="Order date?"
        ),
    )
    gates["apply_remedy"].hold()  # keep the dispute in its remedy stage while we look
    for who in (NORA, CARL):
        await handle.execute_update(DisputeWorkflow.respond_to_offer, respond(stack, who, True))
    await gates["apply_remedy"].reached()
    state = await stack.state(number)
    with stack.sessions.read() as session:
        open_tasks = [
            t.key.split(":")[1]
            for t in session.exec(select(Task).where(Task.dispute_number == number)).all()
            if t.state is TaskState.OPEN
        ]
    gates["apply_remedy"].release()
    report = (
        f"stage {state.stage}; clock_paused={state.clock_paused}; "
        f"query tasks {[t.key.split(':')[1] for t in state.open_tasks]}; read-model tasks {open_tasks}"
    )
    assert not state.clock_paused and open_tasks == [], report
    assert (await handle.result()).stage is DisputeStage.CLOSED


# --- remedies: retry and waive at once ----------------------------------------------------

SECRET = "remedy-test-secret"


@pytest.fixture
async def webhook_race(
    gates: dict[str, Gate],
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[tuple[Stack, Receiver]]:
    with Receiver(SECRET.encode()) as receiver:
        mail, port = smtp
        settings = make_settings(
            sqlite_url,
            port,
            tmp_path,
            remedy_webhooks={"commission_split": receiver.url},
            remedy_webhook_secret=SECRET,
            remedy_webhook_timeout_seconds=2,
        )
        harness = Stack(env, settings, mail)
        seed(harness.sessions)
        async with harness.worker:
            yield harness, receiver
            for gate in gates.values():
                gate.release()
            failures = await replay_all(harness)
        assert failures == [], failures


async def settle(stack: Stack) -> str:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    for who in (NORA, CARL):
        await handle.execute_update(DisputeWorkflow.respond_to_offer, respond(stack, who, True))
    return number


@pytest.mark.parametrize("first", ["waive", "retry"])
async def test_retry_and_waive_of_one_remedy_at_once(
    webhook_race: tuple[Stack, Receiver], gates: dict[str, Gate], first: str
) -> None:
    stack, receiver = webhook_race
    receiver.refuse_with = 422
    number = await settle(stack)
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    waive = (
        DisputeWorkflow.waive_remedy,
        WaiveRemedy(actor=stack.actor("alex.admin"), position=0, reason="Paid by hand in December"),
    )
    retry = (
        DisputeWorkflow.retry_remedy,
        RetryRemedy(actor=stack.actor("ada.admin"), position=0, reason="CRM fixed"),
    )
    if first == "waive":
        gates["waive_remedy"].hold()
        one = await begin(stack, number, *waive)
        await gates["waive_remedy"].reached()
        two = await begin(stack, number, *retry)
        gates["waive_remedy"].release()
    else:
        gates["record_event"].hold(lambda r: r.action == "remedy_retried")
        one = await begin(stack, number, *retry)
        try:
            await gates["record_event"].reached()
        except AssertionError:
            state = await stack.state(number)
            raise AssertionError(
                f"retry never recorded: trail {stack.actions(number)}; query history "
                f"{[h.action for h in state.history]}; tasks {[t.key for t in state.open_tasks]}"
            ) from None
        two = await begin(stack, number, *waive)
        gates["record_event"].release()
    r1, r2 = await outcome(one), await outcome(two)
    assert isinstance(r1, ActionResult) and isinstance(r2, str), (r1, r2)
    actions = stack.actions(number)
    assert ("remedy_waived" in actions) != ("remedy_retried" in actions), actions
    if first == "waive":
        assert (await stack.handle(number).result()).stage is DisputeStage.CLOSED
