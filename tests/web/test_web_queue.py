"""The work queue (web.queue) over the read model, on SQLite and PostgreSQL: what each row says,
sorting (ties, no deadline), filtering, who sees what, bad query parameters, and one SQL
statement per page. The pages and the API over it are at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from accord.disputes.access import Viewer
from accord.platform.db import SessionFactory, make_engine
from models.enums import (
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    Role,
    TaskKind,
    TaskState,
)
from models.payloads import Actor, ExtendDeadline
from models.tables import Assignment, Dispute, DisputeParty, PanelSeat, Task
from tests.conftest import Stack, seed
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import in_mediation
from web.problems import BadQuery
from web.queue import QueueQuery, Sla, SortKey, read_queue_query, work_queue
from workflows.dispute import DisputeWorkflow

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SAM = Viewer(Actor(id="sam.okafor", role=Role.MEDIATOR, name="Sam Okafor"), "s@vendor.example")
KENJI = Viewer(Actor(id="kenji.sato", role=Role.MEDIATOR, name="Kenji Sato"), "k@vendor.example")
CHAIR = Viewer(Actor(id="board.chair", role=Role.BOARD, name="Charles Chair"), "c@v.example")
SALES = Viewer(Actor(id="board.sales", role=Role.BOARD, name="Beatrice Sales"), "b@v.example")
ADMIN = Viewer(Actor(id="ada.admin", role=Role.ADMIN, name="Ada Admin"), "a@vendor.example")
CONTOSO = Viewer(
    Actor(id="carl@contoso.example", role=Role.PARTNER, name="Carl", partner_id="contoso"),
    "carl@contoso.example",
)

# number: category, stage, amount, currency, respondents
DISPUTES = {
    "DSP-2026-000001": (DisputeCategory.PRICING, DisputeStage.MEDIATION, "500", "USD"),
    "DSP-2026-000002": (DisputeCategory.DEAL_REGISTRATION, DisputeStage.TRIAGE, "125000", "EUR"),
    "DSP-2026-000003": (DisputeCategory.TERRITORY, DisputeStage.AWAITING_PARTY, "500", "USD"),
    "DSP-2026-000004": (DisputeCategory.CO_MARKETING, DisputeStage.MEDIATION, "0", "USD"),
    "DSP-2026-000005": (DisputeCategory.LEAD_ROUTING, DisputeStage.FORMAL_REVIEW, "9000", "USD"),
    "DSP-2026-000006": (DisputeCategory.PRICING, DisputeStage.MEDIATION, "700", "USD"),
}


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def task(
    key: str,
    number: str,
    kind: TaskKind,
    assignee: str | None,
    *,
    due: datetime | None,
    made: datetime | None = None,
    role: Role = Role.MEDIATOR,
    state: TaskState = TaskState.OPEN,
) -> Task:
    return Task(
        key=f"{number}:{key}",
        dispute_number=number,
        kind=kind,
        title=f"{kind.value}: {number}",
        assignee_id=assignee,
        assignee_role=role,
        due_at=due,
        state=state,
        created_at=made or NOW - hours(10),
    )


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    return queue_sessions(database_url)


def queue_sessions(database_url: str) -> SessionFactory:
    """Six disputes at different points of their lives, with the tasks and seats that make up
    the mediators' and the board's queues, on `database_url`."""
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    with factory.begin() as session:
        for number, (category, stage, amount, currency) in DISPUTES.items():
            session.add(
                Dispute(
                    number=number,
                    category=category,
                    claimant_id="northwind",
                    respondent_ids=["contoso"],
                    party_key="contoso|northwind",
                    contested_objects=[{"kind": "account", "ref": "ACME-001"}],
                    summary="A conflict",
                    facts="Facts.",
                    desired_remedy="Remedy.",
                    amount_at_stake=Decimal(amount),
                    currency=currency,
                    occurred_on=date(2026, 11, 20),
                    stage=stage,
                    playbook_version="2026.1",
                    filed_by="nora@northwind.example",
                    filed_at=NOW - timedelta(days=3),
                    updated_at=NOW,
                )
            )
        session.flush()
        for number in DISPUTES:
            session.add(
                DisputeParty(dispute_number=number, partner_id="northwind", side="claimant")
            )
            session.add(
                DisputeParty(dispute_number=number, partner_id="contoso", side="respondent")
            )
        for number, person, state in (
            ("DSP-2026-000001", "sam.okafor", AssignmentState.ACCEPTED),
            ("DSP-2026-000002", "sam.okafor", AssignmentState.OFFERED),
            ("DSP-2026-000003", "sam.okafor", AssignmentState.ACCEPTED),
            ("DSP-2026-000004", "sam.okafor", AssignmentState.ACCEPTED),
            # Sam's role on 6 ended (released): his task left open there leads nowhere.
            ("DSP-2026-000006", "sam.okafor", AssignmentState.RELEASED),
        ):
            session.add(
                Assignment(
                    dispute_number=number,
                    round=1,
                    person_id=person,
                    state=state,
                    assigned_at=NOW - timedelta(days=2),
                )
            )
        for person in ("board.chair", "board.sales"):
            session.add(
                PanelSeat(
                    dispute_number="DSP-2026-000005",
                    review_round=1,
                    seat="chair" if person == "board.chair" else "board.sales",
                    person_id=person,
                    seated_at=NOW - timedelta(days=1),
                )
            )
        session.flush()
        for row in (
            # 1: mediation, on time; the offer waits on both parties.
            task("mediate", "DSP-2026-000001", TaskKind.MEDIATE, "sam.okafor", due=NOW + hours(90)),
            task(
                "offer-1-contoso",
                "DSP-2026-000001",
                TaskKind.RESPOND_TO_OFFER,
                "contoso",
                due=NOW + hours(40),
                role=Role.PARTNER,
            ),
            task(
                "offer-1-northwind",
                "DSP-2026-000001",
                TaskKind.RESPOND_TO_OFFER,
                "northwind",
                due=NOW + hours(40),
                role=Role.PARTNER,
            ),
            # 2: offered, 8 of 10 hours gone.
            task(
                "accept-1",
                "DSP-2026-000002",
                TaskKind.ACCEPT_ASSIGNMENT,
                "sam.okafor",
                due=NOW + hours(2),
            ),
            # 3: no deadline (the clock is paused); waits on Contoso's answer.
            task("mediate", "DSP-2026-000003", TaskKind.MEDIATE, "sam.okafor", due=None),
            task(
                "info-r1",
                "DSP-2026-000003",
                TaskKind.ANSWER_INFORMATION,
                "contoso",
                due=NOW + hours(30),
                role=Role.PARTNER,
            ),
            # 4: overdue.
            task("mediate", "DSP-2026-000004", TaskKind.MEDIATE, "sam.okafor", due=NOW - hours(1)),
            # 5: the chair waits on one vote; the voter's own task; the admins' task.
            task(
                "ruling-1",
                "DSP-2026-000005",
                TaskKind.ISSUE_RULING,
                "board.chair",
                due=NOW + hours(8),
                role=Role.BOARD,
            ),
            task(
                "vote-1-board.sales",
                "DSP-2026-000005",
                TaskKind.CAST_VOTE,
                "board.sales",
                due=NOW + hours(8),
                made=NOW - hours(12),
                role=Role.BOARD,
            ),
            task(
                "formal-review",
                "DSP-2026-000005",
                TaskKind.FORMAL_REVIEW,
                None,
                due=None,
                role=Role.ADMIN,
            ),
            # 6: Sam released; a closed task of his elsewhere.
            task("mediate", "DSP-2026-000006", TaskKind.MEDIATE, "sam.okafor", due=NOW + hours(5)),
            task(
                "old",
                "DSP-2026-000001",
                TaskKind.ACCEPT_ASSIGNMENT,
                "sam.okafor",
                due=NOW - hours(50),
                state=TaskState.DONE,
            ),
        ):
            session.add(row)
    return factory


def queue(sessions: SessionFactory, viewer: Viewer, **params: str | list[str]) -> list[str]:
    pairs = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    with sessions.read() as session:
        items = work_queue(session, viewer, read_queue_query(pairs), now=NOW)
    return [i.task.dispute_number[-1] for i in items]


def test_each_row_says_what_a_mediator_works_from(sessions: SessionFactory) -> None:
    with sessions.read() as session:
        items = {i.task.dispute_number[-1]: i for i in work_queue(session, SAM, now=NOW)}
    # Soonest deadline first, no deadline last; the released dispute and the closed task: not.
    assert list(items) == ["4", "2", "1", "3"]
    one = items["1"]
    assert (one.claimant, one.respondents) == ("Northwind Traders", ("Contoso Systems",))
    assert one.parties == "Northwind Traders v Contoso Systems"
    assert (one.category, one.stage, one.amount, one.currency) == (
        DisputeCategory.PRICING,
        DisputeStage.MEDIATION,
        Decimal("500.00"),
        "USD",
    )
    assert one.awaiting_text == (
        "response to the settlement offer from Contoso Systems and Northwind Traders"
    )
    assert items["3"].awaiting_text == "answer to information request from Contoso Systems"
    assert items["2"].awaiting_text == "your acceptance (or recusal)"
    assert items["4"].awaiting_text.startswith("your next step")
    assert {k: i.sla for k, i in items.items()} == {
        "4": Sla.OVERDUE,
        "2": Sla.WARNED_80,
        "1": Sla.ON_TIME,
        "3": Sla.NONE,
    }
    assert items["4"].label == "Mediate" and items["2"].sla_label.startswith("warned")


def test_the_board_and_the_admins_queues(sessions: SessionFactory) -> None:
    with sessions.read() as session:
        chair = work_queue(session, CHAIR, now=NOW)
        sales = work_queue(session, SALES, now=NOW)
        admin = work_queue(session, ADMIN, now=NOW)
        kenji = work_queue(session, KENJI, now=NOW)
        contoso = work_queue(session, CONTOSO, now=NOW)
    assert [i.awaiting_text for i in chair] == ["a vote from the panel: Beatrice Sales"]
    # 12 h window, 12 h gone: warned at half, the chair's (10 h of 18) too.
    assert [(i.awaiting_text, i.sla) for i in sales] == [("your vote", Sla.WARNED_50)]
    assert chair[0].sla is Sla.WARNED_50
    assert [(i.task.kind, i.task.dispute_number) for i in admin] == [
        (TaskKind.FORMAL_REVIEW, "DSP-2026-000005")
    ]
    assert kenji == []
    assert sorted(i.awaiting_text for i in contoso) == [
        "your answer to the information request",
        "your response to the settlement offer",
    ]


def test_sorting_with_ties_and_no_deadline(sessions: SessionFactory) -> None:
    # 1 and 3 are both 500 USD: the tie goes by deadline (3 has none: after 1).
    assert queue(sessions, SAM, sort="amount") == ["2", "1", "3", "4"]
    assert queue(sessions, SAM, sort="amount", order="asc") == ["4", "1", "3", "2"]
    assert queue(sessions, SAM, sort="due", order="desc") == ["1", "2", "4", "3"]
    # Stage in the order a dispute goes through them; ties by deadline.
    assert queue(sessions, SAM, sort="stage") == ["2", "4", "1", "3"]
    assert queue(sessions, SAM, sort="stage", order="desc") == ["3", "4", "1", "2"]
    # Category by its name: co marketing, deal registration, pricing, territory.
    assert queue(sessions, SAM, sort="category") == ["4", "2", "1", "3"]
    assert queue(sessions, SAM, sort="kind") == ["2", "4", "1", "3"]
    assert queue(sessions, SAM, sort="dispute", order="desc") == ["4", "3", "2", "1"]


def test_filters(sessions: SessionFactory) -> None:
    assert queue(sessions, SAM, category="pricing") == ["1"]
    assert queue(sessions, SAM, category=["pricing", "territory"]) == ["1", "3"]
    assert queue(sessions, SAM, stage="mediation") == ["4", "1"]
    assert queue(sessions, SAM, sla="overdue") == ["4"]
    assert queue(sessions, SAM, sla="warned_80") == ["2"]
    assert queue(sessions, SAM, sla="none") == ["3"]
    assert queue(sessions, SAM, sla="on_time") == ["1"]
    assert queue(sessions, SAM, sla=["overdue", "warned_50", "warned_80"]) == ["4", "2"]
    assert queue(sessions, SAM, kind="accept_assignment") == ["2"]
    assert queue(sessions, SAM, kind="mediate", stage="mediation", sort="amount") == ["1", "4"]
    assert queue(sessions, SAM, category="lead_routing") == []
    # A select left at "any" and a parameter the queue does not know change nothing.
    assert queue(sessions, SAM, category="", utm_source="mail", offset="2") == ["4", "2", "1", "3"]
    # The first page holds them all; the second none.
    assert queue(sessions, SAM, page="2") == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sort", "bogus"),
        ("sort", "due\x00"),
        ("order", "sideways"),
        ("category", "x" * 100_000),
        ("stage", "médiation"),
        ("sla", "逾期"),
        ("kind", "<script>alert(1)</script>"),
        ("category", "\ud800"),
    ],
)
def test_a_bad_value_is_refused_naming_its_parameter(name: str, value: str) -> None:
    with pytest.raises(BadQuery) as refused:
        read_queue_query([(name, value)])
    assert [f for f, _ in refused.value.errors] == [name]
    message = refused.value.errors[0][1]
    assert value not in message and len(message) < 1_000
    assert "use one of" in message or "asc" in message


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(BadQuery) as refused:
        read_queue_query([("sort", "x"), ("sort", "due"), ("sla", "late"), ("kind", "y")])
    assert [f for f, _ in refused.value.errors] == ["sort", "sla", "kind"]


def test_the_query_round_trips_as_link_parameters() -> None:
    query = read_queue_query([("sort", "amount"), ("category", "pricing"), ("sla", "overdue")])
    assert query == QueueQuery(
        sort=SortKey.AMOUNT,
        descending=True,
        categories=frozenset({DisputeCategory.PRICING}),
        slas=frozenset({Sla.OVERDUE}),
    )
    assert read_queue_query(query.as_params()) == query
    assert read_queue_query(query.sorted_by(SortKey.AMOUNT)).descending is False
    assert read_queue_query(query.sorted_by(SortKey.STAGE)).sort is SortKey.STAGE


@contextmanager
def statements(sessions: SessionFactory) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = sessions.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_one_statement_per_page_whatever_the_rows(sessions: SessionFactory) -> None:
    for viewer in (SAM, CHAIR, ADMIN):
        with sessions.read() as session:
            session.connection()  # the transaction's own statements are not the page's
            with statements(sessions) as seen:
                items = work_queue(session, viewer, read_queue_query([("sort", "amount")]))
                _ = [(i.parties, i.awaiting_text, i.task.title) for i in items]
        assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1, seen


# --- the pages and the API over the real stack -----------------------------------------------
async def offered_to_a_mediator(stack: Stack) -> tuple[str, str]:
    """A dispute filed and offered to a mediator: its number and the mediator's login."""
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    await stack.wait_for_event(number, "mediator_offered")
    return number, f"{state.candidate_mediator_id}@vendor.example"


async def test_the_inbox_page_and_the_api_show_the_queue_and_refuse_bad_parameters(
    stack: Stack,
) -> None:
    app = make_app(stack)
    number, mediator = await offered_to_a_mediator(stack)
    browser = await signed_in(app, mediator)
    try:
        page = await browser.get("/inbox", params={"sort": "amount", "kind": "accept_assignment"})
        assert page.status_code == 200
        row = page.text[page.text.index(number) - 2000 :]
        for shown in ("Northwind Traders v Contoso Systems", "deal registration", "triage"):
            assert shown in row
        assert "your acceptance" in row and "USD" in row
        assert "mediate: mediate" not in page.text and "accept_assignment:" not in page.text
        assert number not in (await browser.get("/inbox", params={"sla": "overdue"})).text
        for params in (
            {"sort": "bogus"},
            {"sla": "late\x00"},
            {"category": "x" * 20_000},
            {"order": "\u202eup"},
        ):
            refused = await browser.get("/inbox", params=params)
            assert refused.status_code == 400, (params, refused.status_code)
            name = next(iter(params))
            assert f"{name}:" in refused.text or f"<strong>{name}</strong>" in refused.text
            assert "Traceback" not in refused.text and "x" * 1000 not in refused.text
    finally:
        await browser.close()
    async with api(app, token_for(stack, mediator)) as client:
        tasks = (await client.get("/api/tasks", params={"category": "deal_registration"})).json()
        assert [(t["dispute_number"], t["kind"], t["sla"]) for t in tasks] == [
            (number, "accept_assignment", "on_time")
        ]
        (one,) = tasks
        assert one["claimant"] == "Northwind Traders" and one["respondents"] == ["Contoso Systems"]
        assert (one["category"], one["stage"], one["currency"]) == (
            "deal_registration",
            "triage",
            "USD",
        )
        assert one["amount"] == "125000.00" and one["awaiting"].startswith("your acceptance")
        assert (await client.get("/api/tasks", params={"category": "pricing"})).json() == []
        refused = await client.get("/api/tasks", params={"sort": "due", "sla": "soon"})
        assert refused.status_code == 400
        assert [e["field"] for e in refused.json()["errors"]] == ["sla"]


def test_a_deadline_moved_since_the_task_opened_is_the_one_shown(
    sessions: SessionFactory,
) -> None:
    """An admin's extension, or the mediation clock moved after a party's answer, moves the
    dispute's stage deadline; the task row keeps the deadline it opened with. The queue counts
    down to the one that stands."""
    extended = NOW + hours(50)
    with sessions.begin() as session:
        mediation = session.get(Dispute, "DSP-2026-000004")
        assert mediation is not None
        mediation.stage_deadline = extended  # its task says an hour ago
        session.add(mediation)
        review = session.get(Dispute, "DSP-2026-000005")
        assert review is not None
        review.stage_deadline = extended
        session.add(review)
    with sessions.read() as session:
        items = {i.task.dispute_number[-1]: i for i in work_queue(session, SAM, now=NOW)}
        sales = work_queue(session, SALES, now=NOW)
    assert (items["4"].due_at, items["4"].sla) == (extended, Sla.ON_TIME)
    assert (sales[0].due_at, sales[0].sla) == (extended, Sla.ON_TIME)
    # Awaiting a party, the mediation clock is paused: its task keeps its own deadline.
    assert items["3"].due_at is None
    assert queue(sessions, SAM, sla="overdue") == []
    assert queue(sessions, SAM) == ["2", "4", "1", "3"]


async def test_an_extended_deadline_is_the_one_the_queue_counts_down_to(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await offered_to_a_mediator(stack)

    async def my_task() -> dict[str, Any]:
        async with api(app, token_for(stack, mediator)) as client:
            (one,) = (await client.get("/api/tasks")).json()
            return one  # type: ignore[no-any-return]

    offered = await my_task()
    for deadline in ("acceptance", "mediation"):
        if deadline == "mediation":
            await in_mediation(stack, number)
            await stack.wait_for_event(number, "assignment_accepted")
            offered = await my_task()
            assert offered["kind"] == "mediate"
        await stack.handle(number).execute_update(
            DisputeWorkflow.extend_deadline,
            ExtendDeadline(
                actor=stack.actor("alex.admin"),
                business_days=5,
                reason="The parties asked for a week",
                deadline=deadline,  # type: ignore[arg-type]
            ),
        )
        extended = await stack.wait_for_event(
            number, "deadline_extended", count=1 + (deadline == "mediation")
        )
        now = await my_task()
        assert now["due_at"] != offered["due_at"]
        assert datetime.fromisoformat(now["due_at"]) == datetime.fromisoformat(
            extended.content["due_at"]
        )
