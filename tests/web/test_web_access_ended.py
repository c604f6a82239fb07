"""Access follows the current assignment (SPEC section 6, issue 15): the access matrix again for
the roles that END — a mediator released by an admin, one who recused, an offer declined or
let lapse, a panelist who recused and was replaced, the first panel once its ruling is appealed
— and for the mediator only offered a dispute, who reads the case summary and nothing
confidential. Each case is driven through the workflow as it happens, and tried on pages, API,
evidence downloads, lists, search and the task inbox, including what was written after they
left. On SQLite and on PostgreSQL: the scopes are SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlmodel import select

from accord.directory.records import Directory, PersonRecord
from models.enums import DisputeStage, InboundState, NoteVisibility, Role, TaskKind, TaskState
from models.payloads import (
    AcceptAssignment,
    AddNote,
    AssignMediator,
    Recuse,
)
from models.tables import Evidence, PanelSeat, Person, Task
from tests.conftest import Stack, seed
from tests.races import begin, outcome
from tests.web.test_web_access import CAUCUS_TEXT, CLAIMANT, RESPONDENT, SUMMARY, Scenario
from tests.web_harness import api, make_app, seed_accounts, signed_in, token_for
from tests.workflows.test_dispute_paths import DECLARATION, in_mediation, offered, split_offer
from tests.workflows.test_formal_review import (
    PANEL,
    appeal_by_contoso,
    appoint_alternates_and_redraw,
    in_review,
    ruled,
)
from workflows.dispute import DisputeWorkflow

FACTS = "Contoso registered the same opportunity a week later"
SHARED_NOTE = "Both parties agreed to a call on Monday about the Acme registration"
OFFER_TERMS = "Northwind keeps the registration; Contoso receives 30% of the commission."
LATER_CAUCUS = "Written after the release: Contoso would accept a 25 percent share"
ADMIN = "alex.admin"
MEDIATORS = ("kenji.sato", "sam.okafor", "greta.hoffmann", "maria.lopez")


def email_of(stack: Stack, person_id: str) -> str:
    with stack.sessions.read() as session:
        person = session.get(Person, person_id)
        assert person is not None
        return person.email


def evidence_ids(stack: Stack, number: str) -> dict[str, str]:
    with stack.sessions.read() as session:
        rows = session.exec(select(Evidence).where(Evidence.dispute_number == number)).all()
        return {e.filename: e.id for e in rows}


async def upload(app: FastAPI, login: str, number: str, filename: str, visibility: str) -> None:
    browser = await signed_in(app, login)
    response = await browser.post(
        f"/disputes/{number}/evidence",
        {"visibility": visibility, "description": filename},
        files={"files": (filename, f"contents of {filename}".encode(), "text/plain")},
    )
    await browser.close()
    assert response.status_code == 303, response.text


def declare_conflict(stack: Stack, person_id: str, partner_id: str) -> None:
    """The reason an admin releases a mediator; it also keeps the triage loop from offering
    the dispute to them again, so what they see afterwards is the released view alone."""
    with stack.sessions.begin() as session:
        person = session.get(Person, person_id)
        assert person is not None
        person.declared_conflicts = [*person.declared_conflicts, partner_id]
        session.add(person)


class Probe:
    """Everything one person can ask about one dispute, through the pages and the API."""

    def __init__(self, stack: Stack, app: FastAPI, number: str) -> None:
        self.stack = stack
        self.app = app
        self.number = number

    async def responses(self, login: str) -> dict[str, tuple[int, str]]:
        n = self.number
        found: dict[str, tuple[int, str]] = {}
        ids = evidence_ids(self.stack, n)
        browser = await signed_in(self.app, login)
        pages = {
            "page dispute": f"/disputes/{n}",
            "page timeline": f"/disputes/{n}/timeline",
            "page list": "/disputes",
            "page list by party": "/disputes?party=northwind",
            "page search": "/search?q=Contoso",
            "page search by number": f"/search?q={n}",
            "page inbox": "/inbox",
            **{f"page evidence {name}": f"/disputes/{n}/evidence/{i}" for name, i in ids.items()},
        }
        for name, path in pages.items():
            response = await browser.get(path)
            found[name] = (response.status_code, response.text)
        await browser.close()
        async with api(self.app, token_for(self.stack, login)) as client:
            routes = {
                "api dispute": f"/api/disputes/{n}",
                "api timeline": f"/api/disputes/{n}/timeline",
                "api list": "/api/disputes",
                "api search": "/api/disputes?q=Contoso",
                "api search by number": f"/api/disputes?q={n}",
                "api tasks": "/api/tasks",
                **{
                    f"api evidence {name}": f"/api/disputes/{n}/evidence/{i}"
                    for name, i in ids.items()
                },
            }
            for name, path in routes.items():
                response = await client.get(path)
                found[name] = (response.status_code, response.text)
        return found

    async def sees_nothing(self, login: str, *secrets: str) -> list[str]:
        """A former neutral: "not found" like anyone else, and no trace in lists or tasks."""
        problems = []
        with self.stack.sessions.read() as session:
            person = session.exec(select(Person).where(Person.email == login)).one()
            left_open = session.exec(
                select(Task.key).where(
                    Task.dispute_number == self.number,
                    Task.assignee_id == person.id,
                    Task.state == TaskState.OPEN,
                )
            ).all()
        if left_open:
            problems.append(f"{login}: tasks left open after their role ended: {left_open}")
        for name, (status, body) in (await self.responses(login)).items():
            per_dispute = not any(w in name for w in ("list", "search", "inbox", "tasks"))
            want = 404 if per_dispute else 200
            if status != want:
                problems.append(f"{login} {name}: {status}, expected {want}")
            # A search page repeats the number searched for; what it found is what counts.
            shown = (SUMMARY, *secrets) if "by number" in name else (self.number, SUMMARY, *secrets)
            for secret in shown:
                if secret in body:
                    problems.append(f"{login} {name}: {secret!r} shown")
        return problems

    async def act_refused(self, login: str) -> list[str]:
        """A former neutral cannot act either: the dispute is not found, nothing recorded."""
        before = len(self.stack.events(self.number))
        async with api(self.app, token_for(self.stack, login)) as client:
            response = await client.post(
                f"/api/disputes/{self.number}/evidence",
                files={"files": ("late.txt", b"after I left", "text/plain")},
                data={"visibility": "neutrals", "description": "late"},
            )
        problems = []
        if response.status_code != 404:
            problems.append(f"{login} add-evidence: {response.status_code}, expected 404")
        if len(self.stack.events(self.number)) != before:
            problems.append(f"{login} add-evidence recorded something")
        return problems

    async def sees_summary_only(self, login: str, *secrets: str) -> list[str]:
        """An offered mediator: the case summary to decide on (parties, category, contested
        object, amount, dates), the offer's actions; nothing confidential, on page and API."""
        problems = []
        got = await self.responses(login)
        for name, (status, body) in got.items():
            want = 404 if "evidence" in name else 200
            if status != want:
                problems.append(f"{login} {name}: {status}, expected {want}")
            for secret in (CAUCUS_TEXT, FACTS, *secrets):
                if secret in body:
                    problems.append(f"{login} {name}: {secret!r} shown")
            for filename in evidence_ids(self.stack, self.number):
                if filename in body:
                    problems.append(f"{login} {name}: evidence {filename!r} named")
        page = got["page dispute"][1]
        for shown in (
            SUMMARY,
            "Northwind",
            "Contoso",
            "DR-2026-0042",
            "125,000.00",
            "Accept assignment",
        ):
            if shown not in page:
                problems.append(f"{login} page dispute: {shown!r} missing from the summary")
        if self.number not in got["page list"][1] or self.number not in got["api list"][1]:
            problems.append(f"{login}: the offered dispute is missing from their list")
        async with api(self.app, token_for(self.stack, login)) as client:
            detail = (await client.get(f"/api/disputes/{self.number}")).json()
        record = detail.get("record", {})
        summary = {k: record.get(k) for k in ("summary", "category", "claimant_id", "currency")}
        if summary != {
            "summary": SUMMARY,
            "category": "deal_registration",
            "claimant_id": "northwind",
            "currency": "USD",
        } or record.get("contested_objects") != [
            {"kind": "deal_registration", "ref": "DR-2026-0042"}
        ]:
            problems.append(f"{login} api dispute: summary fields {record}")
        if record.get("facts") is not None or record.get("desired_remedy") is not None:
            problems.append(f"{login} api dispute: the full case is shown: {record}")
        if detail.get("standing") != "offered":
            problems.append(f"{login} api dispute: standing {detail.get('standing')!r}")
        state = detail.get("state") or {}
        for part in ("notes", "offers", "information_requests", "rulings", "remedies"):
            if state.get(part):
                problems.append(f"{login} api dispute: state.{part} shown: {state[part]}")
        if detail.get("evidence"):
            problems.append(f"{login} api dispute: evidence listed: {detail['evidence']}")
        if set(detail.get("actions", [])) != {"accept-assignment", "recuse"}:
            problems.append(f"{login} api dispute: actions {detail.get('actions')}")
        if got["api timeline"][1] != "[]":
            problems.append(f"{login} api timeline: {got['api timeline'][1][:300]}")
        return problems


async def test_released_recused_and_declining_mediators_see_nothing_and_an_offer_only_the_summary(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    scenario = Scenario(stack, app)
    await scenario.build()  # in mediation: a caucus note, evidence of each visibility
    number = scenario.number
    handle = stack.handle(number)
    first = (await stack.state(number)).mediator_id
    assert first is not None
    await handle.execute_update(
        DisputeWorkflow.add_note, AddNote(actor=stack.actor(first), text=SHARED_NOTE)
    )
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, first))
    probe = Probe(stack, app, number)

    # An admin releases the first mediator and offers the dispute to a second.
    declare_conflict(stack, first, "contoso")
    second = next(m for m in MEDIATORS if m != first)
    await handle.execute_update(
        DisputeWorkflow.assign_mediator,
        AssignMediator(actor=stack.actor(ADMIN), person_id=second, reason="Conflict found"),
    )
    assert await offered(stack, number) == second
    await stack.wait_for_event(number, "mediator_offered", 2)
    await stack.mail_settled()
    mailed_before = len(stack.mail.to(email_of(stack, first)))
    problems = await probe.sees_nothing(email_of(stack, first))
    problems += await probe.sees_summary_only(email_of(stack, second), SHARED_NOTE, OFFER_TERMS)

    # The second accepts and writes; a party adds evidence: none of it reaches the first.
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(second), impartiality_declaration=DECLARATION),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    await handle.execute_update(
        DisputeWorkflow.add_note,
        AddNote(
            actor=stack.actor(second),
            text=LATER_CAUCUS,
            visibility=NoteVisibility.CAUCUS,
            caucus_partner_id="contoso",
        ),
    )
    await upload(app, CLAIMANT, number, "after-the-release.txt", "neutrals")
    await stack.wait_for_event(number, "evidence_added", 4)
    problems += await probe.sees_nothing(email_of(stack, first), LATER_CAUCUS, "after-the-release")
    problems += await probe.act_refused(email_of(stack, first))
    async with api(app, token_for(stack, email_of(stack, second))) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
    if detail.get("standing") != "mediator" or not detail["record"]["facts"]:
        problems.append(f"{second}, who accepted, reads {detail.get('standing')!r}")
    assert LATER_CAUCUS in str(detail["state"]["notes"]) and len(detail["evidence"]) == 4

    # The second recuses: the dispute is offered to a third, who declines in turn.
    await handle.execute_update(
        DisputeWorkflow.recuse, Recuse(actor=stack.actor(second), reason="I know Contoso's CEO.")
    )
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id not in (None, second))
    third = state.candidate_mediator_id
    assert third is not None and third not in (first, second)
    await stack.wait_for_event(number, "mediator_offered", 3)
    problems += await probe.sees_nothing(email_of(stack, second), LATER_CAUCUS, "after-the-release")
    problems += await probe.act_refused(email_of(stack, second))
    problems += await probe.sees_summary_only(
        email_of(stack, third), SHARED_NOTE, OFFER_TERMS, LATER_CAUCUS
    )
    await handle.execute_update(
        DisputeWorkflow.recuse, Recuse(actor=stack.actor(third), reason="Too close to Northwind.")
    )
    await stack.wait_for_event(number, "recused", 2)
    problems += await probe.sees_nothing(email_of(stack, third), LATER_CAUCUS)
    # Nor does the dispute write to them any more.
    await stack.mail_settled()
    mailed_after = stack.mail.subjects(email_of(stack, first))[mailed_before:]
    if mailed_after:
        problems.append(f"{first} was mailed after the release: {mailed_after}")
    # The parties still read their own: the claimant its evidence, not the other side's caucus.
    async with api(app, token_for(stack, CLAIMANT)) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
    if detail.get("standing") != "party":
        problems.append(f"the claimant reads {detail.get('standing')!r}")
    assert LATER_CAUCUS not in str(detail)
    assert not problems, "\n".join(problems)


async def test_a_mediator_whose_offer_lapsed_sees_nothing(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number = (await stack.file()).number
    first = await offered(stack, number)
    await stack.wait_for_event(number, "mediator_offered")
    probe = Probe(stack, app, number)
    assert await probe.sees_summary_only(email_of(stack, first)) == []
    due = (await stack.state(number)).deadlines[0].due_at
    await stack.env.sleep(due - await stack.env.get_current_time() + timedelta(minutes=1))
    await stack.wait_for_event(number, "assignment_expired")
    await upload(app, RESPONDENT, number, "after-the-lapse.txt", "parties")
    problems = await probe.sees_nothing(email_of(stack, first), "after-the-lapse")
    assert not problems, "\n".join(problems)


def alternate(function: str) -> PersonRecord:
    return PersonRecord(
        id=f"alt.{function}",
        name=f"Alt {function.title()}",
        email=f"alt.{function}@vendor.example",
        role=Role.BOARD,
        calendar="US-NY",
        function=function,
    )


async def test_a_panelist_who_recused_sees_nothing_and_the_replacement_reads_the_case(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number = await in_review(stack)
    await upload(app, CLAIMANT, number, "for-the-neutrals.txt", "neutrals")
    await stack.wait_for_event(number, "evidence_added")
    seed(stack.sessions, Directory(people=[alternate("sales")]))
    seed_accounts(stack.sessions)
    await stack.handle(number).execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.sales"), reason="I manage the Northwind relationship."),
    )
    await stack.wait_for_event(number, "panel_replacement")
    await upload(app, RESPONDENT, number, "after-the-recusal.txt", "side")
    await stack.wait_for_event(number, "evidence_added", 2)
    probe = Probe(stack, app, number)
    problems = await probe.sees_nothing("b.sales@vendor.example", "after-the-recusal")
    problems += await probe.act_refused("b.sales@vendor.example")
    async with api(app, token_for(stack, "alt.sales@vendor.example")) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
        names = {e["filename"] for e in detail["evidence"]}
        assert names == {"for-the-neutrals.txt", "after-the-recusal.txt"}, detail
        if detail.get("standing") != "panelist":
            problems.append(f"the replacement reads {detail.get('standing')!r}")
        tasks = (await client.get("/api/tasks")).json()
        assert [t["kind"] for t in tasks if t["dispute_number"] == number] == ["cast_vote"]
    async with api(app, token_for(stack, "m.marketing@vendor.example")) as client:
        assert (await client.get(f"/api/disputes/{number}")).status_code == 200
    assert not problems, "\n".join(problems)


async def test_the_first_panel_sees_nothing_once_its_ruling_is_appealed(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number = await ruled(stack)
    await upload(app, RESPONDENT, number, "portal-audit-log.txt", "neutrals")
    await stack.wait_for_event(number, "evidence_added")
    appeal = appeal_by_contoso(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal)
    # Every board member sat on the first panel: the fresh one waits for the admins.
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    probe = Probe(stack, app, number)
    first_panel = [email_of(stack, p) for p in (*PANEL, "board.chair")]
    problems: list[str] = []
    for login in first_panel[:1] + first_panel[-1:]:
        problems += await probe.sees_nothing(login, appeal.grounds, "portal-audit-log")
    await appoint_alternates_and_redraw(stack, number)
    seed_accounts(stack.sessions)
    await stack.wait_for(number, lambda s: s.review is not None and s.review.round == 2)
    await stack.wait_for_event(number, "panel_drawn", 2)
    await upload(app, CLAIMANT, number, "for-the-fresh-panel.txt", "neutrals")
    await stack.wait_for_event(number, "evidence_added", 2)
    for login in first_panel:
        problems += await probe.sees_nothing(login, appeal.grounds, "for-the-fresh-panel")
    problems += await probe.act_refused(first_panel[0])
    async with api(app, token_for(stack, "alt.sales@vendor.example")) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
        if detail.get("standing") != "panelist":
            problems.append(f"the fresh panel reads {detail.get('standing')!r}")
        assert {e["filename"] for e in detail["evidence"]} == {
            "portal-audit-log.txt",
            "for-the-fresh-panel.txt",
        }
    assert not problems, "\n".join(problems)


# --- the moment a role ends, before its seat is drawn again ---------------------------------


async def test_a_recusing_panelist_sees_nothing_while_the_replacement_is_drawn(
    race: Stack, gates: dict[str, Any]
) -> None:
    stack = race
    app = make_app(stack)
    number = await in_review(stack)
    gates["draw_panel"].hold(lambda request: "board.sales" in request.excluded_person_ids)
    recusal = await begin(
        stack,
        number,
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("board.sales"), reason="I manage the Northwind relationship."),
    )
    await gates["draw_panel"].reached()
    await stack.wait_for_event(number, "panel_recused")
    problems = await Probe(stack, app, number).sees_nothing("b.sales@vendor.example")
    gates["draw_panel"].release()
    await outcome(recusal)
    assert not problems, "\n".join(problems)


async def test_the_first_panel_sees_nothing_from_the_appeal_on_while_a_fresh_one_is_drawn(
    race: Stack, gates: dict[str, Any]
) -> None:
    stack = race
    app = make_app(stack)
    number = await ruled(stack)
    gates["draw_panel"].hold(lambda request: request.round == 2)
    appeal = appeal_by_contoso(stack)
    await stack.handle(number).execute_update(DisputeWorkflow.appeal, appeal)
    await gates["draw_panel"].reached()
    problems = await Probe(stack, app, number).sees_nothing(
        "c.chair@vendor.example", appeal.grounds
    )
    gates["draw_panel"].release()
    await stack.wait_for_event(number, "panel_incomplete")
    assert not problems, "\n".join(problems)


async def test_a_panel_seated_before_seats_were_recorded_and_the_sponsor_read_by_their_tasks(
    stack_on_both: Stack,
) -> None:
    """Panels drawn before migration 0013 have no seat rows: their members read by their review
    tasks until a new round seats a panel; the executive sponsor reads an escalated review
    while their task stands. Such rows cannot be made by today's workflow, so they are written
    here as that code left them."""
    stack = stack_on_both
    app = make_app(stack)
    number = await in_review(stack)
    probe = Probe(stack, app, number)
    sponsor = PersonRecord(
        id="sue.sponsor",
        name="Sue Sponsor",
        email="sue.sponsor@vendor.example",
        role=Role.BOARD,
        calendar="US-NY",
        function="executive_sponsor",
    )
    seed(stack.sessions, Directory(people=[sponsor]))
    seed_accounts(stack.sessions)
    await stack.wait_for_event(number, "panel_drawn")
    now = datetime.now(UTC)
    with stack.sessions.begin() as session:
        for seat in session.exec(select(PanelSeat).where(PanelSeat.dispute_number == number)):
            session.delete(seat)
        session.add(
            Task(
                key=f"{number}:executive-review-1",
                dispute_number=number,
                kind=TaskKind.EXECUTIVE_REVIEW,
                title="Review overdue",
                assignee_id="sue.sponsor",
                assignee_role=Role.ADMIN,
                state=TaskState.OPEN,
                created_at=now,
            )
        )
    async with api(app, token_for(stack, "b.sales@vendor.example")) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
    assert detail["standing"] == "panelist", detail
    async with api(app, token_for(stack, "sue.sponsor@vendor.example")) as client:
        detail = (await client.get(f"/api/disputes/{number}")).json()
    assert detail["standing"] == "panelist", detail
    with stack.sessions.begin() as session:
        task = session.get(Task, f"{number}:vote-1-board.sales")
        sponsor_task = session.get(Task, f"{number}:executive-review-1")
        assert task is not None and sponsor_task is not None
        task.state = sponsor_task.state = TaskState.CANCELLED
        session.add_all([task, sponsor_task])
    problems = await probe.sees_nothing("b.sales@vendor.example")
    problems += await probe.sees_nothing("sue.sponsor@vendor.example")
    # A round seated since: the old panel's tasks no longer count, only the seats do.
    with stack.sessions.begin() as session:
        session.add(
            PanelSeat(
                dispute_number=number,
                review_round=2,
                seat="sales",
                person_id="board.marketing",
                seated_at=now,
            )
        )
    async with api(app, token_for(stack, "p.product@vendor.example")) as client:
        assert (await client.get(f"/api/disputes/{number}")).status_code == 404
        # Their round-1 task, still open in this made-up past, leads nowhere: not listed.
        assert number not in (await client.get("/api/tasks")).text
    async with api(app, token_for(stack, "m.marketing@vendor.example")) as client:
        assert (await client.get(f"/api/disputes/{number}")).status_code == 200
    assert not problems, "\n".join(problems)


async def test_a_released_mediators_reply_to_the_dispute_thread_is_held_not_threaded(
    stack: Stack,
) -> None:
    """Email threads follow the assignment too: the released mediator's reply to their own
    assignment mail is held for an admin like anyone's not on the dispute, and nothing of the
    dispute is answered to them."""
    from tests.intake_harness import Intake, mail

    intake = Intake(stack)
    try:
        number = (await stack.file()).number
        first = await in_mediation(stack, number)
        address = email_of(stack, first)
        notice = await stack.mail.wait_for(address, "You are asked to mediate")
        declare_conflict(stack, first, "contoso")
        second = next(m for m in MEDIATORS if m != first)
        await stack.handle(number).execute_update(
            DisputeWorkflow.assign_mediator,
            AssignMediator(actor=stack.actor(ADMIN), person_id=second, reason="Conflict found"),
        )
        await stack.wait_for_event(number, "mediator_released")
        await stack.mail_settled()
        mailed = len(stack.mail.to(address))
        reply = mail(
            address,
            f"Re: {notice['Subject']}",
            "For the record: Contoso's margin on Acme is 12 percent.",
            headers={
                "In-Reply-To": str(notice["Message-ID"]),
                "References": str(notice["References"] or notice["Message-ID"]),
            },
        )
        row = await intake.deliver(reply)
        assert row.state is InboundState.QUARANTINED, (row.state, row.reason)
        assert "message_received" not in stack.actions(number)
        await stack.mail_settled()
        assert stack.mail.subjects(address)[mailed:] == []
    finally:
        intake.controller.stop()
