"""Similar precedents (attached at triage and to the panel's case file) and the consistency check
that makes a diverging settlement or ruling wait for an acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import select

from accord.platform.db import SessionFactory, make_engine
from accord.precedents.similarity import find_similar
from accord.rules.consistency import clause_key, divergences
from models.enums import DisputeCategory, DisputeStage, RemedyKind, VoteOutcome
from models.payloads import (
    CommissionSplit,
    MdfCredit,
    ProposeSettlement,
    RemedyFigure,
    SimilarPrecedent,
    SimilarRequest,
)
from models.tables import DisputeEvent
from tests.conftest import Stack, seed
from tests.precedent_rows import add_precedent
from tests.web_harness import make_app, signed_in
from tests.workflows.test_dispute_paths import in_mediation
from tests.workflows.test_formal_review import in_review, open_ballot, refused, ruling, vote
from workflows.dispute import DisputeWorkflow

CLAUSE = "RoE 3.1 First valid registration wins; overlapping registrations split by contribution"


def split(claimant_share: int) -> dict[str, object]:
    return CommissionSplit(
        deal_ref="DR-1",
        shares={"northwind": Decimal(claimant_share), "contoso": Decimal(100 - claimant_share)},
    ).model_dump(mode="json")


def past_registration_cases(sessions: SessionFactory) -> None:
    """Three upheld registration disputes, each splitting the commission about 60/40; and one
    unrelated pricing case that must not count."""
    with sessions.begin() as session:
        for i, share in enumerate((60, 55, 65)):
            add_precedent(
                session,
                f"DSP-2025-00010{i}",
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome="upheld",
                facts="Northwind registered the Acme opportunity first; Contoso registered the "
                "same opportunity a week later and closed the deal.",
                rationale="The first valid registration wins; the later registrant keeps a share.",
                clauses=(CLAUSE,),
                remedies=(split(share),),
                amount=Decimal(90_000 + i * 15_000),
                decided_at=datetime.now(UTC) - timedelta(days=30 + i),
            )
        add_precedent(
            session,
            "DSP-2025-000200",
            category=DisputeCategory.PRICING,
            outcome="denied",
            facts="Discounting below the gold tier price list on a healthcare renewal.",
            rationale="The price list was followed.",
            clauses=("RoE 5.1",),
        )


def match(number: str, outcome: str, *figures: RemedyFigure) -> SimilarPrecedent:
    return SimilarPrecedent(
        precedent_id=1,
        dispute_number=number,
        score=0.8,
        reasons=(),
        category=DisputeCategory.DEAL_REGISTRATION,
        clauses=("RoE 3.1",),
        outcome=outcome,
        remedies=figures,
        amount_at_stake=Decimal(1000),
        decided_at=datetime.now(UTC),
    )


def share(percent: int) -> RemedyFigure:
    return RemedyFigure(
        kind=RemedyKind.COMMISSION_SPLIT, magnitude=Decimal(percent), unit="percent"
    )


def test_divergence_rules() -> None:
    pool = [match("A", "upheld", share(60)), match("B", "upheld", share(50))]
    check = {
        "category": DisputeCategory.DEAL_REGISTRATION,
        "clauses": (CLAUSE,),
        "claimant_id": "northwind",
    }
    in_range = CommissionSplit(
        deal_ref="D", shares={"northwind": Decimal(70), "contoso": Decimal(30)}
    )
    assert divergences(pool, outcome="upheld", remedies=(in_range,), **check) == ()  # type: ignore[arg-type]

    far = CommissionSplit(deal_ref="D", shares={"northwind": Decimal(95), "contoso": Decimal(5)})
    (problem,) = divergences(pool, outcome=None, remedies=(far,), **check)  # type: ignore[arg-type]
    assert (
        "commission split of 95 percent is well outside the 50 to 60 percent used before (A, B)"
        in problem
    )

    (problem,) = divergences(pool, outcome="deny", remedies=(), **check)  # type: ignore[arg-type]
    assert problem.startswith("outcome: 2 of 2 comparable rulings were upheld (A, B)")

    credit = MdfCredit(partner_id="northwind", amount=Decimal(5000), currency="USD")
    (problem,) = divergences(pool, outcome=None, remedies=(credit,), **check)  # type: ignore[arg-type]
    assert "mdf credit was used in none of the 2 comparable precedents" in problem

    # One precedent is no pattern; another clause or category is not comparable.
    assert divergences(pool[:1], outcome="deny", remedies=(far,), **check) == ()  # type: ignore[arg-type]
    other = {**check, "clauses": ("RoE 4.2",)}
    assert divergences(pool, outcome="deny", remedies=(far,), **other) == ()  # type: ignore[arg-type]
    assert clause_key(CLAUSE) == clause_key("RoE 3.1") == "roe 3.1"


def test_similar_precedents_score_and_explain_on_both_backends(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    past_registration_cases(sessions)
    request = SimilarRequest(
        number="DSP-2026-000999",
        purpose="triage",
        category=DisputeCategory.DEAL_REGISTRATION,
        clauses=(CLAUSE,),
        text="Contoso registered our Acme opportunity after we did; the registration was ours.",
        amount_at_stake=Decimal(125_000),
        currency="USD",
    )
    with sessions.read() as session:
        found = find_similar(session, request)
    numbers = [m.dispute_number for m in found.matches]
    assert set(numbers) == {"DSP-2025-000100", "DSP-2025-000101", "DSP-2025-000102"}
    # The pricing case names Contoso too, so the text index offers it; it scores too low to show.
    assert found.considered == 4
    best = found.matches[0]
    assert 0.7 < best.score <= 1
    assert best.reasons[0].startswith("same clause: RoE 3.1")
    assert "same category: deal registration" in best.reasons
    assert any(r.startswith("shared terms: ") and "opportunity" in r for r in best.reasons)
    assert any(r.startswith("similar amount: ") for r in best.reasons)
    assert {f.magnitude for m in found.matches for f in m.remedies} == {60, 55, 65}
    # The closest amount ranks first among otherwise equal cases.
    assert best.dispute_number == "DSP-2025-000102"


async def test_diverging_settlement_needs_an_acknowledgement_that_is_recorded(
    stack: Stack,
) -> None:
    past_registration_cases(stack.sessions)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.similar is not None)
    assert state.similar is not None and state.similar.purpose == "triage"
    assert len(state.similar.matches) == 3
    attached = await stack.wait_for_event(number, "similar_precedents")
    assert [m["dispute_number"] for m in attached.content["matches"]] == [
        m.dispute_number for m in state.similar.matches
    ]
    (entry,) = [h for h in state.history if h.action == "similar_precedents"]
    assert entry.summary.startswith("3 similar precedents attached for triage: DSP-2025-")

    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    lopsided = ProposeSettlement(
        actor=stack.actor(mediator),
        remedies=(
            CommissionSplit(
                deal_ref="DR-2026-0042",
                shares={"northwind": Decimal(100 - 4), "contoso": Decimal(4)},
            ),
        ),
        terms="Northwind keeps nearly all of the commission.",
    )
    problem = await refused(stack, number, DisputeWorkflow.propose_settlement, lopsided)
    assert "divergence_acknowledgement: this diverges from the precedents" in problem
    assert "96 percent is well outside the 55 to 65 percent used before" in problem
    assert "settlement_proposed" not in stack.actions(number)
    too_short = lopsided.model_copy(update={"divergence_acknowledgement": "ok"})
    assert "divergence_acknowledgement" in await refused(
        stack, number, DisputeWorkflow.propose_settlement, too_short
    )

    reason = "Contoso did none of the discovery work here, unlike in the earlier cases."
    await handle.execute_update(
        DisputeWorkflow.propose_settlement,
        lopsided.model_copy(update={"divergence_acknowledgement": reason}),
    )
    proposed = await stack.wait_for_event(number, "settlement_proposed")
    assert proposed.content["divergence_acknowledgement"] == reason
    assert "96 percent" in proposed.content["divergences"][0]

    usual = lopsided.model_copy(
        update={
            "remedies": (
                CommissionSplit(
                    deal_ref="DR-2026-0042",
                    shares={"northwind": Decimal(60), "contoso": Decimal(40)},
                ),
            )
        }
    )
    await handle.execute_update(DisputeWorkflow.propose_settlement, usual)
    second = await stack.wait_for_event(number, "settlement_proposed", count=2)
    assert "divergences" not in second.content


async def test_panel_case_file_and_a_ruling_against_precedent(stack: Stack) -> None:
    past_registration_cases(stack.sessions)
    number = await in_review(stack)
    state = await stack.wait_for(
        number, lambda s: s.similar is not None and s.similar.purpose == "review-1"
    )
    assert state.similar is not None and len(state.similar.matches) == 3
    for member in ("board.sales", "board.marketing", "board.product"):
        await vote(stack, number, member, VoteOutcome.DENY)
    await open_ballot(stack, number)
    deny = ruling(stack, VoteOutcome.DENY, relied=("board.sales",))
    problem = await refused(stack, number, DisputeWorkflow.issue_ruling, deny)
    assert "outcome: 3 of 3 comparable rulings were upheld" in problem
    reason = "The registration had lapsed before Contoso's, which the earlier cases did not see."
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling, deny.model_copy(update={"divergence_acknowledgement": reason})
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    with stack.sessions.read() as session:
        issued = session.exec(
            select(DisputeEvent).where(
                DisputeEvent.dispute_number == number, DisputeEvent.action == "ruling_issued"
            )
        ).one()
    assert issued.content["divergence_acknowledgement"] == reason
    assert issued.content["divergences"][0].startswith("outcome: 3 of 3")


async def test_the_mediator_sees_precedent_and_the_form_asks_for_the_reason(stack: Stack) -> None:
    past_registration_cases(stack.sessions)
    app = make_app(stack)
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.wait_for(number, lambda s: s.similar is not None)
    desk = await signed_in(app, f"{mediator}@vendor.example")
    page = (await desk.get(f"/disputes/{number}")).text
    assert "Similar precedents" in page and "DSP-2025-000102" in page
    assert "same clause: RoE 3.1" in page
    assert "3 comparable precedents" in page and "commission split: 55 to 65 percent" in page

    form = {
        "terms": "Northwind keeps nearly all of the commission.",
        "remedy-0-kind": "commission_split",
        "remedy-0-deal_ref": "DR-2026-0042",
        "remedy-0-shares": "northwind=96, contoso=4",
    }
    refused_page = await desk.post(f"/disputes/{number}/actions/propose-settlement", form)
    assert refused_page.status_code == 409  # refused by the workflow, as every such refusal
    assert "96 percent is well outside the 55 to 65 percent used before" in refused_page.text
    assert "settlement_proposed" not in stack.actions(number)
    reason = "Contoso did none of the discovery work here, unlike in the earlier cases."
    done = await desk.post(
        f"/disputes/{number}/actions/propose-settlement",
        {**form, "divergence_acknowledgement": reason},
    )
    assert done.status_code == 303, done.text
    proposed = await stack.wait_for_event(number, "settlement_proposed")
    assert proposed.content["divergence_acknowledgement"] == reason

    # Partners never see other disputes' records, on the page, the timeline or the API.
    partner = await signed_in(app, "nora@northwind.example")
    for path in (f"/disputes/{number}", f"/disputes/{number}/timeline"):
        assert "DSP-2025-000102" not in (await partner.get(path)).text
    assert "DSP-2025-000102" not in (await partner.get(f"/api/disputes/{number}")).text
    for browser in (desk, partner):
        await browser.close()
