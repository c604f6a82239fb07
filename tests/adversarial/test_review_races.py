"""Adversarial probes on formal review: the sealed ballot, recusals, the appeal, the deadline."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from accord.directory.records import Directory, PersonRecord
from models.enums import DisputeStage, Role, TaskKind, VoteOutcome
from models.payloads import (
    ActionResult,
    Appeal,
    CastVote,
    CommissionSplit,
    Dismiss,
    EvidenceRef,
    Recuse,
    RedrawPanel,
    UnsealBallot,
    Withdraw,
)
from models.tables import DisputeEvent, Task
from tests.adversarial._common import ballot_open
from tests.conftest import Stack, seed
from tests.races import Gate, begin, outcome, try_update
from tests.workflows.test_formal_review import PANEL, REASONS, in_review, open_ballot, ruling, vote
from workflows.dispute import DisputeWorkflow

TOKEN = "PURPLEPENGUIN"
ODD_SPLIT = CommissionSplit(
    deal_ref="DR-2026-0042", shares={"northwind": Decimal(73), "contoso": Decimal(27)}
)


def secret_vote(stack: Stack, who: str, outcome: VoteOutcome) -> CastVote:
    return CastVote(
        actor=stack.actor(who),
        outcome=outcome,
        remedies=() if outcome is VoteOutcome.DENY else (ODD_SPLIT,),
        reasons=f"{TOKEN}-{who}: Contoso's registration came after the customer chose them.",
    )


def mail_text(stack: Stack) -> str:
    parts = []
    for message in stack.mail.messages:
        parts.append(str(message["Subject"]))
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
    return "\n".join(parts)


def trail_text(stack: Stack, number: str) -> str:
    with stack.sessions.read() as session:
        events = session.exec(
            select(DisputeEvent).where(DisputeEvent.dispute_number == number)
        ).all()
        tasks = session.exec(select(Task).where(Task.dispute_number == number)).all()
        return "\n".join(
            [f"{e.action} {json.dumps(e.content)}" for e in events]
            + [f"{t.key} {t.title}" for t in tasks]
        )


async def test_nothing_tells_what_a_sealed_vote_says(race: Stack) -> None:
    stack = race
    number = await in_review(stack)
    handle = stack.handle(number)
    for who, how in (
        ("board.sales", VoteOutcome.DENY),
        ("board.marketing", VoteOutcome.PARTLY_UPHOLD),
        ("board.product", VoteOutcome.DENY),
    ):
        await handle.execute_update(DisputeWorkflow.cast_vote, secret_vote(stack, who, how))
    refusals = [
        await try_update(stack, number, DisputeWorkflow.issue_ruling, ruling(stack, o))
        for o in VoteOutcome
    ]
    refusals += [
        await try_update(
            stack,
            number,
            DisputeWorkflow.unseal_ballot,
            UnsealBallot(actor=stack.actor("board.sales"), reason="Let us get on with it."),
        ),
        await try_update(
            stack,
            number,
            DisputeWorkflow.cast_vote,
            secret_vote(stack, "board.sales", VoteOutcome.UPHOLD),
        ),
        await try_update(
            stack,
            number,
            DisputeWorkflow.recuse,
            Recuse(actor=stack.actor("board.sales"), reason="On reflection I am conflicted."),
        ),
        await try_update(
            stack,
            number,
            DisputeWorkflow.dismiss,
            Dismiss(actor=stack.actor("board.chair"), reason="No."),
        ),
    ]
    await stack.wait_for_event(number, "vote_cast", count=3)
    state = await stack.state(number)
    assert state.review is not None and state.review.sealed
    await stack.mail_settled()
    seen = {
        "query": state.model_dump_json(),
        "refusals": "\n".join(str(r) for r in refusals),
        "audit trail and tasks": trail_text(stack, number),
        "emails": mail_text(stack),
    }
    leaks = {where: text.count(TOKEN) for where, text in seen.items() if TOKEN in text}
    leaks |= {
        f"{where} (73/27 split)": 1
        for where, text in seen.items()
        if '"northwind":"73"' in text.replace(" ", "") or "northwind': Decimal('73')" in text
    }
    assert "partly_uphold" not in seen["refusals"], seen["refusals"]
    assert leaks == {}, leaks


async def test_a_panelist_who_never_voted_cannot_stall_an_open_ballot_by_recusing(
    race: Stack,
) -> None:
    """Three voted; the chair opened the ballot (the two others may no longer vote). One of those
    two now recuses: the chair must still be able to rule on the open ballot."""
    stack = race
    number = await ballot_open(stack)
    recused = await try_update(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.finance"), reason="Finance approved the disputed rebate."),
    )
    state = await stack.state(number)
    open_votes = [t.key for t in state.open_tasks if t.kind is TaskKind.CAST_VOTE]
    ruled = await try_update(stack, number, DisputeWorkflow.issue_ruling, ruling(stack))
    report = (
        f"recusal after the ballot opened: {getattr(recused, 'message', recused)!r}; "
        f"vote tasks open: {open_votes}; the chair's ruling: {getattr(ruled, 'message', ruled)!r}"
    )
    assert isinstance(ruled, ActionResult), report


async def test_a_replacement_drawn_onto_an_open_ballot_gets_no_vote_it_cannot_cast(
    race: Stack,
) -> None:
    stack = race
    number = await in_review(stack)
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
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    recused = await try_update(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.finance"), reason="Finance approved the disputed rebate."),
    )
    state = await stack.state(number)
    open_votes = [t.key for t in state.open_tasks if t.kind is TaskKind.CAST_VOTE]
    cast = await try_update(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor("alt.finance"), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    await stack.mail_settled()
    mails = stack.mail.subjects("alt.finance@vendor.example")
    report = (
        f"recusal: {getattr(recused, 'message', recused)!r}; vote tasks open: {open_votes}; "
        f"mail to the replacement: {mails}; replacement's vote: {cast!r}"
    )
    assert not any(k.endswith("vote-1-alt.finance") for k in open_votes), report


async def test_unseal_racing_the_last_vote(race: Stack, gates: dict[str, Gate]) -> None:
    stack = race
    number = await in_review(stack)
    for who in PANEL[:4]:
        await vote(stack, number, who)
    gates["record_event"].hold(lambda r: r.action == "vote_cast" and r.actor.id == PANEL[4])
    last = await begin(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor(PANEL[4]), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    await gates["record_event"].reached()
    unseal = await begin(
        stack,
        number,
        DisputeWorkflow.unseal_ballot,
        UnsealBallot(actor=stack.actor("board.chair"), reason="A quorum has voted already."),
    )
    gates["record_event"].release()
    voted, unsealed = await outcome(last), await outcome(unseal)
    opened = [e for e in stack.events(number) if e.action == "votes_unsealed"]
    await stack.wait_for_event(number, "votes_unsealed")
    opened = [e for e in stack.events(number) if e.action == "votes_unsealed"]
    report = f"vote: {voted!r}; unseal: {unsealed!r}; opened {len(opened)} times"
    assert isinstance(voted, ActionResult) and len(opened) == 1, report
    assert len(opened[0].content["votes"]) == 5, report
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)


async def test_the_chair_recusing_while_the_ruling_is_recorded(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = await ballot_open(stack)
    gates["record_event"].hold(lambda r: r.action == "ruling_issued")
    ruled = await begin(stack, number, DisputeWorkflow.issue_ruling, ruling(stack))
    await gates["record_event"].reached()
    recuse = await try_update(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.chair"), reason="I just found a conflict of interest."),
    )
    gates["record_event"].release()
    result = await outcome(ruled)
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    assert isinstance(result, ActionResult), result
    assert str(recuse).startswith("REFUSED"), recuse
    assert "panel_recused" not in stack.actions(number)


async def test_a_vote_racing_the_review_deadline(race: Stack, gates: dict[str, Gate]) -> None:
    """The review deadline passes while the fourth panelist's vote is being recorded."""
    stack = race
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    due = (await stack.state(number)).deadlines[0].due_at
    # Everything up to the deadline first (the warnings), then the race at the deadline.
    await stack.env.sleep(due - await stack.env.get_current_time() - timedelta(minutes=5))
    await stack.wait_for_event(number, "deadline_warning", count=2)
    gates["record_event"].hold(lambda r: r.action == "deadline_passed")
    sleeping = asyncio.create_task(
        stack.env.sleep(due - await stack.env.get_current_time() + timedelta(seconds=1))
    )
    await gates["record_event"].reached()
    late = await begin(
        stack,
        number,
        DisputeWorkflow.cast_vote,
        CastVote(actor=stack.actor(PANEL[3]), outcome=VoteOutcome.DENY, reasons=REASONS),
    )
    gates["record_event"].release()
    await asyncio.wait_for(sleeping, 30)
    said = await outcome(late)
    await stack.wait_for_event(number, "review_overdue")
    state = await stack.state(number)
    assert state.review is not None and not state.review.sealed
    assert isinstance(said, str) and "the ballot is open" in said, said
    assert len(state.review.votes) == 3
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)


async def test_an_appeal_racing_the_close_of_the_appeal_window(
    race: Stack, gates: dict[str, Gate]
) -> None:
    stack = race
    number = await ballot_open(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    due = state.deadlines[0].due_at
    gates["record_event"].hold(lambda r: r.action == "appeal_window_closed")
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(seconds=1))
    await gates["record_event"].reached()
    appeal = await try_update(
        stack,
        number,
        DisputeWorkflow.appeal,
        Appeal(
            actor=stack.actor("carl@contoso.example"),
            grounds="The registration date in the portal was entered wrongly by Northwind.",
            new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
        ),
    )
    gates["record_event"].release()
    result = await stack.handle(number).result()
    assert str(appeal).startswith("REFUSED"), appeal
    assert result.stage is DisputeStage.CLOSED and "appeal_filed" not in stack.actions(number)


async def test_the_first_panel_after_an_appeal_tries_everything(race: Stack) -> None:
    stack = race
    number = await ballot_open(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    # The alternates who will sit on the fresh panel are appointed before the appeal: added
    # after it, they raced the panel's draw (drawn first, it found no one and waited for an
    # admin's redraw the test had not yet seen it needed).
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
        DisputeWorkflow.appeal,
        Appeal(
            actor=stack.actor("carl@contoso.example"),
            grounds="The registration date in the portal was entered wrongly by Northwind.",
            new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
        ),
    )
    await stack.wait_for(
        number,
        lambda s: (
            s.review is not None
            and s.review.round == 2
            # The fresh panel's vote tasks open with its panel_drawn entry (the panel and
            # round 1's review deadline are on the state a moment before that entry).
            and any(t.kind is TaskKind.CAST_VOTE for t in s.open_tasks)
            and any(d.purpose == "review" for d in s.deadlines)
        ),
    )
    await stack.recorded(number)
    before = len(stack.events(number))
    attempts = {}
    for who in (*PANEL, "board.chair"):
        for name, update, payload in (
            (
                "vote",
                DisputeWorkflow.cast_vote,
                CastVote(actor=stack.actor(who), outcome=VoteOutcome.DENY, reasons=REASONS),
            ),
            (
                "recuse",
                DisputeWorkflow.recuse,
                Recuse(actor=stack.actor(who), reason="Stepping down from it."),
            ),
            (
                "unseal",
                DisputeWorkflow.unseal_ballot,
                UnsealBallot(actor=stack.actor(who), reason="Let us get on with it."),
            ),
            ("rule", DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY, chair=who)),
            (
                "dismiss",
                DisputeWorkflow.dismiss,
                Dismiss(
                    actor=stack.actor(who),
                    reason="The appeal brings nothing new at all, so it is dismissed.",
                ),
            ),
        ):
            attempts[f"{who} {name}"] = await try_update(stack, number, update, payload)
    accepted = {k: v for k, v in attempts.items() if not str(v).startswith("REFUSED")}
    assert accepted == {}, accepted
    assert len(stack.events(number)) == before


async def test_a_redraw_racing_a_withdrawal(race: Stack, gates: dict[str, Gate]) -> None:
    from models.payloads import Recuse as R

    stack = race
    number = await in_review(stack)
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse, R(actor=stack.actor("board.finance"), reason="Finance approved it.")
    )
    gates["draw_panel"].hold()
    redraw = await begin(
        stack,
        number,
        DisputeWorkflow.redraw_panel,
        RedrawPanel(actor=stack.actor("alex.admin"), reason="Try the board again"),
    )
    await gates["draw_panel"].reached()
    withdraw = await begin(
        stack,
        number,
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("nora@northwind.example"), reason="We settled it ourselves."),
    )
    gates["draw_panel"].release()
    r, w = await outcome(redraw), await outcome(withdraw)
    result = await stack.handle(number).result()
    assert result.stage is DisputeStage.WITHDRAWN, (r, w)
    with stack.sessions.read() as session:
        open_tasks = session.exec(
            select(Task).where(Task.dispute_number == number, Task.state == "open")
        ).all()
    assert [t.key for t in open_tasks] == [], (r, w)


def a_message(stack: Stack, inbound_id: int = 1) -> object:
    from models.payloads import AddMessage, MailMessage

    return AddMessage(
        actor=stack.actor("nora@northwind.example"),
        message=MailMessage(
            inbound_id=inbound_id,
            sender="nora@northwind.example",
            subject="Re: the review",
            text="One more thing for the panel.",
            side_partner_id="northwind",
        ),
    )


@pytest.mark.parametrize("ender", ["the chair dismissing", "the claimant withdrawing"])
async def test_an_end_queued_behind_the_ruling_does_not_undo_it(
    race: Stack, gates: dict[str, Gate], ender: str
) -> None:
    """A party's message is being recorded (lock held); the chair rules, then the dispute is
    ended (both queued). The end is refused: the panel has ruled, and the ruling stands."""
    stack = race
    number = await ballot_open(stack)
    gates["record_event"].hold(lambda r: r.action == "message_received")
    message = await begin(stack, number, DisputeWorkflow.add_message, a_message(stack))
    await gates["record_event"].reached()
    ruled = await begin(stack, number, DisputeWorkflow.issue_ruling, ruling(stack))
    if ender == "the chair dismissing":
        end = await begin(
            stack,
            number,
            DisputeWorkflow.dismiss,
            Dismiss(
                actor=stack.actor("board.chair"),
                reason="On reflection the claim is outside the programme's rules entirely.",
            ),
        )
    else:
        end = await begin(
            stack,
            number,
            DisputeWorkflow.withdraw,
            Withdraw(actor=stack.actor("nora@northwind.example"), reason="We settled it."),
        )
    gates["record_event"].release()
    await outcome(message)
    r, e = await outcome(ruled), await outcome(end)
    state = await stack.wait_for(number, lambda s: s.stage is not DisputeStage.FORMAL_REVIEW)
    report = f"ruling: {getattr(r, 'message', r)!r}; end: {e!r}; stage now {state.stage}"
    assert isinstance(r, ActionResult), report
    assert e == "the panel has ruled: the ruling stands (it can be appealed)" or e == (
        "the panel has ruled: the ruling can be appealed, not withdrawn from"
    ), report
    assert state.stage is DisputeStage.APPEAL_WINDOW, report


async def test_the_chair_alone_cannot_dismiss_a_dispute_they_are_ruling_on(
    race: Stack, gates: dict[str, Gate]
) -> None:
    """The chair's ruling cites a second clause of the playbook, looked up under the lock; the
    chair then presses 'dismiss'. One person, two decisions: the second must be refused."""
    stack = race
    number = await ballot_open(stack)
    gates["find_citable"].hold()
    ruled = await begin(
        stack,
        number,
        DisputeWorkflow.issue_ruling,
        ruling(stack, clauses_applied=("RoE 3.1", "RoE 6.3")),
    )
    await gates["find_citable"].reached()
    dismiss = await begin(
        stack,
        number,
        DisputeWorkflow.dismiss,
        Dismiss(
            actor=stack.actor("board.chair"),
            reason="On reflection the claim is outside the programme's rules entirely.",
        ),
    )
    gates["find_citable"].release()
    r, d = await outcome(ruled), await outcome(dismiss)
    state = await stack.wait_for(number, lambda s: s.stage is not DisputeStage.FORMAL_REVIEW)
    report = (
        f"ruling: {getattr(r, 'message', r)!r}; dismissal: {getattr(d, 'message', d)!r}; "
        f"stage now {state.stage}; trail tail {stack.actions(number)[-3:]}"
    )
    assert isinstance(r, str) or isinstance(d, str), report
    if isinstance(r, ActionResult):
        assert state.stage is DisputeStage.APPEAL_WINDOW, report


async def test_two_recusals_do_not_lower_the_quorum_that_opens_the_ballot(race: Stack) -> None:
    """SPEC 3: quorum is a majority of the panel (five seats: three). Two panelists recuse and no
    replacement exists; two vote. The chair must not be able to open the ballot on two votes,
    nor may two votes open it as 'every panelist has voted'."""
    stack = race
    number = await in_review(stack)
    for who in ("board.finance", "board.partners"):
        await stack.handle(number).execute_update(
            DisputeWorkflow.recuse,
            Recuse(actor=stack.actor(who), reason="A conflict I just found."),
        )
    await vote(stack, number, "board.sales", VoteOutcome.DENY)
    await vote(stack, number, "board.marketing", VoteOutcome.DENY)
    unseal = await try_update(
        stack,
        number,
        DisputeWorkflow.unseal_ballot,
        UnsealBallot(actor=stack.actor("board.chair"), reason="We need to move on with this."),
    )
    state = await stack.state(number)
    assert state.review is not None
    report = (
        f"unseal with 2 votes of a 5-seat panel: {getattr(unseal, 'message', unseal)!r}; "
        f"sealed={state.review.sealed}, quorum shown {state.review.quorum}"
    )
    assert str(unseal).startswith("REFUSED") and state.review.sealed, report


async def test_the_remaining_panelists_voting_do_not_open_a_ballot_with_vacant_seats(
    race: Stack,
) -> None:
    stack = race
    number = await in_review(stack)
    for who in ("board.product", "board.finance", "board.partners"):
        await stack.handle(number).execute_update(
            DisputeWorkflow.recuse,
            Recuse(actor=stack.actor(who), reason="A conflict I just found."),
        )
    await vote(stack, number, "board.sales", VoteOutcome.DENY)
    await vote(stack, number, "board.marketing", VoteOutcome.DENY)
    state = await stack.state(number)
    assert state.review is not None
    opened = [
        e.summary if hasattr(e, "summary") else e.content.get("summary")
        for e in stack.events(number)
        if e.action == "votes_unsealed"
    ]
    report = f"2 votes, 3 seats vacant: sealed={state.review.sealed}; opened by {opened}"
    assert state.review.sealed, report
