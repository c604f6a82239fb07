"""Adversarial probes: people whose role on the dispute ended try every action they once had."""

from __future__ import annotations

from datetime import timedelta

from accord.directory.records import Directory, PersonRecord
from models.enums import Role, VoteOutcome
from models.payloads import (
    AcceptAssignment,
    AddNote,
    AssignMediator,
    CastVote,
    DeclareImpasse,
    Dismiss,
    Recuse,
    RequestInformation,
    UnsealBallot,
)
from tests.conftest import Stack, seed
from tests.races import try_update
from tests.workflows.test_dispute_paths import DECLARATION, offered, split_offer
from tests.workflows.test_formal_review import PANEL, REASONS, in_review, ruling, vote
from workflows.dispute import DisputeWorkflow


def mediator_attempts(stack: Stack, who: str) -> dict[str, tuple[object, object]]:
    a = stack.actor(who)
    return {
        "accept": (
            DisputeWorkflow.accept_assignment,
            AcceptAssignment(actor=a, impartiality_declaration=DECLARATION),
        ),
        "recuse": (DisputeWorkflow.recuse, Recuse(actor=a, reason="Stepping down from it.")),
        "note": (DisputeWorkflow.add_note, AddNote(actor=a, text="A note from the past.")),
        "info": (
            DisputeWorkflow.request_information,
            RequestInformation(actor=a, party_id="contoso", questions="Anything?"),
        ),
        "offer": (DisputeWorkflow.propose_settlement, split_offer(stack, who)),
        "impasse": (
            DisputeWorkflow.declare_impasse,
            DeclareImpasse(actor=a, reason="No movement at all."),
        ),
        "dismiss": (
            DisputeWorkflow.dismiss,
            Dismiss(actor=a, reason="Out of scope entirely, dismissed."),
        ),
    }


async def test_a_candidate_whose_offer_expired_tries_everything(race: Stack) -> None:
    stack = race
    number = (await stack.file()).number
    expired = await offered(stack, number)
    due = (await stack.state(number)).deadlines[0].due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(minutes=1))
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id not in (None, expired))
    await stack.recorded(number)
    before = len(stack.events(number))
    results = {
        k: await try_update(stack, number, u, p)
        for k, (u, p) in mediator_attempts(stack, expired).items()
    }
    results["admin assigns them back"] = await try_update(
        stack,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor("alex.admin"), person_id=expired, reason="They are back"),
    )
    accepted = {k: v for k, v in results.items() if not str(v).startswith("REFUSED")}
    assert accepted == {} and len(stack.events(number)) == before, (
        accepted,
        state.candidate_mediator_id,
    )


async def test_a_recused_panelist_tries_everything(race: Stack) -> None:
    stack = race
    number = await in_review(stack)
    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id="alt.sales",
                    name="Alt Sales",
                    email="alt.sales@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="sales",
                )
            ]
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.sales"), reason="I manage the Northwind relationship."),
    )
    for who in PANEL[1:4]:
        await vote(stack, number, who)
    await stack.recorded(number)
    before = len(stack.events(number))
    a = stack.actor("board.sales")
    results = {
        "vote": await try_update(
            stack,
            number,
            DisputeWorkflow.cast_vote,
            CastVote(actor=a, outcome=VoteOutcome.DENY, reasons=REASONS),
        ),
        "recuse": await try_update(
            stack, number, DisputeWorkflow.recuse, Recuse(actor=a, reason="Again, stepping down.")
        ),
        "unseal": await try_update(
            stack,
            number,
            DisputeWorkflow.unseal_ballot,
            UnsealBallot(actor=a, reason="Let us get on with it."),
        ),
        "rule": await try_update(
            stack,
            number,
            DisputeWorkflow.issue_ruling,
            ruling(stack, chair="board.sales", relied=("board.marketing",)),
        ),
        "dismiss": await try_update(
            stack,
            number,
            DisputeWorkflow.dismiss,
            Dismiss(actor=a, reason="The claim is outside the programme's rules entirely."),
        ),
    }
    accepted = {k: v for k, v in results.items() if not str(v).startswith("REFUSED")}
    assert accepted == {} and len(stack.events(number)) == before, accepted


async def test_a_recused_chair_tries_everything(race: Stack) -> None:
    stack = race
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.chair"), reason="I sat on Contoso's advisory board."),
    )
    await stack.recorded(number)
    before = len(stack.events(number))
    a = stack.actor("board.chair")
    results = {
        "unseal": await try_update(
            stack,
            number,
            DisputeWorkflow.unseal_ballot,
            UnsealBallot(actor=a, reason="Let us get on with it."),
        ),
        "rule": await try_update(stack, number, DisputeWorkflow.issue_ruling, ruling(stack)),
        "dismiss": await try_update(
            stack,
            number,
            DisputeWorkflow.dismiss,
            Dismiss(actor=a, reason="The claim is outside the programme's rules entirely."),
        ),
        "recuse": await try_update(
            stack, number, DisputeWorkflow.recuse, Recuse(actor=a, reason="Again, stepping down.")
        ),
    }
    accepted = {k: v for k, v in results.items() if not str(v).startswith("REFUSED")}
    assert accepted == {} and len(stack.events(number)) == before, accepted
