"""The remedy stage after a settlement: applied once and verified, or resolved by an admin."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError

from models.enums import DisputeStage, RemedyState, TaskKind
from models.payloads import RespondToOffer, RetryRemedy, WaiveRemedy
from models.tables import LedgerCommissionSplit, Precedent, RemedyApplication
from tests.conftest import Stack
from tests.webhook_receiver import Receiver
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from workflows.dispute import DisputeWorkflow

pytestmark = pytest.mark.live_checked
"""Each state these paths wait for is checked in the read model the pages read (accord.disputes.live)."""


async def settle(stack: Stack) -> str:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    for contact in ("nora@northwind.example", "carl@contoso.example"):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(contact), offer_id="offer-1", accept=True),
        )
    return number


async def test_settled_remedies_are_applied_through_the_ledger_then_the_dispute_closes(
    stack: Stack,
) -> None:
    number = await settle(stack)
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.CLOSED
    actions = stack.actions(number)
    assert (
        actions.index("settled") < actions.index("stage_remedy") < actions.index("remedy_applied")
    )
    assert actions.index("remedy_applied") < actions.index("closed")
    with stack.sessions.read() as session:
        row = session.get(RemedyApplication, f"{number}:settlement:0")
        assert row is not None and row.state is RemedyState.VERIFIED and row.adapter == "ledger"
        assert len(session.exec(select(LedgerCommissionSplit)).all()) == 1
    await stack.mail_settled()
    # On its own, or merged with the settlement and the closure ("Settled, remedy applied...").
    subjects = stack.mail.subjects("nora@northwind.example")
    assert any("remedy applied" in s.lower() for s in subjects), subjects
    state = await stack.state(number)
    assert [r.state for r in state.remedies] == ["verified"]


async def test_settled_remedy_applied_and_closed_reach_each_party_as_one_email(
    stack: Stack,
) -> None:
    outbox = stack.services.outbox
    # However slowly this machine runs the three steps, they fall in one window: the worker's
    # relay holds them, and this test sends them as the relay would once the window is over.
    outbox.policy = replace(outbox.policy, coalesce=timedelta(minutes=10))
    number = await settle(stack)
    await stack.handle(number).result()
    later = datetime.now(UTC) + timedelta(minutes=11)
    while (claim := await asyncio.to_thread(outbox.claim, later)) is not None:
        await outbox.send(claim)
    await stack.mail_settled()
    for party in ("nora@northwind.example", "carl@contoso.example"):
        outcome = [
            m
            for m in stack.mail.to(party)
            if any(w in str(m["Subject"]).lower() for w in ("settled", "remedy", "closed"))
        ]
        [merged] = outcome
        assert str(merged["Subject"]) == f"[{number}] Settled, remedy applied and closed"
        body = merged.get_body(preferencelist=("plain",))
        assert body is not None
        text = str(body.get_content())
        assert text.count("* * *") == 2 and text.count("Open it:") == 1
        assert f"Remedy 1 of {number} is applied" in text


async def test_a_refused_remedy_becomes_an_admin_task_and_can_be_waived(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    assert state.stage is DisputeStage.REMEDY
    assert state.remedies[0].state == "failed" and "answered 422" in (state.remedies[0].error or "")
    await stack.mail.wait_for("channel-admins@vendor.example", "could not be applied")
    handle = stack.handle(number)

    for payload, expected in [
        (
            WaiveRemedy(actor=stack.actor("greta.hoffmann"), position=0, reason="not needed"),
            "waive_remedy in stage remedy is for admin, not mediator",
        ),
        (
            WaiveRemedy(actor=stack.actor("alex.admin"), position=3, reason="not needed"),
            "position: remedy 1 is waiting for an admin, not remedy 4",
        ),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DisputeWorkflow.waive_remedy, payload)
        assert expected in str(refused.value.cause)

    await handle.execute_update(
        DisputeWorkflow.waive_remedy,
        WaiveRemedy(
            actor=stack.actor("alex.admin"),
            position=0,
            reason="Commission paid by hand in the December run",
        ),
    )
    outcome = await handle.result()
    assert outcome.stage is DisputeStage.CLOSED
    with stack.sessions.read() as session:
        row = session.get(RemedyApplication, f"{number}:settlement:0")
        assert row is not None and row.state is RemedyState.WAIVED
        assert "December run" in (row.waived_reason or "")
    assert "remedy_waived" in stack.actions(number)
    assert receiver.applications == {}


async def test_a_remedy_that_keeps_failing_is_retried_by_an_admin_and_applied_once(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    stack = webhook_stack
    receiver.fail_next = 100  # the CRM is down
    number = await settle(stack)
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.REMEDY)
    # Skip through the activity's backoff until its attempts are spent.
    for _ in range(10):
        await stack.env.sleep(timedelta(minutes=5))
        state = await stack.state(number)
        if any(t.kind is TaskKind.RESOLVE_REMEDY for t in state.open_tasks):
            break
    assert any(t.kind is TaskKind.RESOLVE_REMEDY for t in state.open_tasks)
    key = f"{number}:settlement:0"
    assert receiver.requests[key] == 5 and receiver.applications[key] == 0

    receiver.fail_next = 0  # fixed
    await stack.handle(number).execute_update(
        DisputeWorkflow.retry_remedy,
        RetryRemedy(actor=stack.actor("alex.admin"), position=0, reason="CRM is back"),
    )
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.CLOSED
    assert receiver.applications[key] == 1
    with stack.sessions.read() as session:
        row = session.get(RemedyApplication, key)
        assert row is not None and row.state is RemedyState.VERIFIED and row.external_ref == "CRM-1"


async def test_the_remedy_deadline_escalates_to_the_admins_and_stops_nothing(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    due = next(d for d in state.deadlines if d.purpose == "remedy").due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(hours=1))
    event = await stack.wait_for_event(number, "remedy_overdue")
    assert event.content["remedies"][0]["state"] == "failed"
    # The admins are told what is overdue and how to resolve it, not to assign a mediator.
    overdue = await stack.mail.wait_for("channel-admins@vendor.example", "remedy deadline")
    body = overdue.get_body(preferencelist=("plain",))
    assert body is not None
    told = str(body.get_content())
    assert f"accord retry-remedy {number}" in told and f"accord waive-remedy {number}" in told
    assert "mediator" not in told.split("--")[0]
    state = await stack.state(number)
    assert state.stage is DisputeStage.REMEDY
    assert [t.key.rsplit(":", 1)[1] for t in state.open_tasks] == ["remedy-0", "remedy-overdue"]
    await stack.handle(number).execute_update(
        DisputeWorkflow.waive_remedy,
        WaiveRemedy(
            actor=stack.actor("alex.admin"), position=0, reason="Settled off-system by finance"
        ),
    )
    assert (await stack.handle(number).result()).stage is DisputeStage.CLOSED
    with stack.sessions.read() as session:
        precedent = session.exec(select(Precedent).where(Precedent.dispute_number == number)).one()
    assert {"deadline": "remedy", "result": "breached"} in precedent.timeline


async def test_an_appeal_after_the_window_is_refused_by_rule(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    from models.enums import VoteOutcome
    from models.payloads import Appeal, EvidenceRef
    from tests.workflows.test_formal_review import in_review, open_ballot, ruling, vote

    stack = webhook_stack
    receiver.refuse_with = 422  # the remedy stage waits on an admin, so the dispute stays open
    number = await in_review(stack)
    for who in ("board.sales", "board.marketing", "board.product"):
        await vote(stack, number, who, VoteOutcome.UPHOLD)
    await open_ballot(stack, number)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    due = (await stack.state(number)).deadlines[0].due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(hours=1))
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    await stack.wait_for(number, lambda s: len(s.history) == len(stack.events(number)))
    before = len(stack.events(number))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await stack.handle(number).execute_update(
            DisputeWorkflow.appeal,
            Appeal(
                actor=stack.actor("carl@contoso.example"),
                grounds="We found the original registration email after all.",
                new_evidence=(EvidenceRef(description="Email", ref="MAIL-1"),),
            ),
        )
    assert "appeal is not possible while the dispute is remedy (possible in: appeal_window)" in str(
        refused.value.cause
    )
    assert len(stack.events(number)) == before


async def test_a_remedy_that_was_applied_after_all_cannot_be_waived(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    # The CRM applied it after all (its late answer reached the ledger row).
    key = f"{number}:settlement:0"
    with stack.sessions.begin() as session:
        row = session.get(RemedyApplication, key)
        assert row is not None
        row.state = RemedyState.APPLIED
        row.external_ref = "CRM-77"
        session.add(row)
    await stack.recorded(number)
    before = stack.actions(number)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await stack.handle(number).execute_update(
            DisputeWorkflow.waive_remedy,
            WaiveRemedy(actor=stack.actor("alex.admin"), position=0, reason="Paid by hand"),
        )
    assert getattr(refused.value.cause, "message", "") == (
        "position: remedy 1 was applied through the connected partner system (reference CRM-77); "
        "it cannot be waived. Retry it to verify it"
    )
    assert stack.actions(number) == before
    with stack.sessions.read() as session:
        row = session.get(RemedyApplication, key)
        assert row is not None and row.state is RemedyState.APPLIED and row.waived_reason is None
    state = await stack.state(number)
    assert state.remedies[0].state == "failed"
    assert any(t.kind is TaskKind.RESOLVE_REMEDY for t in state.open_tasks)
