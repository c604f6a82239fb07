"""Adversarial probes: two people acting on the assignment at once (triage and mediation)."""

from __future__ import annotations

from models.enums import DisputeStage
from models.payloads import (
    AcceptAssignment,
    ActionResult,
    AnswerInformation,
    AssignMediator,
    ExtendDeadline,
    RequestInformation,
    Withdraw,
)
from tests.conftest import Stack
from tests.races import HANG, Gate, begin, outcome
from tests.workflows.test_dispute_paths import DECLARATION, in_mediation, offered
from workflows.dispute import DisputeWorkflow

MEDIATORS = ("kenji.sato", "sam.okafor", "greta.hoffmann")


def others(*taken: str) -> list[str]:
    return [m for m in MEDIATORS if m not in taken]


async def test_two_admins_reassigning_at_once_neither_is_told_a_pick_that_never_happened(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number = (await race.file()).number
    mediator = await in_mediation(race, number)
    first, second = others(mediator)[:2]
    gates["assign_mediator"].hold(lambda r: r.chosen_person_id == first)
    alex = await begin(
        race,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=race.actor("alex.admin"), person_id=first, reason="Workload"),
    )
    await gates["assign_mediator"].reached()
    ada = await begin(
        race,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=race.actor("ada.admin"), person_id=second, reason="Expertise"),
    )
    gates["assign_mediator"].release()
    alex_said, ada_said = await outcome(alex), await outcome(ada)
    await race.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    offered_to = [
        e.content["person_id"] for e in race.events(number) if e.action == "mediator_offered"
    ]
    state = await race.state(number)
    report = (
        f"alex told: {getattr(alex_said, 'message', alex_said)!r}; "
        f"ada told: {getattr(ada_said, 'message', ada_said)!r}; "
        f"offers in the trail: {offered_to}; candidate now: {state.candidate_mediator_id}"
    )
    # Each admin's answer must be true: an admin told 'offered to X' finds X offered.
    for said, person in ((alex_said, first), (ada_said, second)):
        if isinstance(said, ActionResult):
            assert person in offered_to[1:], report


async def test_an_acceptance_queued_before_a_reassignment_answers(
    race: Stack, gates: dict[str, Gate]
) -> None:
    """Admin extends the acceptance window (held); the candidate accepts; another admin
    reassigns. Every action must get an answer; the accepting mediator must not be told
    'mediation has begun' when they were released."""
    number = (await race.file()).number
    candidate = await offered(race, number)
    other = others(candidate)[0]
    gates["extend_deadline"].hold()
    extend = await begin(
        race,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(actor=race.actor("alex.admin"), business_days=2, reason="Holiday week"),
    )
    await gates["extend_deadline"].reached()
    accept = await begin(
        race,
        number,
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=race.actor(candidate), impartiality_declaration=DECLARATION),
    )
    reassign = await begin(
        race,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=race.actor("ada.admin"), person_id=other, reason="Workload"),
    )
    gates["extend_deadline"].release()
    extended, reassigned = await outcome(extend), await outcome(reassign)
    accepted = await outcome(accept, seconds=15)
    state = await race.state(number)
    report = (
        f"extend: {getattr(extended, 'message', extended)!r}; "
        f"reassign: {getattr(reassigned, 'message', reassigned)!r}; "
        f"accept: {getattr(accepted, 'message', accepted)!r}; stage {state.stage}, "
        f"mediator {state.mediator_id}, candidate {state.candidate_mediator_id}; "
        f"trail {race.actions(number)}"
    )
    assert accepted != HANG, report
    # The acceptance was recorded, then the queued reassignment released them: the answer says so
    # (it used to wait for mediation and then tell them it had begun, under someone else).
    assert isinstance(accepted, ActionResult), report
    assert accepted.message == "assignment accepted; an admin has since reassigned the dispute"
    assert state.mediator_id is None and state.candidate_mediator_id == other, report


async def test_an_acceptance_queued_before_a_withdrawal_is_not_told_mediation_began(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number = (await race.file()).number
    candidate = await offered(race, number)
    gates["extend_deadline"].hold()
    extend = await begin(
        race,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(actor=race.actor("alex.admin"), business_days=2, reason="Holiday week"),
    )
    await gates["extend_deadline"].reached()
    accept = await begin(
        race,
        number,
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=race.actor(candidate), impartiality_declaration=DECLARATION),
    )
    withdraw = await begin(
        race,
        number,
        DisputeWorkflow.withdraw,
        Withdraw(actor=race.actor("nora@northwind.example"), reason="We settled it ourselves."),
    )
    gates["extend_deadline"].release()
    await outcome(extend)
    withdrawn, accepted = await outcome(withdraw), await outcome(accept)
    result = await race.handle(number).result()
    report = (
        f"accept: {getattr(accepted, 'message', accepted)!r} (stage {getattr(accepted, 'stage', '-')}); "
        f"withdraw: {getattr(withdrawn, 'message', withdrawn)!r}; end {result.stage}"
    )
    assert result.stage is DisputeStage.WITHDRAWN, report
    if isinstance(accepted, ActionResult):
        assert "mediation has begun" not in accepted.message, report


async def test_an_extension_of_the_acceptance_window_racing_the_acceptance_does_not_move_mediation(
    race: Stack, gates: dict[str, Gate]
) -> None:
    """The admin extends the window in which the candidate must accept; the candidate accepts at
    that moment. The extension must not silently lengthen the mediation deadline instead."""
    number = (await race.file()).number
    candidate = await offered(race, number)
    gates["record_event"].hold(lambda r: r.action == "assignment_accepted")
    accept = await begin(
        race,
        number,
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=race.actor(candidate), impartiality_declaration=DECLARATION),
    )
    await gates["record_event"].reached()
    extend = await begin(
        race,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=race.actor("alex.admin"), business_days=5, reason="The candidate is travelling"
        ),
    )
    gates["record_event"].release()
    await outcome(accept)
    extended = await outcome(extend)
    purposes = [
        e.content["purpose"] for e in race.events(number) if e.action == "deadline_extended"
    ]
    report = f"extend answered {getattr(extended, 'message', extended)!r}; extended: {purposes}"
    assert "mediation" not in purposes, report


async def test_an_extension_of_the_party_deadline_racing_the_answer_does_not_move_mediation(
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
    gates["record_event"].hold(lambda r: r.action == "information_answered")
    answer = await begin(
        race,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=race.actor("nora@northwind.example"), request_id="info-1", answer="2 November."
        ),
    )
    await gates["record_event"].reached()
    extend = await begin(
        race,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=race.actor("alex.admin"), business_days=5, reason="Northwind asked for time"
        ),
    )
    gates["record_event"].release()
    await outcome(answer)
    extended = await outcome(extend)
    purposes = [
        e.content["purpose"] for e in race.events(number) if e.action == "deadline_extended"
    ]
    report = f"extend answered {getattr(extended, 'message', extended)!r}; extended: {purposes}"
    assert "mediation" not in purposes, report
