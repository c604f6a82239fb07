"""Every path of the mediation half of the lifecycle, driven through workflow updates."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError

from accord.audit import first_broken_link
from models.enums import DisputeStage, NoteVisibility, TaskKind, TaskState
from models.payloads import (
    AcceptAssignment,
    AddNote,
    AnswerInformation,
    CommissionSplit,
    DeclareImpasse,
    Dismiss,
    ProposeSettlement,
    RequestInformation,
    RespondToOffer,
    Withdraw,
)
from models.tables import Dispute, Precedent, Task
from tests.conftest import Stack
from workflows.dispute import DisputeWorkflow

DECLARATION = "I have no interest in either party or in the outcome of this dispute."


async def offered(stack: Stack, number: str) -> str:
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    assert state.candidate_mediator_id is not None
    return state.candidate_mediator_id


async def in_mediation(stack: Stack, number: str) -> str:
    mediator = await offered(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(mediator), impartiality_declaration=DECLARATION),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    return mediator


def split_offer(stack: Stack, mediator: str) -> ProposeSettlement:
    return ProposeSettlement(
        actor=stack.actor(mediator),
        remedies=(
            CommissionSplit(
                deal_ref="DR-2026-0042",
                shares={"northwind": Decimal(70), "contoso": Decimal(30)},
            ),
        ),
        terms="Northwind keeps the registration; Contoso receives 30% of the commission.",
    )


async def test_dispute_settles_in_mediation_and_becomes_a_precedent(stack: Stack) -> None:
    filed = await stack.file()
    number = filed.number
    assert number.startswith("DSP-") and not filed.linked and not filed.duplicate
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)

    await handle.execute_update(
        DisputeWorkflow.add_note,
        AddNote(actor=stack.actor(mediator), text="Both parties reachable; call set for Monday."),
    )
    offer = await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    assert offer.reference == "offer-1"
    first = await handle.execute_update(
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=stack.actor("nora@northwind.example"), offer_id="offer-1", accept=True),
    )
    assert "waiting for the other parties" in first.message
    await handle.execute_update(
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=stack.actor("carl@contoso.example"), offer_id="offer-1", accept=True),
    )
    outcome = await handle.result()
    assert outcome.stage is DisputeStage.CLOSED and outcome.outcome == "settled"

    with stack.sessions.read() as session:
        dispute = session.get(Dispute, number)
        assert dispute is not None
        assert dispute.stage is DisputeStage.CLOSED and dispute.outcome == "settled"
        precedent = session.exec(select(Precedent).where(Precedent.dispute_number == number)).one()
        assert precedent.remedies[0]["kind"] == "commission_split"
        assert precedent.claimant_tier.value == "platinum"
        open_tasks = session.exec(
            select(Task).where(Task.dispute_number == number, Task.state == TaskState.OPEN)
        ).all()
        assert open_tasks == []
    actions = stack.actions(number)
    assert actions[0] == "filed"
    assert {"assignment_accepted", "settlement_proposed", "offer_accepted", "settled", "closed"} <= set(actions)
    assert first_broken_link(stack.events(number)) is None
    subjects = stack.mail.subjects("nora@northwind.example")
    assert any("Your dispute has been filed" in s for s in subjects)
    assert any("Settlement offer offer-1" in s for s in subjects)
    assert any("Settled" in s for s in subjects)
    assert any("A dispute has been filed naming" in s for s in stack.mail.subjects("carl@contoso.example"))
