"""A ruling is compared with the precedents on its dispute's own clause, whatever it cites; it cites
only clauses of its pinned playbook and precedents that exist; the chair's dismissal says why."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accord.rules.consistency import unknown_clauses
from models.enums import DisputeCategory, DisputeStage, VoteOutcome
from models.payloads import Dismiss
from tests.conftest import Stack
from tests.precedent_rows import add_precedent
from tests.rules.test_consistency import CLAUSE, past_registration_cases
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_formal_review import PANEL, in_review, refused, ruling, vote
from workflows.dispute import DisputeWorkflow

PLAYBOOK_CLAUSES = (
    CLAUSE,
    "RoE 4.2 Exclusive territories are served only by their holder",
    "RoE 5.1 Partner pricing follows the published price list for the partner's tier",
)


def test_a_clause_is_known_by_its_reference() -> None:
    assert unknown_clauses(("RoE 3.1", " roe 5.1 ", CLAUSE), PLAYBOOK_CLAUSES) == ()
    cited = ("RoE 3.1", "RoE 9.9 Anything goes", "3.1", "RoE 9.9 Anything goes")
    assert unknown_clauses(cited, PLAYBOOK_CLAUSES) == ("RoE 9.9 Anything goes", "3.1")


async def all_vote(stack: Stack, number: str, outcome: VoteOutcome) -> None:
    """Every panelist votes, so the ballot opens by itself."""
    for member in PANEL:
        await vote(stack, number, member, outcome)
    await stack.wait_for(number, lambda s: s.review is not None and not s.review.sealed)


async def test_citing_another_clause_does_not_escape_the_comparison(stack: Stack) -> None:
    # Three rulings on the registration clause upheld the claim; the panel votes to deny, and
    # the chair cites only the pricing clause (a clause of the playbook, of another category).
    past_registration_cases(stack.sessions)
    number = await in_review(stack)
    await stack.wait_for(
        number, lambda s: s.similar is not None and s.similar.purpose == "review-1"
    )
    await all_vote(stack, number, VoteOutcome.DENY)
    elsewhere = ruling(stack, VoteOutcome.DENY, clauses_applied=("RoE 5.1",))
    problem = await refused(stack, number, DisputeWorkflow.issue_ruling, elsewhere)
    assert "divergence_acknowledgement: " in problem
    assert "outcome: 3 of 3 comparable rulings were upheld" in problem
    assert "ruling_issued" not in stack.actions(number)

    reason = "The price list, not the registration, decides this case; the board says why."
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling,
        elsewhere.model_copy(update={"divergence_acknowledgement": reason}),
    )
    issued = await stack.wait_for_event(number, "ruling_issued")
    assert issued.content["divergence_acknowledgement"] == reason
    assert issued.content["divergences"][0].startswith("outcome: 3 of 3")


async def test_a_ruling_cites_only_clauses_of_its_playbook_and_existing_precedents(
    stack: Stack,
) -> None:
    past_registration_cases(stack.sessions)
    with stack.sessions.begin() as session:
        # A precedent of the library that was not among those the panel was shown.
        add_precedent(
            session,
            "DSP-2024-000077",
            category=DisputeCategory.TERRITORY,
            outcome="upheld",
            facts="Contoso served an account in Northwind's exclusive territory.",
            rationale="Exclusive territories are served only by their holder.",
            clauses=("RoE 4.2",),
            amount=Decimal(40_000),
        )
    number = await in_review(stack)
    state = await stack.wait_for(
        number, lambda s: s.similar is not None and s.similar.purpose == "review-1"
    )
    assert state.similar is not None
    assert "DSP-2024-000077" not in {m.dispute_number for m in state.similar.matches}
    await all_vote(stack, number, VoteOutcome.UPHOLD)
    await stack.recorded(number)
    before = len(stack.events(number))
    # The past cases say "upheld", not a ruling's "uphold": any ruling diverges from them here.
    ack = "Upheld as before; only the wording of the outcome differs."

    invented = ruling(
        stack,
        clauses_applied=("RoE 3.1", "RoE 9.9 The claimant always wins"),
        divergence_acknowledgement=ack,
    )
    problem = await refused(stack, number, DisputeWorkflow.issue_ruling, invented)
    assert "clauses_applied: RoE 9.9 The claimant always wins is not a clause" in problem
    assert "playbook 2026.2" in problem and "RoE 3.1" in problem  # the clauses it has
    unknown = ruling(
        stack,
        precedents_cited=("DSP-2025-000100", "DSP-2019-000001"),
        divergence_acknowledgement=ack,
    )
    problem = await refused(stack, number, DisputeWorkflow.issue_ruling, unknown)
    assert "precedents_cited: DSP-2019-000001 is not a precedent" in problem
    assert "DSP-2025-000100" not in problem  # shown to the panel: it exists
    assert len(stack.events(number)) == before  # nothing recorded
    assert (await stack.state(number)).rulings == ()

    cited = ruling(
        stack,
        clauses_applied=("RoE 3.1", "RoE 4.2"),
        precedents_cited=("DSP-2025-000100", "DSP-2024-000077"),
        divergence_acknowledgement=ack,
    )
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, cited)
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    assert state.rulings[0].precedents_cited == ("DSP-2025-000100", "DSP-2024-000077")


async def test_the_chairs_dismissal_needs_a_reason_of_substance(stack: Stack) -> None:
    number = await in_review(stack)
    await stack.recorded(number)
    before = len(stack.events(number))
    curt = Dismiss(actor=stack.actor("board.chair"), reason="No.")
    problem = await refused(stack, number, DisputeWorkflow.dismiss, curt)
    assert "reason: a dismissal by the panel's chair" in problem
    assert len(stack.events(number)) == before
    assert (await stack.state(number)).stage is DisputeStage.FORMAL_REVIEW

    reason = "Both registrations were void: the customer had bought directly before either."
    await stack.handle(number).execute_update(
        DisputeWorkflow.dismiss, Dismiss(actor=stack.actor("board.chair"), reason=reason)
    )
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.DISMISSED
    (dismissed,) = [e for e in stack.events(number) if e.action == "dismissed"]
    assert dismissed.content["reason"] == reason


async def test_the_api_and_the_form_show_the_refusal_naming_the_field(stack: Stack) -> None:
    app = make_app(stack)
    number = await in_review(stack)
    await all_vote(stack, number, VoteOutcome.UPHOLD)
    async with api(app, token_for(stack, "c.chair@vendor.example")) as chair:
        answer = await chair.post(
            f"/api/disputes/{number}/issue-ruling",
            json={
                "outcome": "uphold",
                "remedies": [ruling(stack).remedies[0].model_dump(mode="json")],
                "rationale": "The first valid registration wins under RoE 3.1.",
                "votes_relied_on": ["board.sales"],
                "clauses_applied": ["RoE 3.1"],
                "precedents_cited": ["DSP-2019-000001"],
            },
        )
        assert answer.status_code == 409, answer.text
        assert answer.json()["detail"].startswith("precedents_cited: DSP-2019-000001")
        answer = await chair.post(f"/api/disputes/{number}/dismiss", json={"reason": "No."})
        assert answer.status_code == 409, answer.text
        assert answer.json()["detail"].startswith("reason: ")
    browser = await signed_in(app, "c.chair@vendor.example")
    page = await browser.post(f"/disputes/{number}/actions/dismiss", {"reason": "No."})
    assert page.status_code == 409
    assert "reason: a dismissal by the panel" in page.text
    await browser.close()
    assert "dismissed" not in stack.actions(number)


def test_a_reason_of_substance_is_words_not_characters() -> None:
    from accord.rules.consistency import acknowledged

    for empty in (" " * 25, "." * 25, "\u200b" * 25, "x" * 25, "12345 67890 12345 67890"):
        assert not acknowledged(empty), repr(empty)
    assert acknowledged("The registration had lapsed before Contoso's.")
    assert acknowledged("Die Registrierung war abgelaufen, bevor Contoso kam.")


def test_a_clause_cited_in_any_spelling_is_the_playbooks_wording() -> None:
    from accord.rules.consistency import canonical_clauses

    assert canonical_clauses(
        ("roe  3.1 anything at all", "RoE 3.1", " RoE 4.2"), PLAYBOOK_CLAUSES
    ) == (
        CLAUSE,
        "RoE 4.2 Exclusive territories are served only by their holder",
    )


def test_a_ruling_names_at_most_fifty_precedents_and_no_text_holds_a_nul() -> None:
    from pydantic import ValidationError

    from models.enums import Role
    from models.payloads import Actor, IssueRuling, RespondToOffer

    chair = Actor(id="board.chair", role=Role.BOARD)
    body = {
        "actor": chair,
        "outcome": "deny",
        "rationale": "The registration had lapsed before Contoso's, as the log shows.",
        "votes_relied_on": ["board.sales"],
        "clauses_applied": ["RoE 3.1"],
    }
    with pytest.raises(ValidationError) as many:
        IssueRuling.model_validate(
            {**body, "precedents_cited": [f"DSP-2026-{i:06}" for i in range(1000)]}
        )
    assert [e["loc"] for e in many.value.errors()] == [("precedents_cited",)]
    with pytest.raises(ValidationError) as nul:
        RespondToOffer(actor=chair, offer_id="offer-1", accept=False, comment="never\x00")
    (error,) = nul.value.errors()
    assert error["loc"] == ("comment",) and "holds a NUL character" in error["msg"]


async def test_the_ruling_records_the_playbooks_wording_of_a_clause_cited_loosely(
    stack: Stack,
) -> None:
    number = await in_review(stack)
    await all_vote(stack, number, VoteOutcome.UPHOLD)
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling,
        ruling(stack).model_copy(update={"clauses_applied": ("roe  3.1 first one wins",)}),
    )
    state = await stack.wait_for(number, lambda s: bool(s.rulings))
    assert state.rulings[0].clauses_applied == (CLAUSE,)
