"""Adversarial probes of issue 16 items 2 and 4: what the ruling, appeal, shortage and
outcome emails say, and what the board's page and `accord show` list, on the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from models.enums import DisputeStage, TaskKind, VoteOutcome
from models.payloads import (
    Appeal,
    CastVote,
    CommissionSplit,
    CoSellingResources,
    DeclareImpasse,
    EvidenceRef,
    IssueRuling,
    LeadReroute,
    MdfCredit,
    RebateAdjustment,
    TerritoryReassignment,
    WrittenWarning,
)
from tests.conftest import (
    MailCapture,
    Stack,
    seed,
    stack_with_webhook,
)
from tests.web_harness import Browser, make_app
from tests.webhook_receiver import Receiver
from tests.workflows.test_dispute_paths import in_mediation, settled
from tests.workflows.test_formal_review import (
    ADMINS,
    PANEL,
    appoint_alternates_and_redraw,
    open_ballot,
)
from workflows.dispute import DisputeWorkflow

EVERY_REMEDY = (
    TerritoryReassignment(
        territory_code="US-NY-METRO",
        from_partner_id="northwind",
        to_partner_id="contoso",
        effective_on=date(2027, 1, 15),
    ),
    CommissionSplit(
        deal_ref="DR-2026-0042",
        shares={"northwind": Decimal("62.5"), "contoso": Decimal("37.5")},
    ),
    RebateAdjustment(partner_id="contoso", amount=Decimal("-1234.56"), currency="EUR"),
    CoSellingResources(partner_id="northwind", resource="solutions engineer", hours=40),
    LeadReroute(lead_ref="LEAD-77", to_partner_id="northwind"),
    MdfCredit(partner_id="northwind", amount=Decimal("5000"), currency="GBP"),
    WrittenWarning(partner_id="contoso", text="<b>Register</b> deals before you work them & <i>"),
)
EVERY_LINE = (
    "Territory New York Metro (US-NY-METRO) moves from Northwind Traders to Contoso Systems",
    "Commission split on deal DR-2026-0042: Northwind Traders 62.5%, Contoso Systems 37.5%",
    "Rebate reduced by EUR 1,234.56 for Contoso Systems",
    "Co-selling resources for Northwind Traders: 40 hours of solutions engineer",
    "Lead LEAD-77 is rerouted to Northwind Traders",
    "MDF credit of GBP 5,000.00 to Northwind Traders",
    "Written warning to Contoso Systems: <b>Register</b> deals before you work them & <i>",
)


@pytest.fixture
async def webhook_stack(
    env: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[Stack]:
    """test_remedy_stage's stack whose commission splits go to a webhook, on both databases."""
    async with stack_with_webhook(env, database_url, smtp, tmp_path, receiver) as harness:
        yield harness


REASONS = "Both parties broke the rules of engagement in different ways here."


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


async def in_review_of_other(stack: Stack) -> str:
    """In review, filed under 'other' (every remedy kind allowed)."""
    number = (await stack.file(category="other")).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    await stack.wait_for(
        number,
        lambda s: s.review is not None and any(d.purpose == "review" for d in s.deadlines),
    )
    return number


async def ruled_with_every_remedy(stack: Stack) -> str:
    number = await in_review_of_other(stack)
    handle = stack.handle(number)
    for who in PANEL[:3]:
        await handle.execute_update(
            DisputeWorkflow.cast_vote,
            CastVote(
                actor=stack.actor(who),
                outcome=VoteOutcome.PARTLY_UPHOLD,
                remedies=EVERY_REMEDY,
                reasons=REASONS,
            ),
        )
    await open_ballot(stack, number)
    await handle.execute_update(
        DisputeWorkflow.issue_ruling,
        IssueRuling(
            actor=stack.actor("board.chair"),
            outcome=VoteOutcome.PARTLY_UPHOLD,
            remedies=EVERY_REMEDY,
            rationale=REASONS,
            votes_relied_on=("board.sales",),
            clauses_applied=("RoE 1.5",),
        ),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    return number


async def appealed_to_a_fresh_panel(stack: Stack) -> str:
    """A dispute ruled with every remedy and appealed by Contoso; short of a fresh panel until
    the alternates are appointed and it is redrawn, which is done: round 2's panel is seated."""
    number = await ruled_with_every_remedy(stack)
    await stack.handle(number).execute_update(
        DisputeWorkflow.appeal,
        Appeal(
            actor=stack.actor("carl@contoso.example"),
            grounds=GROUNDS,
            new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
        ),
    )
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    await appoint_alternates_and_redraw(stack, number)
    await stack.wait_for(number, lambda s: s.review is not None and s.review.round == 2)
    return number


async def test_the_ruling_email_and_the_board_page_state_every_remedy_in_words(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number = await ruled_with_every_remedy(stack)
    for party in ("nora@northwind.example", "carl@contoso.example"):
        mail = await stack.mail.wait_for(party, "appeal window open")
        text = plain(mail)
        deadline = text.index("appeal once")
        for line in EVERY_LINE:
            assert line in text, (line, text.replace("\r", ""))
            assert text.index(line) < deadline
        page = html(mail)
        assert "<b>Register</b>" not in page and "&lt;b&gt;Register&lt;/b&gt;" in page
    browser = Browser(make_app(stack))
    await browser.sign_in("b.sales@vendor.example")
    page = (await browser.get(f"/disputes/{number}")).text
    assert "Paula Partners (partner management)" in page
    for line in EVERY_LINE:
        escaped = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in page, line


async def test_the_outcome_email_says_what_was_agreed_and_what_was_applied(
    stack_on_both: Stack,
) -> None:
    from tests.cli.test_cli import accord

    stack = stack_on_both
    number = await settled(stack)
    await stack.mail_settled()
    split = "Commission split on deal DR-2026-0042: Northwind Traders 70%, Contoso Systems 30%"
    for party in ("nora@northwind.example", "carl@contoso.example"):
        mails = [m for m in stack.mail.to(party) if "Settled" in str(m["Subject"])]
        assert len(mails) == 1, stack.mail.subjects(party)
        text = plain(mails[0])
        settled_part, _, rest = text.partition("* * *")
        # The settlement part says what was agreed; the remedy-applied part which remedy it was.
        assert split in settled_part, text
        assert split in rest.partition("* * *")[0], text
    # The dispute's page lists the remedies applied with their shares, not 'Commission split'.
    browser = Browser(make_app(stack))
    await browser.sign_in("nora@northwind.example")
    page = (await browser.get(f"/disputes/{number}")).text
    section = page[page.index("<h2>Remedies</h2>") :]
    assert split in section.partition("</section>")[0], section[:600]
    code, out = await accord(stack, "show", number)
    assert code == 0 and f"remedy       1: {split}, verified" in out, out


GROUNDS = (
    "<script>alert('x')</script> The ruling & its <b>remedies</b> are wrong.\n\n"
    "Second paragraph: \u202eevil\u202c and \u05e9\u05dc\u05d5\u05dd, \U0001f600.\n"
    + "The portal record shows otherwise. " * 400
    + "END-OF-GROUNDS"
)


def panel_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith("panel ")]


async def test_the_appeal_shortage_and_invitation_say_what_the_reader_decides(
    stack_on_both: Stack,
) -> None:
    from accord.directory.records import Directory, PersonRecord
    from models.enums import Role
    from models.payloads import Recuse
    from tests.cli.test_cli import accord

    stack = stack_on_both
    number = await ruled_with_every_remedy(stack)
    # A board member who declared a conflict with Contoso, and one no longer active.
    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id="conf.sales",
                    name="Conflicted Sales",
                    email="conf.sales@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="sales",
                    declared_conflicts=["contoso"],
                ),
                PersonRecord(
                    id="gone.product",
                    name="Gone Product",
                    email="gone.product@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="product",
                    active=False,
                ),
            ]
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.appeal,
        Appeal(
            actor=stack.actor("carl@contoso.example"),
            grounds=GROUNDS,
            new_evidence=(EvidenceRef(description="Portal <audit> log", ref="DOC-991"),),
        ),
    )
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    code, out = await accord(stack, "show", number)
    assert code == 0 and panel_lines(out) == [], out
    shortage = plain(await stack.mail.wait_for(ADMINS, "redraw the review panel"))
    flat = " ".join(shortage.split())
    assert "under appeal" in flat and f"accord redraw-panel {number}" in flat
    assert "accord assign" not in flat and "no eligible mediator" not in flat
    for reason in (
        "Beatrice Sales sat on the first panel",
        "Charles Chair sat on the first panel",
        "Conflicted Sales declared a conflict with Contoso Systems",
        "Gone Product is not active",
    ):
        assert reason in flat, (reason, shortage)
    assert "recused or let" not in flat
    assert "partner management" in flat and "partner_management" not in flat, flat

    await appoint_alternates_and_redraw(stack, number)
    await stack.wait_for(number, lambda s: s.review is not None and s.review.round == 2)
    invitation = await stack.mail.wait_for("alt.sales@vendor.example", "appeal panel")
    text = plain(invitation).replace("\r\n", "\n")
    assert "Contoso Systems appealed" in text
    assert GROUNDS in text, text[:2000]
    page = html(invitation)
    assert "<script>" not in page and "&lt;script&gt;" in page and "END-OF-GROUNDS" in page
    assert "Portal &lt;audit&gt; log" in page
    code, out = await accord(stack, "show", number)
    (line,) = panel_lines(out)
    assert "round 2" in line and "Beatrice" not in line and "Alt Sales" in line, out

    # A member of the fresh panel recuses: nobody is left for the seat; show still lists only
    # round 2's panel, and the admins are told why each sales member is out.
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("alt.sales"), reason="I used to work at Contoso."),
    )
    await stack.wait_for_event(number, "panel_incomplete", count=2)
    code, out = await accord(stack, "show", number)
    lines = panel_lines(out)
    assert all("Beatrice" not in line and "Alt Sales" not in line for line in lines), out
    await stack.mail_settled()
    second = [
        plain(m) for m in stack.mail.to(ADMINS) if "redraw the review panel" in str(m["Subject"])
    ]
    assert len(second) == 2, stack.mail.subjects(ADMINS)
    flat = " ".join(second[1].split())
    for reason in (
        "Alt Sales recused from this panel",
        "Beatrice Sales sat on the first panel",
        "Conflicted Sales declared a conflict with Contoso Systems",
    ):
        assert reason in flat, (reason, second[1].replace("\r", ""))


async def test_the_final_ruling_its_remedies_and_the_closure_reach_each_party_once(
    stack: Stack,
) -> None:
    from tests.cli.test_cli import accord

    number = await appealed_to_a_fresh_panel(stack)
    handle = stack.handle(number)
    for who in ("alt.sales", "alt.marketing", "alt.product"):
        await handle.execute_update(
            DisputeWorkflow.cast_vote,
            CastVote(
                actor=stack.actor(who),
                outcome=VoteOutcome.UPHOLD,
                remedies=EVERY_REMEDY,
                reasons=REASONS,
            ),
        )
    await open_ballot(stack, number, chair="alt.chair")
    await stack.mail_settled()
    before = {p: len(stack.mail.to(p)) for p in ("nora@northwind.example", "carl@contoso.example")}
    await handle.execute_update(
        DisputeWorkflow.issue_ruling,
        IssueRuling(
            actor=stack.actor("alt.chair"),
            outcome=VoteOutcome.UPHOLD,
            remedies=EVERY_REMEDY,
            rationale=REASONS,
            votes_relied_on=("alt.sales",),
            clauses_applied=("RoE 1.5",),
        ),
    )
    outcome = await handle.result()
    assert outcome.stage is DisputeStage.CLOSED
    await stack.mail_settled()
    for party, count in before.items():
        after = stack.mail.to(party)[count:]
        assert len(after) == 1, [str(m["Subject"]) for m in after]
        text = plain(after[0])
        for line in EVERY_LINE:
            assert text.count(line) >= 2, (line, text)  # awarded, then applied
        assert "is closed" in text and "Final ruling" in str(after[0]["Subject"])
    code, out = await accord(stack, "show", number)
    (line,) = panel_lines(out)
    assert code == 0 and "round 2" in line and "Beatrice" not in line, out


async def test_a_remedy_waived_between_is_said_to_the_parties_and_the_failure_names_it(
    webhook_stack: Stack,
    receiver: Receiver,
) -> None:
    from models.payloads import WaiveRemedy
    from tests.workflows.test_remedy_stage import settle

    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    split = "Commission split on deal DR-2026-0042: Northwind Traders 70%, Contoso Systems 30%"
    failed = plain(await stack.mail.wait_for(ADMINS, "could not be applied"))
    assert split in failed, failed
    # The admins' retry and waive forms name the failed remedy in words too.
    await stack.live_matches(number)
    browser = Browser(make_app(stack))
    await browser.sign_in("ada.admin@vendor.example")
    page = (await browser.get(f"/disputes/{number}")).text
    assert f">1: {split} (failed)</option>" in page
    await stack.handle(number).execute_update(
        DisputeWorkflow.waive_remedy,
        WaiveRemedy(
            actor=stack.actor("alex.admin"),
            position=0,
            reason="Commission paid by hand in the December run",
        ),
    )
    await stack.handle(number).result()
    await stack.mail_settled()
    for party in ("nora@northwind.example", "carl@contoso.example"):
        closed = [m for m in stack.mail.to(party) if "losed" in str(m["Subject"])]
        assert len(closed) == 1, stack.mail.subjects(party)
        text = " ".join(plain(closed[0]).split())
        # The party was told the split was agreed; the close says it was waived, and why.
        assert "waived" in text and "December run" in text and split in text, text


async def test_a_ruling_that_denies_awards_nothing_and_says_nothing_will_be_applied(
    stack: Stack,
) -> None:
    from tests.workflows.test_formal_review import in_review, ruling, vote

    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who, VoteOutcome.DENY)
    await open_ballot(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.issue_ruling, ruling(stack, VoteOutcome.DENY)
    )
    for party in ("nora@northwind.example", "carl@contoso.example"):
        mail = await stack.mail.wait_for(party, "appeal window open")
        for text in (" ".join(plain(mail).split()), " ".join(html(mail).split())):
            assert "No remedies are awarded." in text
            assert "remedies are then applied" not in text, text
            assert "appeal once" in text


async def test_a_replacement_on_the_appeal_panel_is_told_it_hears_an_appeal(stack: Stack) -> None:
    from accord.directory.records import Directory, PersonRecord
    from models.enums import Role
    from models.payloads import Recuse, RedrawPanel
    from tests.cli.test_cli import accord

    number = await appealed_to_a_fresh_panel(stack)
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("alt.chair"), reason="I chaired Contoso's partner council."),
    )
    await stack.wait_for_event(number, "panel_incomplete", count=2)
    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id="new.chair",
                    name="New Chair",
                    email="new.chair@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="chair",
                )
            ]
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.redraw_panel,
        RedrawPanel(actor=stack.actor("alex.admin"), reason="New chair appointed"),
    )
    invitation = await stack.mail.wait_for("new.chair@vendor.example", "panel")
    assert "appeal panel" in str(invitation["Subject"]), invitation["Subject"]
    text = plain(invitation).replace("\r\n", "\n")
    assert "Contoso Systems appealed" in text and GROUNDS in text
    code, out = await accord(stack, "show", number)
    (line,) = panel_lines(out)
    assert code == 0 and "round 2" in line and "chair New Chair" in line, out
    assert "Charles Chair" not in line and "Alt Chair" not in line, out


async def test_a_first_panel_seated_before_seats_were_kept_is_still_named_as_such(
    stack_on_both: Stack,
) -> None:
    """A dispute whose first panel was drawn before panel seats were stored (migration 0013):
    its appeal's shortage still says who sat on the first panel, from the audit trail."""
    from sqlmodel import delete

    from models.tables import PanelSeat
    from tests.workflows.test_formal_review import appeal_by_contoso, ruled

    stack = stack_on_both
    number = await ruled(stack)
    with stack.sessions.begin() as session:
        session.exec(delete(PanelSeat).where(PanelSeat.dispute_number == number))  # type: ignore[call-overload]
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal_by_contoso(stack))
    event = await stack.wait_for_event(number, "panel_incomplete")
    reason = event.content["reason"]
    assert "Beatrice Sales sat on the first panel" in reason, reason
    assert "Charles Chair sat on the first panel" in reason, reason
    assert "recused or let" not in reason, reason


async def test_the_chair_s_suggested_remedies_are_said_in_words(stack: Stack) -> None:
    number = await in_review_of_other(stack)
    for who in PANEL[:3]:
        await stack.handle(number).execute_update(
            DisputeWorkflow.cast_vote,
            CastVote(
                actor=stack.actor(who),
                outcome=VoteOutcome.UPHOLD,
                remedies=EVERY_REMEDY,
                reasons=REASONS,
            ),
        )
    await open_ballot(stack, number)
    await stack.live_matches(number)
    browser = Browser(make_app(stack))
    await browser.sign_in("c.chair@vendor.example")
    page = (await browser.get(f"/disputes/{number}")).text
    start = page.index("Suggested by the votes")
    suggested = page[start : page.index("</p>", start)]
    for line in EVERY_LINE:
        escaped = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in suggested, (line, suggested)
    assert "deal_ref" not in suggested and "{" not in suggested, suggested
    # The form's remedy kinds are said as everywhere else ('MDF credit', not 'mdf credit').
    assert '<option value="mdf_credit" >MDF credit</option>' in page, page[page.index("-kind") :][
        :800
    ]


async def test_the_overdue_remedy_email_names_each_outstanding_remedy_in_words(
    webhook_stack: Stack,
    receiver: Receiver,
) -> None:
    from datetime import timedelta

    from tests.workflows.test_remedy_stage import settle

    stack = webhook_stack
    receiver.refuse_with = 422
    number = await settle(stack)
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    due = next(d for d in state.deadlines if d.purpose == "remedy").due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(hours=1))
    overdue = plain(await stack.mail.wait_for(ADMINS, "remedy deadline"))
    split = "Commission split on deal DR-2026-0042: Northwind Traders 70%, Contoso Systems 30%"
    assert split in overdue, overdue
    assert f"accord waive-remedy {number} --position 1" in overdue


async def test_a_ruling_among_three_parties_says_any_party_may_appeal(stack: Stack) -> None:
    from tests.workflows.test_formal_review import ruling, vote

    number = (await stack.file(respondent_ids=["contoso", "fabrikam"])).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    await stack.wait_for(number, lambda s: s.review is not None)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    await stack.handle(number).execute_update(DisputeWorkflow.issue_ruling, ruling(stack))
    mail = await stack.mail.wait_for("fay@fabrikam.example", "appeal window open")
    text = " ".join(plain(mail).split())
    assert "Either party" not in text and "Any party may appeal" in text, text
    assert "one appeal in all" in text, text
