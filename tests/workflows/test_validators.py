"""Each invalid action is refused by its validator with a clear message, and nothing is recorded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from models.enums import DisputeStage
from models.payloads import (
    AcceptAssignment,
    AddNote,
    AnswerInformation,
    AssignMediator,
    DeclareImpasse,
    Dismiss,
    ExtendDeadline,
    MdfCredit,
    ProposeSettlement,
    Recuse,
    RequestInformation,
    RespondToOffer,
    TerritoryReassignment,
    Withdraw,
)
from tests.conftest import Stack
from tests.workflows.test_dispute_paths import DECLARATION, in_mediation, offered, split_offer
from workflows.dispute import DisputeWorkflow


async def refused(stack: Stack, number: str, update: Any, payload: Any) -> str:
    # Let the workflow finish writing what it is writing, so the count below is settled.
    await stack.wait_for(number, lambda s: len(s.history) == len(stack.events(number)))
    before = (len(stack.events(number)), len((await stack.state(number)).history))
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await stack.handle(number).execute_update(update, payload)
    after = (len(stack.events(number)), len((await stack.state(number)).history))
    assert after == before, "a refused action must record nothing"
    return str(failure.value.cause)


async def test_actions_in_triage_are_checked_against_role_person_and_stage(stack: Stack) -> None:
    number = (await stack.file()).number
    candidate = await offered(stack, number)
    other_mediator = "sam.okafor" if candidate != "sam.okafor" else "kenji.sato"

    msg = await refused(
        stack,
        number,
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(other_mediator), impartiality_declaration=DECLARATION),
    )
    assert f"{other_mediator} has not been offered {number}" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(
            actor=stack.actor("nora@northwind.example"), impartiality_declaration=DECLARATION
        ),
    )
    assert "accept_assignment in stage triage is for mediator, not partner" in msg
    msg = await refused(
        stack, number, DisputeWorkflow.propose_settlement, split_offer(stack, candidate)
    )
    assert "propose_settlement is not possible while the dispute is triage" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.dismiss,
        Dismiss(actor=stack.actor(candidate), reason="no merit at all"),
    )
    assert "dismiss is not possible while the dispute is triage" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("carl@contoso.example"), reason="we want out"),
    )
    assert "only the claimant may withdraw" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("fay@fabrikam.example"), reason="not ours"),
    )
    assert "does not act for a party" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor(other_mediator), reason="not me"),
    )
    assert "is not the mediator assigned" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor("carol.compliance"), person_id="sam.okafor", reason="try"),
    )
    assert "assign_mediator in stage triage is for admin, not compliance" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor("alex.admin"), person_id=candidate, reason="again"),
    )
    assert "is already assigned" in msg


async def test_actions_in_mediation_are_checked(stack: Stack) -> None:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    me = stack.actor(mediator)

    msg = await refused(
        stack,
        number,
        DisputeWorkflow.propose_settlement,
        ProposeSettlement(
            actor=me,
            terms="Move the territory.",
            remedies=(
                TerritoryReassignment(
                    territory_code="US-NY-METRO",
                    from_partner_id="northwind",
                    to_partner_id="contoso",
                    effective_on=date(2027, 1, 1),
                ),
            ),
        ),
    )
    assert (
        "remedies[0]: territory_reassignment is not allowed for deal_registration disputes" in msg
    )
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.propose_settlement,
        ProposeSettlement(
            actor=me,
            terms="Pay an outsider.",
            remedies=(MdfCredit(partner_id="fabrikam", amount=Decimal(1000), currency="USD"),),
        ),
    )
    assert "remedies[0]" in msg  # mdf_credit is not allowed here either
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(
            actor=stack.actor("nora@northwind.example"), offer_id="offer-9", accept=True
        ),
    )
    assert "offer_id: offer-9 is not an open settlement offer" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.request_information,
        RequestInformation(actor=me, party_id="fabrikam", questions="Anything?"),
    )
    assert "party_id: fabrikam is not a party" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=stack.actor("carl@contoso.example"), request_id="info-1", answer="x"
        ),
    )
    assert "answer_information is not possible while the dispute is mediation" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.add_note,
        AddNote(actor=me, text="hi", visibility="caucus", caucus_partner_id="fabrikam"),
    )
    assert "caucus_partner_id: fabrikam is not a party" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(actor=me, business_days=3, reason="need time"),
    )
    assert "extend_deadline in stage mediation is for admin, not mediator" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(
            actor=stack.actor("kenji.sato" if mediator != "kenji.sato" else "sam.okafor"),
            reason="stuck fast",
        ),
    )
    assert "is not the mediator assigned" in msg

    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    nora = stack.actor("nora@northwind.example")
    await stack.handle(number).execute_update(
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=nora, offer_id="offer-1", accept=True),
    )
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.respond_to_offer,
        RespondToOffer(actor=nora, offer_id="offer-1", accept=False),
    )
    assert "northwind has already answered offer-1" in msg

    asked = await stack.handle(number).execute_update(
        DisputeWorkflow.request_information,
        RequestInformation(actor=me, party_id="contoso", questions="Proof of first contact?"),
    )
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.answer_information,
        AnswerInformation(
            actor=nora, request_id=asked.reference or "", answer="not ours to answer"
        ),
    )
    assert "was sent to contoso" in msg
    msg = await refused(
        stack,
        number,
        DisputeWorkflow.request_information,
        RequestInformation(actor=me, party_id="northwind", questions="And you?"),
    )
    assert "request_information is not possible while the dispute is awaiting_party" in msg


async def test_admin_extends_the_mediation_deadline_with_a_reason(stack: Stack) -> None:
    number = (await stack.file()).number
    await in_mediation(stack, number)
    before = (await stack.state(number)).deadlines[0]
    result = await stack.handle(number).execute_update(
        DisputeWorkflow.extend_deadline,
        ExtendDeadline(
            actor=stack.actor("alex.admin"), business_days=3, reason="Contoso's CFO is on leave"
        ),
    )
    after = (await stack.state(number)).deadlines[0]
    assert "mediation deadline now" in result.message
    assert after.due_at > before.due_at and after.business_days == before.business_days + 3
    assert (
        "extended by 3 business days" in after.explanation
        and "CFO is on leave" in after.explanation
    )
    event = stack.events(number)[-1]
    assert event.action == "deadline_extended" and event.actor_id == "alex.admin"


async def test_actions_on_a_closed_dispute_are_refused(stack: Stack) -> None:
    number = (await stack.file()).number
    await offered(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("nora@northwind.example"), reason="settled privately"),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.WITHDRAWN)
    assert all(not actions for actions in state.allowed_actions.values())
    # The workflow has completed: the server itself refuses further updates.
    with pytest.raises(Exception, match=r"(?i)completed|not found"):
        await stack.handle(number).execute_update(
            DisputeWorkflow.withdraw,
            Withdraw(actor=stack.actor("nora@northwind.example"), reason="again please"),
        )
