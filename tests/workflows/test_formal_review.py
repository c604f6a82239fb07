"""Formal review: a screened panel, a sealed ballot, the chair's ruling, one appeal to a fresh
panel, the review deadline's escalation, and the ruling's remedies through to the close."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage

import pytest
from pydantic import ValidationError
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError

from accord.directory.records import Directory, PersonRecord
from models.enums import DisputeStage, Role, TaskKind, VoteOutcome
from models.payloads import (
    Appeal,
    CastVote,
    CommissionSplit,
    DeclareImpasse,
    EvidenceRef,
    IssueRuling,
    RedrawPanel,
    TerritoryReassignment,
    UnsealBallot,
)
from models.tables import DisputeEvent, Precedent
from tests.conftest import Stack, seed
from tests.web_harness import Browser, make_app
from tests.workflows.test_dispute_paths import in_mediation
from workflows.dispute import DisputeWorkflow

pytestmark = pytest.mark.live_checked
"""Each state these paths wait for is checked in the read model the pages read (accord.disputes.live)."""

PANEL = ["board.sales", "board.marketing", "board.product", "board.finance", "board.partners"]
SPLIT = CommissionSplit(
    deal_ref="DR-2026-0042", shares={"northwind": Decimal(80), "contoso": Decimal(20)}
)
REASONS = "Northwind registered first and did the discovery work with Acme."


ADMINS = "channel-admins@vendor.example"


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def in_review(stack: Stack) -> str:
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    # The panel is on the review a moment before its deadline is computed: wait for both.
    await stack.wait_for(
        number,
        lambda s: s.review is not None and any(d.purpose == "review" for d in s.deadlines),
    )
    return number


async def vote(
    stack: Stack, number: str, who: str, outcome: VoteOutcome = VoteOutcome.UPHOLD
) -> None:
    await stack.handle(number).execute_update(
        DisputeWorkflow.cast_vote,
        CastVote(
            actor=stack.actor(who),
            outcome=outcome,
            remedies=() if outcome is VoteOutcome.DENY else (SPLIT,),
            reasons=REASONS,
        ),
    )


def ruling(
    stack: Stack,
    outcome: VoteOutcome = VoteOutcome.UPHOLD,
    chair: str = "board.chair",
    relied: tuple[str, ...] = ("board.sales",),
    **extra: object,
) -> IssueRuling:
    return IssueRuling.model_validate(
        {
            "actor": stack.actor(chair),
            "outcome": outcome,
            "remedies": () if outcome is VoteOutcome.DENY else (SPLIT,),
            "rationale": "The first valid registration wins under RoE 3.1; Contoso keeps a share.",
            "votes_relied_on": relied,
            "clauses_applied": ("RoE 3.1",),
            **extra,
        }
    )


async def ruled(stack: Stack) -> str:
    """A dispute whose first panel has ruled (three votes, the ballot opened): appeal window."""
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    return number


def appeal_by_contoso(stack: Stack) -> Appeal:
    return Appeal(
        actor=stack.actor("carl@contoso.example"),
        grounds="The registration date in the portal was entered wrongly by Northwind.",
        new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
    )


async def appoint_alternates_and_redraw(stack: Stack, number: str) -> None:
    """The admins complete the board with an alternate per function, then redraw the panel."""
    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id=f"alt.{f}",
                    name=f"Alt {f.title()}",
                    email=f"alt.{f}@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function=f,
                )
                for f in ("sales", "marketing", "product", "finance", "partner_management", "chair")
            ]
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.redraw_panel,
        RedrawPanel(actor=stack.actor("alex.admin"), reason="Alternates appointed to the board"),
    )


async def open_ballot(stack: Stack, number: str, chair: str = "board.chair") -> None:
    """The chair opens the ballot once a quorum has voted (recorded, with a reason)."""
    await stack.handle(number).execute_update(
        DisputeWorkflow.unseal_ballot,
        UnsealBallot(actor=stack.actor(chair), reason="A quorum has voted; the deadline is close."),
    )


async def refused(stack: Stack, number: str, update: object, payload: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await stack.handle(number).execute_update(update, payload)  # type: ignore[call-overload]
    return str(failure.value.cause)


async def test_ruling_without_appeal_applies_remedies_and_closes(stack: Stack) -> None:
    number = await in_review(stack)
    state = await stack.state(number)
    assert state.review is not None
    assert [m.person_id for m in state.review.panel] == PANEL
    assert state.review.chair is not None and state.review.chair.person_id == "board.chair"
    assert state.deadlines[0].purpose == "review"
    await stack.mail.wait_for("b.sales@vendor.example", "review panel")

    assert "the ballot is sealed (0 of 5 votes cast)" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack)
    )
    await vote(stack, number, "board.sales")
    await vote(stack, number, "board.marketing")
    # Sealed: the query shows who voted, never what; the audit trail holds only commitments.
    state = await stack.state(number)
    assert state.review is not None and state.review.sealed
    assert [v.outcome for v in state.review.votes] == [None, None]
    cast = await stack.wait_for_event(number, "vote_cast", count=2)
    assert "outcome" not in cast.content and len(cast.content["sealed"]) == 64
    assert "board.marketing has already voted" in await refused(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("board.marketing"), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    assert "not a voting member of the panel" in await refused(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("board.chair"), outcome=VoteOutcome.DENY, reasons=REASONS),
    )

    await vote(stack, number, "board.product")
    await vote(stack, number, "board.finance", VoteOutcome.DENY)
    await vote(stack, number, "board.partners")
    state = await stack.state(number)
    assert state.review is not None and not state.review.sealed
    assert [v.outcome for v in state.review.votes].count(VoteOutcome.UPHOLD) == 4
    await stack.wait_for_event(number, "votes_unsealed")

    assert "only the chair of the panel may issue ruling" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack, chair="board.sales")
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling, ruling(stack, relied=("board.sales", "board.product"))
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    appeal_due = state.deadlines[0].due_at
    ruled_mail = plain(await stack.mail.wait_for("nora@northwind.example", "appeal window open"))
    # What the parties must decide on, next to the appeal deadline: the remedies awarded.
    awarded = "Commission split on deal DR-2026-0042: Northwind Traders 80%, Contoso Systems 20%"
    assert awarded in ruled_mail
    assert ruled_mail.index(awarded) < ruled_mail.index("appeal once")
    # The board's page shows the votes' and the ruling's remedies with their shares too.
    browser = Browser(make_app(stack))
    await browser.sign_in("b.sales@vendor.example")
    page = (await browser.get(f"/disputes/{number}")).text
    assert page.count(awarded) >= 2 and "[commission split]" not in page

    await stack.env.sleep(appeal_due - await stack.env.get_current_time() + timedelta(minutes=1))
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.CLOSED and outcome.outcome == "ruled_uphold"
    actions = stack.actions(number)
    assert (
        actions.index("appeal_window_closed")
        < actions.index("remedy_applied")
        < actions.index("closed")
    )
    with stack.sessions.read() as session:
        precedent = session.exec(select(Precedent).where(Precedent.dispute_number == number)).one()
        assert precedent.outcome == "uphold" and precedent.remedies[0]["kind"] == "commission_split"
    # Every vote matches the commitment recorded when it was cast.
    with stack.sessions.read() as session:
        unsealed = session.exec(
            select(DisputeEvent).where(
                DisputeEvent.dispute_number == number, DisputeEvent.action == "votes_unsealed"
            )
        ).one()
        sealed = {
            e.actor_id: e.content["sealed"]
            for e in session.exec(
                select(DisputeEvent).where(
                    DisputeEvent.dispute_number == number, DisputeEvent.action == "vote_cast"
                )
            ).all()
        }
    assert {v["panelist"]: v["commitment"] for v in unsealed.content["votes"]} == sealed


async def test_chair_ruling_against_the_majority_must_say_why(stack: Stack) -> None:
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    message = await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY)
    )
    assert "against_majority_reason: the majority voted uphold" in message
    assert "remedies[0]: territory_reassignment is not allowed" in await refused(
        stack,
        number,
        DisputeWorkflow.issue_ruling,
        ruling(stack).model_copy(
            update={
                "remedies": (
                    TerritoryReassignment(
                        territory_code="US-NY-METRO",
                        from_partner_id="northwind",
                        to_partner_id="contoso",
                        effective_on="2027-01-01",
                    ),
                )
            }
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling,
        ruling(
            stack,
            VoteOutcome.DENY,
            against_majority_reason=(
                "The registration was filed after the customer had already chosen Contoso."
            ),
        ),
    )
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    assert state.rulings[0].against_majority_reason


async def test_appeal_goes_to_a_fresh_panel_whose_ruling_is_final(stack: Stack) -> None:
    number = await ruled(stack)
    with pytest.raises(ValidationError, match="new_evidence"):
        Appeal(actor=stack.actor("carl@contoso.example"), grounds=REASONS, new_evidence=())
    appeal = appeal_by_contoso(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal)
    # The review has started again: a second appeal is refused (and the final ruling has none).
    assert "appeal is not possible while the dispute is formal_review" in await refused(
        stack, number, DisputeWorkflow.appeal, appeal
    )

    # Everyone on the board sat on the first panel: a fresh one cannot be drawn yet.
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    event = await stack.wait_for_event(number, "panel_incomplete")
    assert "too few eligible board members" in event.content["reason"]
    # Why each member is out, in words: not "recused or let an earlier offer expire".
    assert "Beatrice Sales sat on the first panel" in event.content["reason"]
    assert "Charles Chair sat on the first panel" in event.content["reason"]
    assert "recused or let" not in event.content["reason"]
    # The admins are told the fix that works: complete the board, redraw the panel.
    shortage = plain(await stack.mail.wait_for(ADMINS, "redraw the review panel"))
    assert f"accord redraw-panel {number}" in shortage and "accord assign" not in shortage
    assert "Beatrice Sales sat on the first panel" in shortage
    await appoint_alternates_and_redraw(stack, number)
    state = await stack.wait_for(
        number,
        lambda s: (
            s.review is not None
            and s.review.round == 2
            and any(t.kind is TaskKind.CAST_VOTE for t in s.open_tasks)
        ),
    )
    assert state.review is not None
    assert {m.person_id for m in state.review.panel}.isdisjoint(PANEL)
    assert state.review.chair is not None and state.review.chair.person_id == "alt.chair"
    # The fresh panel is told it hears an appeal, by whom and on what grounds.
    invitation = await stack.mail.wait_for("alt.sales@vendor.example", "appeal")
    invited = plain(invitation)
    assert "Contoso Systems appealed" in invited
    assert "entered wrongly by Northwind" in invited and "Portal audit log" in invited
    for who in ("alt.sales", "alt.marketing", "alt.product"):
        await vote(stack, number, who, VoteOutcome.DENY)
    await open_ballot(stack, number, chair="alt.chair")
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling,
        ruling(stack, VoteOutcome.DENY, chair="alt.chair", relied=("alt.sales",)),
    )
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.CLOSED and outcome.outcome == "ruled_deny"
    final = (await stack.state(number)).rulings
    assert [r.final for r in final] == [False, True]
    await stack.mail.wait_for("nora@northwind.example", "Final ruling")
    assert "remedy_applied" not in stack.actions(number)


async def test_overdue_review_escalates_to_the_executive_sponsor_and_never_rules_by_default(
    stack: Stack,
) -> None:
    number = await in_review(stack)
    await vote(stack, number, "board.sales")
    due = (await stack.state(number)).deadlines[0].due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(hours=1))
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.EXECUTIVE_REVIEW for t in s.open_tasks)
    )
    assert state.stage is DisputeStage.FORMAL_REVIEW and not state.rulings
    task = next(t for t in state.open_tasks if t.kind is TaskKind.EXECUTIVE_REVIEW)
    assert task.assignee == "eve.sponsor"
    assert state.review is not None and not state.review.sealed
    await stack.mail.wait_for("eve.sponsor@vendor.example", "Review overdue")
    warnings = [
        e
        for e in stack.events(number)
        if e.action == "deadline_warning" and e.content["purpose"] == "review"
    ]
    assert len(warnings) == 2
    # Vote reminders went to the panelists who had not voted yet, not to the one who had.
    await stack.mail_settled()
    assert any("Deadline warning" in s for s in stack.mail.subjects("m.marketing@vendor.example"))
    assert not any("Deadline warning" in s for s in stack.mail.subjects("b.sales@vendor.example"))

    # The deadline opened the ballot: a late vote would be cast knowing the others.
    assert not any(t.kind is TaskKind.CAST_VOTE for t in state.open_tasks)
    assert "the ballot is open" in await refused(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("board.marketing"), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    await stack.env.sleep(timedelta(days=30))
    assert (await stack.state(number)).stage is DisputeStage.FORMAL_REVIEW  # still waiting
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)


async def test_a_recusing_panelist_is_replaced_and_a_missing_replacement_goes_to_the_admins(
    stack: Stack,
) -> None:
    from models.payloads import Recuse

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
    handle = stack.handle(number)
    result = await handle.execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.sales"), reason="I manage the Northwind relationship."),
    )
    assert "a replacement was drawn" in result.message
    state = await stack.state(number)
    assert state.review is not None
    assert [m.person_id for m in state.review.panel][-1] == "alt.sales"
    assert "board.sales" not in [m.person_id for m in state.review.panel]
    assert any(t.key.endswith("vote-1-alt.sales") for t in state.open_tasks)
    await stack.mail.wait_for("alt.sales@vendor.example", "review panel")

    # Nobody else can take the finance seat: the admins are asked, and the chair must wait.
    await handle.execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.finance"), reason="Finance approved the disputed rebate."),
    )
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    for who in ("board.marketing", "board.product", "alt.sales"):
        await vote(stack, number, who)
    assert "finance seat is vacant" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack)
    )
    assert "board.marketing has voted; a recusal is no longer possible" in await refused(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.marketing"), reason="Changed my mind about it."),
    )

    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id="alt.finance",
                    name="Alt Finance",
                    email="alt.finance@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="finance",
                )
            ]
        ),
    )
    await handle.execute_update(
        DisputeWorkflow.redraw_panel,
        RedrawPanel(actor=stack.actor("alex.admin"), reason="Alt Finance appointed"),
    )
    state = await stack.state(number)
    assert state.review is not None and "alt.finance" in [m.person_id for m in state.review.panel]
    assert not any(t.kind is TaskKind.COMPOSE_PANEL for t in state.open_tasks)
    await open_ballot(stack, number)
    await handle.execute_update(DisputeWorkflow.issue_ruling, ruling(stack, relied=("alt.sales",)))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)


async def test_the_first_panel_cannot_vote_or_rule_once_the_ruling_is_appealed(
    stack: Stack,
) -> None:
    number = await ruled(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal_by_contoso(stack))
    # Every board member sat on the first panel: the fresh one waits for the admins.
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    state = await stack.state(number)
    assert state.review is None  # no panel, no votes, no vacancies carried over
    await stack.recorded(number)
    before = len(stack.events(number))
    for who in ("board.sales", "board.finance"):
        assert f"no panel has been drawn for {number} yet" in await refused(
            stack,
            number,
            DisputeWorkflow.cast_vote,
            CastVote(actor=stack.actor(who), outcome=VoteOutcome.DENY, reasons=REASONS),
        )
    assert f"no panel has been drawn for {number} yet" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY)
    )
    assert len(stack.events(number)) == before

    await appoint_alternates_and_redraw(stack, number)
    state = await stack.wait_for(
        number,
        lambda s: s.review is not None and s.review.round == 2 and bool(s.review.panel),
    )
    assert state.review is not None and state.review.votes == ()
    assert "not a voting member of the panel" in await refused(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("board.sales"), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    assert "only the chair of the panel may issue ruling" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY)
    )
    assert (await stack.state(number)).stage is DisputeStage.FORMAL_REVIEW


async def test_the_chair_rules_only_on_an_open_ballot_and_a_sealed_one_tells_nothing(
    stack: Stack,
) -> None:
    number = await in_review(stack)
    await vote(stack, number, "board.sales", VoteOutcome.DENY)
    await vote(stack, number, "board.marketing", VoteOutcome.DENY)
    assert "no quorum yet: 2 of 5 votes cast, 3 needed" in await refused(
        stack,
        number,
        DisputeWorkflow.unseal_ballot,
        UnsealBallot(actor=stack.actor("board.chair"), reason="We need to move on."),
    )
    await vote(stack, number, "board.product", VoteOutcome.DENY)
    # A quorum has voted, sealed. The chair tries each outcome: the answer is the same and names
    # no vote and no majority (it used to say "the majority voted deny").
    answers = {
        await refused(stack, number, DisputeWorkflow.issue_ruling, ruling(stack, outcome))
        for outcome in (VoteOutcome.UPHOLD, VoteOutcome.DENY)
    }
    assert len(answers) == 1
    (answer,) = answers
    assert "the ballot is sealed (3 of 5 votes cast)" in answer
    assert "deny" not in answer and "majority" not in answer
    assert "only the chair of the panel may unseal ballot" in await refused(
        stack,
        number,
        DisputeWorkflow.unseal_ballot,
        UnsealBallot(actor=stack.actor("board.sales"), reason="We need to move on."),
    )
    state = await stack.state(number)
    assert state.review is not None and state.review.sealed
    assert [v.outcome for v in state.review.votes] == [None, None, None]

    await open_ballot(stack, number)
    opened = await stack.wait_for_event(number, "votes_unsealed")
    assert opened.actor_id == "board.chair"
    assert opened.content["not_voted"] == ["board.finance", "board.partners"]
    assert {v["outcome"] for v in opened.content["votes"]} == {"deny"}
    state = await stack.state(number)
    assert state.review is not None and not state.review.sealed
    assert not any(t.kind is TaskKind.CAST_VOTE for t in state.open_tasks)
    assert "the ballot is open" in await refused(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("board.finance"), outcome=VoteOutcome.UPHOLD, reasons=REASONS),
    )
    # Open, the ballot may be cited: now the chair learns the majority.
    assert "against_majority_reason: the majority voted deny" in await refused(
        stack, number, DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.UPHOLD)
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY)
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
