"""Each role's main journey in headless Chromium (Debian's, driven by Playwright), against the
app served by uvicorn over the real stack. Pages are used as a person would: links, forms,
buttons; no JavaScript is needed by the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import Browser, Page, Route, expect

from models.enums import (
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    Role,
    TaskKind,
    TaskState,
)
from models.tables import Assignment, Dispute, DisputeParty, PanelSeat, Task
from tests.conftest import Stack
from tests.web_harness import PASSWORD, make_app, served
from tests.workflows.test_dispute_paths import contoso_asked, in_mediation
from tests.workflows.test_formal_review import PANEL, REASONS, in_review

EMAIL = {
    "board.sales": "b.sales@vendor.example",
    "board.marketing": "m.marketing@vendor.example",
    "board.product": "p.product@vendor.example",
    "board.finance": "f.finance@vendor.example",
    "board.partners": "p.partners@vendor.example",
}


CSP_VIOLATIONS: list[str] = []
"""What Chromium reported refusing under the Content-Security-Policy during a test."""


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    """Every journey runs under the app's CSP: a page needing anything it forbids (an inline
    style or script, a resource from elsewhere) fails the test that showed it."""
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == []


def watch_csp(page: Page) -> None:
    # Chromium reports a CSP refusal as a console error, with or without JavaScript enabled.
    page.on(
        "console",
        lambda message: (
            CSP_VIOLATIONS.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )


async def sign_in(chromium: Browser, base: str, login: str, *, javascript: bool = False) -> Page:
    context = await chromium.new_context(base_url=base, java_script_enabled=javascript)
    page = await context.new_page()
    watch_csp(page)
    await page.goto("/login")
    await page.get_by_label("Email").fill(login)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(
        page.get_by_role("link", name="Sign out").or_(page.get_by_text("Sign out"))
    ).to_be_visible()
    return page


async def mediating(stack: Stack) -> str:
    """A dispute whose mediator has accepted, with that recorded."""
    number = (await stack.file()).number
    await in_mediation(stack, number)
    await stack.wait_for_event(number, "assignment_accepted")
    return number


async def act(page: Page, summary: str) -> None:
    """Open an action's form on the dispute page."""
    await page.locator("summary", has_text=summary).click()


async def test_partner_files_a_dispute_with_evidence(
    stack: Stack, chromium: Browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(stack)
    evidence = tmp_path / "registration.pdf"
    evidence.write_bytes(b"%PDF-1.4\n% registration of DR-2026-0042\n")
    async with served(app) as base:
        page = await sign_in(chromium, base, "nora@northwind.example")
        await page.get_by_role("link", name="File a dispute").click()
        form = page.locator("form.card")
        await form.get_by_label("Against (respondents)").select_option("contoso")
        await form.get_by_label("Category").select_option("deal_registration")
        await page.get_by_label("kind of object 1").select_option("deal_registration")
        await page.get_by_label("reference of object 1").fill("DR-2026-0042")
        await form.get_by_label("Summary").fill("Bad")
        await form.get_by_label("Facts").fill(
            "We registered DR-2026-0042 on 2 November; Contoso later."
        )
        await form.get_by_label("Remedy you seek").fill("Registration confirmed to Northwind")
        await form.get_by_label("Amount at stake").fill("125000")
        await form.get_by_label("When it happened").fill("2026-11-20")
        await page.locator("input[type=file]").set_input_files(str(evidence))
        await page.get_by_role("button", name="File the dispute").click()
        # Too short a summary: the field says why, and everything typed is still there.
        await expect(page.locator(".field-error").first).to_contain_text("at least 5 characters")
        await expect(form.get_by_label("Facts")).to_have_value(
            re.compile("registered DR-2026-0042")
        )
        await form.get_by_label("Summary").fill("Contoso registered our Acme deal after we did")
        await page.locator("input[type=file]").set_input_files(str(evidence))
        await page.get_by_role("button", name="File the dispute").click()
        await expect(page.locator(".flash")).to_contain_text("filed as DSP-")
        await expect(page.get_by_role("link", name="registration.pdf")).to_be_visible()
        number = (await page.locator("h1").inner_text()).split()[0]
        await page.get_by_role("link", name="My disputes").click()
        await expect(page.get_by_role("link", name=number)).to_be_visible()
        await page.get_by_role("link", name=number).click()
        await page.get_by_role("link", name="Timeline").click()
        await expect(page.locator("ol.timeline")).to_contain_text("filed")
        await expect(page.locator(".countdown").first).to_contain_text("left")


async def test_mediator_works_the_case_from_the_inbox_to_settlement(
    stack: Stack, chromium: Browser
) -> None:
    app = make_app(stack)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    await stack.wait_for_event(number, "mediator_offered")
    mediator = f"{state.candidate_mediator_id}@vendor.example"
    async with served(app) as base:
        page = await sign_in(chromium, base, mediator)
        row = page.locator("tr", has_text=number)
        await expect(row).to_contain_text("on time")
        await row.get_by_role("link", name=number).click()
        await act(page, "Accept assignment")
        await page.get_by_label("Impartiality declaration").fill("No ties to either party.")
        await page.get_by_role("button", name="Accept assignment").click()
        await expect(page.locator(".flash")).to_contain_text("mediation has begun")
        await act(page, "Add note")
        note_form = page.locator("#action-add-note form")
        await note_form.get_by_label("Note").fill("Caucus: Northwind would take 70%.")
        await note_form.get_by_label("Shared with").select_option("caucus")
        await note_form.get_by_label("Caucus side").select_option("northwind")
        await note_form.get_by_role("button", name="Add note").click()
        await expect(page.locator(".note.caucus")).to_contain_text("Northwind would take 70%")
        await act(page, "Propose settlement")
        offer = page.locator("#action-propose-settlement form")
        await offer.get_by_label("Terms").fill("Northwind keeps the deal; Contoso gets 30%.")
        await offer.get_by_label("remedy 1 kind").select_option("commission_split")
        await offer.get_by_label("remedy 1 deal ref").fill("DR-2026-0042")
        await offer.get_by_label("remedy 1 shares").fill("northwind=70, contoso=30")
        await offer.get_by_role("button", name="Propose settlement").click()
        await expect(page.locator(".flash")).to_contain_text("offer-1")
        for party in ("nora@northwind.example", "carl@contoso.example"):
            partner = await sign_in(chromium, base, party)
            await partner.goto(f"/disputes/{number}")
            if party.startswith("carl"):
                await expect(partner.locator("body")).not_to_contain_text("Northwind would take")
            await act(partner, "Respond to offer")
            await partner.get_by_label("accept").check()
            await partner.locator("#action-respond-to-offer button").click()
            await expect(partner.locator(".flash")).to_contain_text("accepted")
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.CLOSED)


async def test_board_votes_under_seal_and_the_chair_rules(stack: Stack, chromium: Browser) -> None:
    app = make_app(stack)
    number = await in_review(stack)
    await stack.wait_for_event(number, "panel_drawn")
    async with served(app) as base:
        for member in PANEL[:3]:
            page = await sign_in(chromium, base, EMAIL[member])
            await expect(page.locator("h1")).to_contain_text("Review queue")
            await page.locator("tr", has_text=number).get_by_role("link", name=number).click()
            await act(page, "Cast sealed vote")
            ballot = page.locator("#action-cast-vote form")
            await ballot.get_by_label("Vote").select_option("uphold")
            await ballot.get_by_label("Written reasons").fill(REASONS)
            await ballot.get_by_label("remedy 1 kind").select_option("commission_split")
            await ballot.get_by_label("remedy 1 deal ref").fill("DR-2026-0042")
            await ballot.get_by_label("remedy 1 shares").fill("northwind=80, contoso=20")
            await ballot.get_by_role("button", name="Cast sealed vote").click()
            await expect(page.locator(".flash")).to_contain_text("vote")
            await expect(page.locator("body")).to_contain_text("voted (sealed)")
        chair = await sign_in(chromium, base, "c.chair@vendor.example")
        await chair.goto(f"/disputes/{number}")
        # Three of five have voted: the chair opens the ballot, with a reason, before ruling.
        await act(chair, "Open the ballot")
        opening = chair.locator("#action-unseal-ballot form")
        await opening.get_by_label("Reason").fill("A quorum has voted and the deadline is close.")
        await opening.get_by_role("button", name="Open the ballot").click()
        await expect(chair.locator(".flash")).to_contain_text("Open the ballot")
        await act(chair, "Issue ruling")
        form = chair.locator("#action-issue-ruling form")
        await form.get_by_label("Ruling").select_option("uphold")
        await form.get_by_label("Rationale").fill(
            "The first valid registration wins under RoE 3.1; the claimant registered first."
        )
        await form.get_by_label("remedy 1 kind").select_option("commission_split")
        await form.get_by_label("remedy 1 deal ref").fill("DR-2026-0042")
        await form.get_by_label("remedy 1 shares").fill("northwind=80, contoso=20")
        await form.get_by_label("Beatrice Sales").check()
        await form.locator("input[name=clauses_applied]").first.check()
        await form.get_by_role("button", name="Issue ruling").click()
        await expect(chair.locator(".flash")).to_contain_text("Issue ruling")
        # The page the chair lands on shows the stage the ruling leads to, without a reload
        # (the answer waits for the read model to record it).
        await expect(chair.locator(".stage").first).to_contain_text("appeal window")


async def test_compliance_filters_reads_the_audit_trail_and_exports(
    stack: Stack, chromium: Browser
) -> None:
    app = make_app(stack)
    number = await mediating(stack)
    async with served(app) as base:
        page = await sign_in(chromium, base, "carol.compliance@vendor.example")
        await page.get_by_label("Stage").select_option("mediation")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("link", name=number)).to_be_visible()
        await page.get_by_label("Stage").select_option("closed")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("main")).to_contain_text("No disputes match")
        await page.goto(f"/disputes/{number}")
        await expect(page.locator(".actions")).to_have_count(0)  # read-only
        await page.get_by_role("link", name="Audit trail").click()
        await expect(page.locator(".ok")).to_contain_text("Hash chain intact")
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="CSV").click()
        download = await download_info.value
        assert download.suggested_filename == f"{number}-audit.csv"


async def test_admin_edits_the_directory_and_extends_a_deadline(
    stack: Stack, chromium: Browser
) -> None:
    app = make_app(stack)
    number = await mediating(stack)
    async with served(app) as base:
        page = await sign_in(chromium, base, "ada.admin@vendor.example")
        await page.get_by_role("link", name="Directory").click()
        await page.get_by_label("case limit of kenji.sato").fill("3")
        await page.locator("tr", has_text="kenji.sato").get_by_role("button", name="Save").click()
        await expect(page.locator(".flash")).to_contain_text("kenji.sato updated")
        await expect(page.get_by_label("case limit of kenji.sato")).to_have_value("3")
        await page.get_by_role("link", name="Playbook").click()
        await expect(page.locator("main")).to_contain_text("RoE 3.1")
        await page.goto(f"/disputes/{number}")
        await act(page, "Extend deadline")
        form = page.locator("#action-extend-deadline form")
        # The form names the deadline it extends (refused if another is running by then).
        await expect(form.get_by_label("Deadline")).to_have_value("mediation")
        await form.get_by_label("Business days").fill("3")
        await form.get_by_label("Reason (goes into the audit trail)").fill("Parties asked for time")
        await form.get_by_role("button", name="Extend deadline").click()
        await expect(page.locator(".flash")).to_contain_text("Extend deadline")
        await page.get_by_role("link", name="Timeline").click()
        await expect(page.locator("ol.timeline")).to_contain_text("Parties asked for time")


async def test_the_api_docs_render_without_internet(stack: Stack, chromium: Browser) -> None:
    """Every request that leaves the server is refused: Swagger UI still renders the
    operations, from the assets this server serves."""
    app = make_app(stack)
    async with served(app) as base:
        context = await chromium.new_context(base_url=base)
        blocked: list[str] = []

        async def only_local(route: Route) -> None:
            if route.request.url.startswith(base):
                await route.continue_()
            else:
                blocked.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_local)
        page = await context.new_page()
        await page.goto("/api/docs")
        await expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        await expect(page.locator(".opblock-summary-path").first).to_contain_text("/api/")
        assert await page.locator(".opblock").count() > 20
        assert blocked == []
        await context.close()


async def test_pages_with_javascript_run_their_script_and_break_no_security_policy(
    stack: Stack, chromium: Browser
) -> None:
    """The journeys above run without JavaScript, as the app must work; with it, the pages'
    one script (deadline countdowns) runs under the CSP and nothing is refused."""
    app = make_app(stack)
    number = await mediating(stack)
    async with served(app) as base:
        page = await sign_in(chromium, base, "ada.admin@vendor.example", javascript=True)
        for path in (
            "/inbox",
            "/disputes",
            f"/disputes/{number}",
            f"/disputes/{number}/timeline",
            "/admin/directory",
            "/reports/sla",
            "/reports/channel-health",
            "/precedents",
            "/search",
            "/account",
            "/disputes/DSP-0000-000000",
        ):
            await page.goto(path)
        # The script was fetched and allowed to run (a refusal would be a CSP violation).
        async with page.expect_response(re.compile(r"/static/countdown\.js$")) as script:
            await page.goto(f"/disputes/{number}")
        assert (await script.value).ok
        countdown = page.locator(".countdown[data-due]").first
        await expect(countdown).to_have_text(re.compile(r"(left|overdue by .*)$"))
    assert CSP_VIOLATIONS == []


# --- the work queue: each role signs in, sees its queue, sorts, filters and opens a task -------


def queue_row(
    stack: Stack,
    number: str,
    *,
    person: str | None,
    kind: TaskKind,
    category: DisputeCategory = DisputeCategory.PRICING,
    stage: DisputeStage = DisputeStage.MEDIATION,
    amount: str = "900000",
    due: datetime | None = None,
) -> None:
    """A second dispute in the read model with an open task for `person` (None: the admins),
    whom the access rules let see it: the queue reads the read model alone."""
    now = datetime.now(UTC)
    with stack.sessions.begin() as session:
        session.add(
            Dispute(
                number=number,
                category=category,
                claimant_id="northwind",
                respondent_ids=["adatum"],
                party_key="adatum|northwind",
                contested_objects=[{"kind": "account", "ref": "ACME-9"}],
                summary="Adatum quoted below the floor price",
                facts="Adatum quoted below the floor price to Acme.",
                desired_remedy="A rebate",
                amount_at_stake=Decimal(amount),
                currency="EUR",
                occurred_on=now.date(),
                stage=stage,
                playbook_version="2026.1",
                filed_by="nora@northwind.example",
                filed_at=now - timedelta(days=3),
                updated_at=now,
            )
        )
        session.flush()
        for partner, side in (("northwind", "claimant"), ("adatum", "respondent")):
            session.add(DisputeParty(dispute_number=number, partner_id=partner, side=side))
        if kind is TaskKind.MEDIATE and person:
            session.add(
                Assignment(
                    dispute_number=number,
                    round=1,
                    person_id=person,
                    state=AssignmentState.ACCEPTED,
                    assigned_at=now,
                )
            )
        if kind is TaskKind.CAST_VOTE and person:
            session.add(
                PanelSeat(
                    dispute_number=number,
                    review_round=1,
                    seat=person,
                    person_id=person,
                    seated_at=now,
                )
            )
        session.add(
            Task(
                key=f"{number}:queue-test",
                dispute_number=number,
                kind=kind,
                title=f"{kind.value}: {number}",
                assignee_id=person,
                assignee_role=Role.ADMIN if person is None else Role.MEDIATOR,
                due_at=due,
                state=TaskState.OPEN,
                created_at=now - timedelta(days=2),
            )
        )


async def row_numbers(page: Page) -> list[str]:
    cells = page.locator("table.queue tbody tr td:nth-child(3) a")
    return [await cells.nth(i).inner_text() for i in range(await cells.count())]


async def test_mediator_works_from_the_queue(stack: Stack, chromium: Browser) -> None:
    app = make_app(stack)
    number, mediator = await contoso_asked(stack, "When did you register?")
    other = "DSP-2026-900001"
    queue_row(
        stack,
        other,
        person=mediator,
        kind=TaskKind.MEDIATE,
        due=datetime.now(UTC) - timedelta(hours=1),
    )
    async with served(app) as base:
        page = await sign_in(chromium, base, f"{mediator}@vendor.example")
        await expect(page.locator("h1")).to_contain_text("Task inbox")
        row = page.locator("tr", has_text=number)
        await expect(row).to_contain_text("Northwind Traders v Contoso Systems")
        await expect(row).to_contain_text("answer to information request from Contoso Systems")
        await expect(row).to_contain_text("deal registration")
        await expect(row).to_contain_text("USD 125,000.00")
        overdue = page.locator("tr", has_text=other)
        await expect(overdue).to_contain_text("overdue")
        await expect(overdue).to_contain_text("Northwind Traders v Adatum GmbH")
        assert await row_numbers(page) == [other, number]  # the overdue task first
        # Sort by amount: largest first, then the heading again for smallest first.
        await page.get_by_role("link", name="Amount").click()
        await expect(page.locator("th[aria-sort=descending]")).to_contain_text("Amount")
        assert await row_numbers(page) == [other, number]
        await page.get_by_role("link", name="Amount").click()
        await expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Amount")
        assert await row_numbers(page) == [number, other]
        # Filter with the form: by category, then by deadline state.
        await page.get_by_label("Category").select_option("deal_registration")
        await page.get_by_role("button", name="Show").click()
        assert await row_numbers(page) == [number]
        await page.get_by_label("Category").select_option("")
        await page.get_by_label("Deadline").select_option("overdue")
        await page.get_by_role("button", name="Show").click()
        assert await row_numbers(page) == [other]
        await page.get_by_label("Deadline").select_option("")
        await page.get_by_role("button", name="Show").click()
        # Open the task.
        await page.locator("tr", has_text=number).get_by_role("link", name=number).click()
        await expect(page.locator("h1")).to_contain_text(number)


async def test_board_member_works_from_the_review_queue(stack: Stack, chromium: Browser) -> None:
    app = make_app(stack)
    number = await in_review(stack)
    await stack.wait_for_event(number, "panel_drawn")
    other = "DSP-2026-900002"
    queue_row(stack, other, person=PANEL[0], kind=TaskKind.CAST_VOTE, amount="1000")
    async with served(app) as base:
        page = await sign_in(chromium, base, EMAIL[PANEL[0]])
        await expect(page.locator("h1")).to_contain_text("Review queue")
        row = page.locator("tr", has_text=number)
        await expect(row).to_contain_text("your vote")
        await expect(row).to_contain_text("formal review")
        await expect(row).to_contain_text("Northwind Traders v Contoso Systems")
        assert await row_numbers(page) == [number, other]  # the one without deadline last
        await page.get_by_role("link", name="Stage").click()
        await expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Stage")
        assert await row_numbers(page) == [other, number]  # mediation comes before review
        await page.get_by_label("Stage").select_option("formal_review")
        await page.get_by_role("button", name="Show").click()
        assert await row_numbers(page) == [number]
        await page.get_by_role("link", name="Clear").click()
        assert await row_numbers(page) == [number, other]
        chair = await sign_in(chromium, base, "c.chair@vendor.example")
        await expect(chair.locator("tr", has_text=number)).to_contain_text("a vote from the panel:")
        await page.locator("tr", has_text=number).get_by_role("link", name=number).click()
        await expect(page.locator("h1")).to_contain_text(number)
        await expect(page.locator("summary", has_text="Cast sealed vote")).to_be_visible()


async def test_admin_works_from_the_admins_tasks(stack: Stack, chromium: Browser) -> None:
    app = make_app(stack)
    number = await mediating(stack)
    queue_row(stack, "DSP-2026-900003", person=None, kind=TaskKind.RESOLVE_REMEDY)
    queue_row(
        stack,
        "DSP-2026-900004",
        person=None,
        kind=TaskKind.ASSIGN_MEDIATOR,
        amount="50",
        category=DisputeCategory.TERRITORY,
        stage=DisputeStage.TRIAGE,
    )
    async with served(app) as base:
        page = await sign_in(chromium, base, "ada.admin@vendor.example")
        await expect(page.locator("h1")).to_contain_text("Task inbox")
        await expect(page.locator("tr", has_text="DSP-2026-900003")).to_contain_text(
            "your retry or waiver of the failing remedy"
        )
        # The mediator's task is theirs, not the admins'.
        await expect(page.locator("table.queue")).not_to_contain_text(number)
        await page.get_by_role("link", name="Amount").click()
        assert await row_numbers(page) == ["DSP-2026-900003", "DSP-2026-900004"]
        await page.get_by_role("link", name="Category").click()
        assert await row_numbers(page) == ["DSP-2026-900003", "DSP-2026-900004"]
        await page.get_by_label("Task").select_option("assign_mediator")
        await page.get_by_role("button", name="Show").click()
        assert await row_numbers(page) == ["DSP-2026-900004"]
        await expect(page.locator("tr", has_text="DSP-2026-900004")).to_contain_text(
            "your choice of a mediator"
        )
        # A bad value typed into the address: a 400 page naming the parameter.
        response = await page.goto("/inbox?sla=soonish")
        assert response is not None and response.status == 400
        await expect(page.locator("main")).to_contain_text("sla")
        await page.goto("/inbox?kind=assign_mediator")
        await page.get_by_role("link", name="DSP-2026-900004").click()
        await expect(page.locator("h1")).to_contain_text("DSP-2026-900004")


async def test_partner_works_from_the_queue_and_sees_no_task_of_the_other_side(
    stack: Stack, chromium: Browser
) -> None:
    app = make_app(stack)
    number, _ = await contoso_asked(stack, "When did you register?")
    async with served(app) as base:
        page = await sign_in(chromium, base, "carl@contoso.example")
        await page.get_by_role("link", name="My tasks").click()
        await expect(page.locator("h1")).to_contain_text("Task inbox")
        row = page.locator("tr", has_text=number)
        await expect(row).to_contain_text("your answer to the information request")
        await expect(row).to_contain_text("Northwind Traders v Contoso Systems")
        await expect(row).to_contain_text("awaiting a party")
        await expect(row).to_contain_text("USD 125,000.00")
        await page.get_by_label("Task").select_option("answer_information")
        await page.get_by_role("button", name="Show").click()
        assert await row_numbers(page) == [number]
        await page.locator("tr", has_text=number).get_by_role("link", name=number).click()
        await expect(page.locator("h1")).to_contain_text(number)
        # The other side's queue holds nothing of Contoso's: the task is Contoso's alone.
        claimant = await sign_in(chromium, base, "nora@northwind.example")
        await claimant.get_by_role("link", name="My tasks").click()
        await expect(claimant.locator("h1")).to_contain_text("Task inbox")
        await expect(claimant.locator("main")).not_to_contain_text(number)
