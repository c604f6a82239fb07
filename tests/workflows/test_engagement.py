"""The rules of engagement in a dispute's lifecycle (issue 20, item 4): what the decision tables
recommend is attached at triage and again for the panel's case file, with the facts it rests on,
and a settlement or ruling that departs from it goes ahead only with a reason, recorded."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from accord.channel.imports import import_file
from models.enums import ChannelKind, DisputeStage, ImportFormat, VoteOutcome
from models.payloads import ProposeSettlement, WrittenWarning
from tests.conftest import Stack
from tests.web_harness import make_app, signed_in
from tests.workflows.test_citations import all_vote
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from tests.workflows.test_formal_review import in_review, refused, ruling
from workflows.dispute import DisputeWorkflow

pytestmark = pytest.mark.live_checked

HEADER = (
    "external_id,partner_id,customer_name,customer_domain,country,status,registered_at,modified_at"
)
REASON = "The customer's procurement letter names Contoso, which the tables cannot see here."


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def northwind_registered_first(stack: Stack) -> None:
    """Northwind registered Acme thirty days ago (the filing's DR-2026-0042), Contoso twenty."""
    rows = [
        f"DR-2026-0042,northwind,Acme Corp,acme.com,US,approved,{_day(30)},{_day(30)}T10:00:00Z",
        f"DR-2026-0077,contoso,ACME Corporation,,US,submitted,{_day(20)},{_day(20)}T10:00:00Z",
    ]
    import_file(
        stack.sessions,
        kind=ChannelKind.REGISTRATION,
        fmt=ImportFormat.CSV,
        file_name="registrations.csv",
        data="\n".join((HEADER, *rows)).encode() + b"\n",
        started_by="ada.admin",
    )


async def test_triage_attaches_the_recommendation_and_a_settlement_departing_needs_a_reason(
    stack: Stack,
) -> None:
    northwind_registered_first(stack)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.recommendation is not None)
    found = state.recommendation
    assert found is not None and found.purpose == "triage" and found.playbook_version == "2026.2"
    assert found.outcome is VoteOutcome.UPHOLD
    assert [r.value for r in found.remedies] == ["commission_split"]
    assert found.clause is not None and found.clause.startswith("RoE 3.1")
    assert found.facts.first_registrant == "claimant" and found.facts.within_protection
    assert any("DR-2026-0077 of ACME Corporation by contoso" in e for e in found.facts.evidence)
    entry = await stack.wait_for_event(number, "recommendation")
    assert entry.content["findings"][-1]["applies"] is True
    (said,) = [h.summary for h in state.history if h.action == "recommendation"]
    assert said == (
        "the rules of engagement recommend uphold with commission_split (RoE 3.1, triage)"
    )

    mediator = await in_mediation(stack, number)
    warning_only = ProposeSettlement(
        actor=stack.actor(mediator),
        remedies=(WrittenWarning(partner_id="contoso", text="Register before you sell."),),
        terms="Contoso is warned; no commission moves.",
    )
    problem = await refused(stack, number, DisputeWorkflow.propose_settlement, warning_only)
    assert "departure_reason: this departs from what the rules of engagement recommend" in problem
    assert "recommend commission split (RoE 3.1), this leaves out commission split" in problem
    assert "settlement_proposed" not in stack.actions(number)
    # A reason of no substance is no reason.
    problem = await refused(
        stack,
        number,
        DisputeWorkflow.propose_settlement,
        warning_only.model_copy(update={"departure_reason": "...................."}),
    )
    assert "departure_reason:" in problem
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement,
        warning_only.model_copy(update={"departure_reason": REASON}),
    )
    proposed = await stack.wait_for_event(number, "settlement_proposed")
    assert proposed.content["departure_reason"] == REASON
    assert proposed.content["departures"][0].startswith("remedies: the rules of engagement")
    # The split the tables recommend needs no reason.
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    second = await stack.wait_for_event(number, "settlement_proposed", count=2)
    assert "departures" not in second.content


async def test_the_panel_s_case_file_has_the_recommendation_and_a_ruling_against_it_says_why(
    stack: Stack,
) -> None:
    northwind_registered_first(stack)
    number = await in_review(stack)
    state = await stack.wait_for(
        number,
        lambda s: s.recommendation is not None and s.recommendation.purpose == "review-1",
    )
    assert state.recommendation is not None and state.recommendation.outcome is VoteOutcome.UPHOLD
    await all_vote(stack, number, VoteOutcome.DENY)
    denial = ruling(stack, VoteOutcome.DENY)
    problem = await refused(stack, number, DisputeWorkflow.issue_ruling, denial)
    assert (
        "departure_reason: this departs from what the rules of engagement recommend — outcome: "
        "the rules of engagement recommend uphold (RoE 3.1), this is deny"
    ) in problem
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling, denial.model_copy(update={"departure_reason": REASON})
    )
    issued = await stack.wait_for_event(number, "ruling_issued")
    assert issued.content["departure_reason"] == REASON
    assert issued.content["departures"] == [
        "outcome: the rules of engagement recommend uphold (RoE 3.1), this is deny"
    ]
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)


async def test_without_channel_data_nothing_is_recommended_and_nothing_needs_a_reason(
    stack: Stack,
) -> None:
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.recommendation is not None)
    assert state.recommendation is not None and state.recommendation.outcome is None
    await stack.wait_for_event(number, "recommendation")
    (said,) = [h.summary for h in state.history if h.action == "recommendation"]
    assert said == "no rule of engagement applies to the facts known (triage)"
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement,
        ProposeSettlement(
            actor=stack.actor(mediator),
            remedies=(WrittenWarning(partner_id="contoso", text="Register before you sell."),),
            terms="Contoso is warned.",
        ),
    )
    proposed = await stack.wait_for_event(number, "settlement_proposed")
    assert "departures" not in proposed.content


async def test_the_mediator_sees_the_recommendation_clause_by_clause_and_the_parties_do_not(
    stack: Stack,
) -> None:
    northwind_registered_first(stack)
    app = make_app(stack)
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.wait_for(number, lambda s: s.recommendation is not None)
    desk = await signed_in(app, f"{mediator}@vendor.example")
    page = (await desk.get(f"/disputes/{number}")).text
    assert "What the rules of engagement recommend" in page
    assert "<strong>upheld</strong> with commission split, under RoE 3.1" in page
    assert "RoE 3.4 A named account is carved out" in page  # every clause, applying or not
    assert "registration DR-2026-0077 of ACME Corporation by contoso (respondent)" in page
    assert "Why this departs from the rules&#39; recommendation" in page

    form = {
        "terms": "Contoso is warned; no commission moves.",
        "remedy-0-kind": "written_warning",
        "remedy-0-partner_id": "contoso",
        "remedy-0-text": "Register before you sell.",
    }
    refused_page = await desk.post(f"/disputes/{number}/actions/propose-settlement", form)
    assert refused_page.status_code == 409
    assert "this leaves out commission split" in refused_page.text
    done = await desk.post(
        f"/disputes/{number}/actions/propose-settlement", {**form, "departure_reason": REASON}
    )
    assert done.status_code == 303, done.text
    assert (await stack.wait_for_event(number, "settlement_proposed")).content[
        "departure_reason"
    ] == REASON

    # The parties see neither the recommendation nor the channel data it read, anywhere.
    partner = await signed_in(app, "carl@contoso.example")
    for path in (f"/disputes/{number}", f"/disputes/{number}/timeline", f"/api/disputes/{number}"):
        shown = (await partner.get(path)).text
        assert "rules of engagement recommend uphold" not in shown
        assert "first valid registration" not in shown and "RoE 3.4" not in shown
    for browser in (desk, partner):
        await browser.close()
