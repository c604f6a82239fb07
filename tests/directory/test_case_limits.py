"""Case limits hold when filings arrive together (issue 13, item 4).

Each "worker" below is its own SessionFactory over its own engine, as separate worker processes
would be: they share nothing but the database, so only the database can keep two of them from
handing out the same last seat.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text, update
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError

from accord.directory.demo import DEMO
from accord.directory.records import import_directory, parse_directory
from accord.platform.db import SessionFactory, make_engine
from activities.assignment import AssignmentActivities, PanelActivities
from activities.records import RecordActivities
from models.enums import (
    TERMINAL_STAGES,
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    ObjectKind,
    PartnerTier,
    Role,
    TaskKind,
)
from models.payloads import (
    SYSTEM,
    ContestedObject,
    DeclareImpasse,
    EventRecord,
    MediatorChoice,
    MediatorRequest,
    PanelChoice,
    PanelRequest,
    RecordAssignment,
    SeatRelease,
)
from models.tables import Account, Assignment, Dispute, PanelSeat, Partner, Person
from tests.conftest import Stack, seed
from tests.workflows.test_dispute_paths import in_mediation
from workflows.dispute import DisputeWorkflow

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
T = TypeVar("T")
OPEN = (AssignmentState.OFFERED, AssignmentState.ACCEPTED)
MEDIATING = (
    DisputeStage.FILED,
    DisputeStage.TRIAGE,
    DisputeStage.MEDIATION,
    DisputeStage.AWAITING_PARTY,
)


# --- factories ----------------------------------------------------------------------------


def partner(partner_id: str) -> Partner:
    return Partner(
        id=partner_id,
        name=partner_id.title(),
        tier=PartnerTier.GOLD,
        regions=["EMEA"],
        email_domains=[f"{partner_id}.example"],
        calendar="DE-BY",
    )


def person(
    person_id: str,
    role: Role = Role.MEDIATOR,
    *,
    case_limit: int = 10,
    organisation: str = "vendor",
    function: str | None = None,
    declared_conflicts: list[str] | None = None,
    active: bool = True,
) -> Person:
    return Person(
        id=person_id,
        name=person_id.replace(".", " ").title(),
        email=f"{person_id}@vendor.example",
        role=role,
        organisation=organisation,
        function=function,
        declared_conflicts=declared_conflicts or [],
        calendar="US-NY",
        case_limit=case_limit,
        active=active,
    )


def dispute(number: str, claimant: str, respondent: str) -> Dispute:
    return Dispute(
        number=number,
        category=DisputeCategory.PRICING,
        claimant_id=claimant,
        respondent_ids=[respondent],
        party_key="|".join(sorted((claimant, respondent))),
        contested_objects=[{"kind": "deal_registration", "ref": f"DR-{number}"}],
        summary="Pricing undercut",
        facts="Quoted below the floor.",
        desired_remedy="Rebate",
        amount_at_stake=Decimal("10.00"),
        currency="USD",
        occurred_on=date(2026, 11, 20),
        stage=DisputeStage.TRIAGE,
        playbook_version="2026.1",
        filed_by=f"nora@{claimant}.example",
        filed_at=NOW,
        updated_at=NOW,
    )


def mediator_request(d: Dispute, round_no: int = 1, **overrides: object) -> MediatorRequest:
    fields: dict[str, object] = {
        "number": d.number,
        "round": round_no,
        "party_ids": (d.claimant_id, *d.respondent_ids),
        "contested_objects": (
            ContestedObject(kind=ObjectKind.DEAL_REGISTRATION, ref=f"DR-{d.number}"),
        ),
        "excluded_person_ids": (),
        "at": NOW,
    }
    fields.update(overrides)
    return MediatorRequest.model_validate(fields)


def offer(records: RecordActivities, request: MediatorRequest, choice: MediatorChoice) -> None:
    """What the workflow does with a choice: an audit entry that records the offer."""
    if choice.person_id is None:
        return
    records.record_event(
        EventRecord(
            number=request.number,
            seq=2 * request.round - 1,  # each round here: the offer, then perhaps a recusal
            at=request.at + timedelta(seconds=request.round),
            actor=SYSTEM,
            action="mediator_offered",
            content={"person_id": choice.person_id, "round": request.round},
            assignment=RecordAssignment(
                round=request.round, person_id=choice.person_id, state=AssignmentState.OFFERED
            ),
        )
    )


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call on its own thread, released together."""
    if not calls:
        return []
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture
def workers(database_url: str) -> Iterator[list[SessionFactory]]:
    """Four session factories over four engines: four worker processes' worth of isolation."""
    factories = [SessionFactory(make_engine(database_url)) for _ in range(4)]
    yield factories
    for factory in factories:
        factory.engine.dispose()


def held(sessions: SessionFactory) -> list[tuple[str, str, str]]:
    """(person, dispute, what) for every seat held: a mediator round offered or accepted while
    the dispute is in mediation, a panel seat not given back while the dispute is open."""
    with sessions.read() as session:
        rounds = session.exec(
            select(Assignment.person_id, Assignment.dispute_number, Assignment.round)
            .join(Dispute, col(Dispute.number) == col(Assignment.dispute_number))
            .where(col(Assignment.state).in_(OPEN), col(Dispute.stage).in_(MEDIATING))
        ).all()
        seats = session.exec(
            select(PanelSeat.person_id, PanelSeat.dispute_number, PanelSeat.seat)
            .join(Dispute, col(Dispute.number) == col(PanelSeat.dispute_number))
            .where(col(PanelSeat.released_at).is_(None), col(Dispute.stage).not_in(TERMINAL_STAGES))
        ).all()
    return [(p, n, f"round {r}") for p, n, r in rounds] + [(p, n, s) for p, n, s in seats]


def open_offers(sessions: SessionFactory, person_id: str) -> int:
    return sum(1 for p, _, what in held(sessions) if p == person_id and what.startswith("round"))


# --- the defect ---------------------------------------------------------------------------


def test_four_filings_at_once_give_a_mediator_with_a_case_limit_of_one_one_offer(
    workers: list[SessionFactory],
) -> None:
    disputes = [dispute(f"DSP-2026-00010{i}", "northwind", "contoso") for i in range(4)]
    with workers[0].begin() as session:
        session.add_all([partner("northwind"), partner("contoso")])
        session.add(person("greta.hoffmann", case_limit=1))
        session.flush()
        session.add_all(disputes)

    def file(worker: SessionFactory, d: Dispute) -> Callable[[], MediatorChoice]:
        def triage() -> MediatorChoice:
            request = mediator_request(d)
            choice = AssignmentActivities(worker).assign_mediator(request)
            offer(RecordActivities(worker), request, choice)
            return choice

        return triage

    choices = at_once([file(w, d) for w, d in zip(workers, disputes, strict=True)])

    assert [c.person_id for c in choices].count("greta.hoffmann") == 1, choices
    assert open_offers(workers[0], "greta.hoffmann") == 1
    refused = [c.reason for c in choices if c.person_id is None]
    assert refused == ["no eligible mediator: Greta Hoffmann is at their case limit (1)"] * 3


# --- panels -------------------------------------------------------------------------------

BOARD_FUNCTIONS = ("sales", "finance")


def board(*, case_limit: int = 10) -> list[Person]:
    """Two holders of each function and two chairs."""
    return [
        person(f"{function}.{n}", Role.BOARD, function=function, case_limit=case_limit)
        for function in (*BOARD_FUNCTIONS, "chair")
        for n in (1, 2)
    ]


def panel_request(d: Dispute, **overrides: object) -> PanelRequest:
    fields: dict[str, object] = {
        "number": d.number,
        "party_ids": (d.claimant_id, *d.respondent_ids),
        "contested_objects": (),
        "excluded_person_ids": (),
        "functions": BOARD_FUNCTIONS,
        "round": 1,
        "at": NOW,
    }
    fields.update(overrides)
    return PanelRequest.model_validate(fields)


def seated(choice: PanelChoice) -> set[str]:
    return {m.person_id for m in choice.members} | (
        {choice.chair.person_id} if choice.chair else set()
    )


def test_two_disputes_in_review_at_once_get_different_panelists(
    workers: list[SessionFactory],
) -> None:
    first, second = (dispute(f"DSP-2026-00020{i}", "northwind", "contoso") for i in (1, 2))
    with workers[0].begin() as session:
        session.add_all([partner("northwind"), partner("contoso"), *board()])
        session.flush()
        session.add_all([first, second])

    panels = at_once(
        [
            lambda: PanelActivities(workers[0]).draw_panel(panel_request(first)),
            lambda: PanelActivities(workers[1]).draw_panel(panel_request(second)),
        ]
    )

    assert all(p.complete for p in panels), panels
    assert len(seated(panels[0])) == len(seated(panels[1])) == 3
    assert seated(panels[0]).isdisjoint(seated(panels[1]))


# --- mediator seats: idempotent, moved on by the audit trail, given back --------------------


def setup(sessions: SessionFactory, *rows: object, disputes: int = 0) -> list[Dispute]:
    """Two partners, the given people, and `disputes` disputes between the partners."""
    made = [dispute(f"DSP-2026-00030{i}", "northwind", "contoso") for i in range(disputes)]
    with sessions.begin() as session:
        session.add_all([partner("northwind"), partner("contoso"), *rows])
        session.flush()
        session.add_all(made)
    return made


def record(
    sessions: SessionFactory, d: Dispute, seq: int, round_no: int, person_id: str, state: str
) -> None:
    RecordActivities(sessions).record_event(
        EventRecord(
            number=d.number,
            seq=seq,
            at=NOW + timedelta(minutes=seq),
            actor=SYSTEM,
            action=f"assignment_{state}",
            content={"round": round_no},
            assignment=RecordAssignment(
                round=round_no, person_id=person_id, state=AssignmentState(state)
            ),
        )
    )


def test_a_retried_choice_returns_the_reserved_mediator_and_the_audit_moves_that_row(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    d, other = setup(sessions, person("greta.hoffmann", case_limit=1), disputes=2)
    assign = AssignmentActivities(sessions)
    request = mediator_request(d)

    first = assign.assign_mediator(request)
    assert first.person_id == "greta.hoffmann"
    assert assign.assign_mediator(request) == first  # a retry: same mediator, no second seat
    assert open_offers(sessions, "greta.hoffmann") == 1

    record(sessions, d, 1, 1, "greta.hoffmann", "offered")
    record(sessions, d, 2, 1, "greta.hoffmann", "accepted")
    with sessions.read() as session:
        rows = session.exec(select(Assignment)).all()
    assert [(r.dispute_number, r.round, r.state) for r in rows] == [
        (d.number, 1, AssignmentState.ACCEPTED)
    ]
    assert assign.assign_mediator(request) == first  # still hers once accepted
    refused = assign.assign_mediator(mediator_request(other))
    assert refused.reason == "no eligible mediator: Greta Hoffmann is at their case limit (1)"


def test_a_recusal_an_expiry_a_release_or_the_close_gives_the_seat_back(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    *disputes, last = setup(sessions, person("greta.hoffmann", case_limit=1), disputes=5)
    assign = AssignmentActivities(sessions)
    for d, ending in zip(disputes, ["recused", "expired", "released", "withdrawn"], strict=True):
        assert assign.assign_mediator(mediator_request(d)).person_id == "greta.hoffmann"
        record(sessions, d, 1, 1, "greta.hoffmann", "offered")
        assert assign.assign_mediator(mediator_request(last)).person_id is None, ending
        if ending == "withdrawn":
            with sessions.begin() as session:
                closed = session.get(Dispute, d.number)
                assert closed is not None
                closed.stage = DisputeStage.WITHDRAWN
                session.add(closed)
        else:
            record(sessions, d, 2, 1, "greta.hoffmann", ending)
        assert open_offers(sessions, "greta.hoffmann") == 0, ending
    assert assign.assign_mediator(mediator_request(last)).person_id == "greta.hoffmann"


def test_release_seat_gives_back_only_an_unoffered_seat_still_held_by_that_person(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    (d,) = setup(
        sessions,
        person("greta.hoffmann", case_limit=1),
        person("kenji.sato", case_limit=1),
        disputes=1,
    )
    assign = AssignmentActivities(sessions)
    assert assign.assign_mediator(mediator_request(d)).person_id == "greta.hoffmann"
    # An admin picks Kenji before the round was offered: the round is his now, Greta's free.
    picked = assign.assign_mediator(mediator_request(d, chosen_person_id="kenji.sato"))
    assert picked.person_id == "kenji.sato"
    assert (open_offers(sessions, "greta.hoffmann"), open_offers(sessions, "kenji.sato")) == (0, 1)
    # Releasing Greta's choice (the workflow drops it for the admin's) leaves Kenji's seat.
    done = assign.release_seat(SeatRelease(number=d.number, round=1, person_id="greta.hoffmann"))
    assert done.done.startswith("nothing to release")
    assert open_offers(sessions, "kenji.sato") == 1
    release = SeatRelease(number=d.number, round=1, person_id="kenji.sato")
    assert assign.release_seat(release).done.startswith("released")
    assert assign.release_seat(release).done.startswith("nothing to release")  # idempotent
    assert open_offers(sessions, "kenji.sato") == 0
    # An accepted seat is the audit trail's to give back, never release_seat's.
    assert assign.assign_mediator(mediator_request(d, round_no=2)).person_id == "greta.hoffmann"
    record(sessions, d, 1, 2, "greta.hoffmann", "accepted")
    assign.release_seat(SeatRelease(number=d.number, round=2, person_id="greta.hoffmann"))
    assert open_offers(sessions, "greta.hoffmann") == 1


def test_an_admins_pick_over_the_limit_is_refused_with_the_rule_and_takes_nothing(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    d, other = setup(
        sessions,
        person("greta.hoffmann", case_limit=1),
        person("kenji.sato", case_limit=1),
        disputes=2,
    )
    assign = AssignmentActivities(sessions)
    assert assign.assign_mediator(mediator_request(d)).person_id == "greta.hoffmann"
    assert assign.assign_mediator(mediator_request(other)).person_id == "kenji.sato"
    refused = assign.assign_mediator(mediator_request(other, chosen_person_id="greta.hoffmann"))
    assert refused.person_id is None
    assert refused.reason == "no eligible mediator: Greta Hoffmann is at their case limit (1)"
    # The round stays Kenji's: a refused pick takes nothing over.
    assert assign.assign_mediator(mediator_request(other)).person_id == "kenji.sato"
    assert (open_offers(sessions, "greta.hoffmann"), open_offers(sessions, "kenji.sato")) == (1, 1)


def test_a_dispute_that_is_not_in_the_database_is_a_clear_business_error(
    workers: list[SessionFactory],
) -> None:
    setup(workers[0], person("greta.hoffmann"))
    ghost = dispute("DSP-2026-999999", "northwind", "contoso")
    with pytest.raises(
        ApplicationError, match="dispute DSP-2026-999999 is not in the database"
    ) as e:
        AssignmentActivities(workers[0]).assign_mediator(mediator_request(ghost))
    assert e.value.non_retryable and e.value.type == "UnknownDispute"
    with pytest.raises(ApplicationError, match="not in the database"):
        PanelActivities(workers[0]).draw_panel(panel_request(ghost))


# --- panel seats ----------------------------------------------------------------------------


def held_seats(sessions: SessionFactory, d: Dispute) -> dict[tuple[int, str], str]:
    """(review round, seat) -> member, for the dispute's seats not given back."""
    with sessions.read() as session:
        rows = session.exec(
            select(PanelSeat).where(
                PanelSeat.dispute_number == d.number, col(PanelSeat.released_at).is_(None)
            )
        ).all()
    return {(r.review_round, r.seat): r.person_id for r in rows}


def test_a_panel_draw_seats_its_members_once_and_their_case_limits_count_the_seats(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    first, second, third = setup(sessions, *board(case_limit=1), disputes=3)
    panels = PanelActivities(sessions)
    drawn = panels.draw_panel(panel_request(first))
    assert panels.draw_panel(panel_request(first)) == drawn  # a retry seats nobody twice
    assert held_seats(sessions, first) == {
        (1, "sales"): "sales.1",
        (1, "finance"): "finance.1",
        (1, "chair"): "chair.1",
    }
    assert seated(panels.draw_panel(panel_request(second))) == {"sales.2", "finance.2", "chair.2"}
    full = panels.draw_panel(panel_request(third))
    assert not full.complete and not full.members and full.chair is None
    assert full.reason.startswith("too few eligible board members: no sales, finance, chair")
    assert "Sales 1 is at their case limit (1)" in full.reason
    assert held_seats(sessions, third) == {}


def test_a_recused_panelist_gives_the_seat_back_and_a_new_round_gives_back_the_old_panel(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    d, other = setup(sessions, *board(case_limit=1), disputes=2)
    panels = PanelActivities(sessions)
    panels.draw_panel(panel_request(d))
    # Sales 1 recuses: the workflow asks for the sales seat again, excluding them and the
    # members still sitting (the chair is drawn every time, and stays who it was).
    refill = panel_request(d, excluded_person_ids=("sales.1", "finance.1"), functions=("sales",))
    replaced = panels.draw_panel(refill)
    assert [m.person_id for m in replaced.members] == ["sales.2"]
    assert replaced.chair is not None and replaced.chair.person_id == "chair.1"
    assert panels.draw_panel(refill) == replaced  # a retried refill keeps the replacement
    assert held_seats(sessions, d) == {
        (1, "sales"): "sales.2",
        (1, "finance"): "finance.1",
        (1, "chair"): "chair.1",
    }
    # Sales 1 is free for another dispute again.
    assert "sales.1" in seated(panels.draw_panel(panel_request(other)))
    with sessions.begin() as session:
        ended = session.get(Dispute, other.number)
        assert ended is not None
        ended.stage = DisputeStage.WITHDRAWN
        session.add(ended)
    # An appeal: round 2 excludes the first panel and gives its seats back.
    appeal = panel_request(
        d, round=2, excluded_person_ids=("sales.1", "sales.2", "finance.1", "chair.1")
    )
    fresh = panels.draw_panel(appeal)
    assert seated(fresh) == {"finance.2", "chair.2"}  # no sales holder left who may sit
    assert held_seats(sessions, d) == {(2, "finance"): "finance.2", (2, "chair"): "chair.2"}


def test_panels_rotate_to_whoever_has_waited_longest_since_last_seated(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    disputes = setup(sessions, *board(), disputes=3)
    panels = PanelActivities(sessions)
    firsts = [
        seated(panels.draw_panel(panel_request(d, at=NOW + timedelta(days=i))))
        for i, d in enumerate(disputes[:2])
    ]
    assert firsts == [{"sales.1", "finance.1", "chair.1"}, {"sales.2", "finance.2", "chair.2"}]
    with sessions.begin() as session:
        for number in (disputes[0].number, disputes[1].number):
            closed = session.get(Dispute, number)
            assert closed is not None
            closed.stage = DisputeStage.CLOSED
            session.add(closed)
    # Nobody carries a seat now; the first panel sat longest ago, so it sits next.
    later = panels.draw_panel(panel_request(disputes[2], at=NOW + timedelta(days=9)))
    assert seated(later) == {"sales.1", "finance.1", "chair.1"}


# --- a round that has ended stays ended --------------------------------------------------------


@pytest.mark.parametrize("ending", ["recused", "expired"])
def test_a_late_attempt_of_a_mediator_round_that_has_ended_takes_no_seat(
    workers: list[SessionFactory], ending: str
) -> None:
    """Round 1 ended and round 2 was drawn; an attempt of round 1 still in flight (stuck on a
    lock past its timeout, its retry long answered) then lands: nobody would ever offer, accept
    or release a seat it took."""
    sessions = workers[0]
    (d,) = setup(sessions, person("greta.hoffmann"), person("kenji.sato"), disputes=1)
    assign = AssignmentActivities(sessions)
    first = assign.assign_mediator(mediator_request(d))
    assert first.person_id == "greta.hoffmann"
    record(sessions, d, 1, 1, "greta.hoffmann", "offered")
    record(sessions, d, 2, 1, "greta.hoffmann", ending)
    second = assign.assign_mediator(
        mediator_request(d, round_no=2, excluded_person_ids=("greta.hoffmann",))
    )
    assert second.person_id == "kenji.sato"

    late = assign.assign_mediator(mediator_request(d))

    assert late.person_id is None
    assert late.reason == f"round 1 has ended (Greta Hoffmann {ending})"
    assert [(p, what) for p, n, what in held(sessions) if n == d.number] == [
        ("kenji.sato", "round 2")
    ]
    # A late admin's pick for the ended round takes nothing either.
    pick = assign.assign_mediator(mediator_request(d, chosen_person_id="greta.hoffmann"))
    assert (pick.person_id, pick.reason) == (None, late.reason)
    assert open_offers(sessions, "greta.hoffmann") == 0


def test_a_late_attempt_of_an_older_mediator_round_takes_no_seat(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    (d,) = setup(sessions, person("greta.hoffmann"), person("kenji.sato"), disputes=1)
    assign = AssignmentActivities(sessions)
    assert assign.assign_mediator(mediator_request(d, round_no=2)).person_id == "greta.hoffmann"

    late = assign.assign_mediator(mediator_request(d))  # round 1 never wrote its row

    assert (late.person_id, late.reason) == (None, "round 1 has ended (round 2 was drawn)")
    assert [(p, what) for p, n, what in held(sessions) if n == d.number] == [
        ("greta.hoffmann", "round 2")
    ]


def test_a_late_first_round_draw_after_the_appeal_round_does_not_reseat_the_first_panel(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    (d,) = setup(sessions, *board(), disputes=1)
    panels = PanelActivities(sessions)
    first = panels.draw_panel(panel_request(d))
    appeal = panels.draw_panel(
        panel_request(
            d, round=2, excluded_person_ids=tuple(seated(first)), at=NOW + timedelta(days=9)
        )
    )
    assert appeal.complete

    late = panels.draw_panel(panel_request(d))

    assert not late.complete and not late.members and late.chair is None
    assert late.reason == "review round 1 has ended (round 2 was drawn)"
    assert held_seats(sessions, d) == {
        (2, "sales"): "sales.2",
        (2, "finance"): "finance.2",
        (2, "chair"): "chair.2",
    }


# --- a mediator's seat counts while they mediate ------------------------------------------------


def test_a_mediator_is_free_for_the_next_filing_once_their_dispute_leaves_mediation(
    workers: list[SessionFactory],
) -> None:
    sessions = workers[0]
    d, other = setup(sessions, person("greta.hoffmann", case_limit=1), disputes=2)
    assign = AssignmentActivities(sessions)
    assert assign.assign_mediator(mediator_request(d)).person_id == "greta.hoffmann"
    record(sessions, d, 1, 1, "greta.hoffmann", "offered")
    record(sessions, d, 2, 1, "greta.hoffmann", "accepted")

    def moved_to(stage: DisputeStage) -> None:
        with sessions.begin() as session:
            row = session.get(Dispute, d.number)
            assert row is not None
            row.stage = stage
            session.add(row)

    for stage in (DisputeStage.MEDIATION, DisputeStage.AWAITING_PARTY):
        moved_to(stage)
        refused = assign.assign_mediator(mediator_request(other))
        assert refused.reason == "no eligible mediator: Greta Hoffmann is at their case limit (1)"
    moved_to(DisputeStage.FORMAL_REVIEW)  # an impasse: the board reviews, she is done
    assert assign.assign_mediator(mediator_request(other)).person_id == "greta.hoffmann"
    # A late attempt of the first dispute's round changes nothing there.
    assign.assign_mediator(mediator_request(d))
    assert open_offers(sessions, "greta.hoffmann") == 1
    with sessions.read() as session:
        first_round = session.exec(
            select(Assignment.state).where(Assignment.dispute_number == d.number)
        ).all()
    assert first_round == [AssignmentState.ACCEPTED]


async def test_a_mediator_whose_mediation_ended_in_impasse_is_free_for_the_next_filing(
    stack_on_both: Stack,
) -> None:
    """Only Maria mediates (case limit 1). Her first dispute goes to formal review: the board
    reviews, the appeal window runs, remedies are applied (weeks), and she is free meanwhile."""
    stack = stack_on_both
    with stack.sessions.begin() as session:
        session.execute(
            update(Person).where(col(Person.role) == Role.MEDIATOR).values(active=False)
        )
        session.execute(
            update(Person).where(col(Person.id) == "maria.lopez").values(active=True, case_limit=1)
        )
    first = (await stack.file()).number
    mediator = await asyncio.wait_for(in_mediation(stack, first), 40)
    await stack.handle(first).execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    await stack.wait_for(first, lambda s: s.stage is DisputeStage.FORMAL_REVIEW)
    second = (
        await stack.file(
            respondent_ids=["fabrikam"],
            contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0077"}],
        )
    ).number
    state = await stack.wait_for(
        second,
        lambda s: (
            s.candidate_mediator_id is not None
            or any(t.kind is TaskKind.ASSIGN_MEDIATOR for t in s.open_tasks)
        ),
    )
    assert state.candidate_mediator_id == "maria.lopez", state.open_tasks


# --- the directory import and reservations at once ----------------------------------------------

IMPORT = """
people:
  - {id: sam.okafor, name: Sam Okafor, email: sam.okafor@vendor.example, role: mediator,
     calendar: GB, case_limit: 7}
accounts:
  - {code: ACME-NEW, name: Acme New, partner_id: northwind, owner_person_id: greta.hoffmann}
"""


def test_an_import_racing_a_reservation_neither_deadlocks_nor_fails(
    workers: list[SessionFactory],
) -> None:
    """The import updates Sam, then adds an account owned by Greta. A filing's reservation
    arriving in between locks the mediators in id order (Greta, ..., Sam); the account's
    owner check then needs Greta, while the reservation waits for Sam. Both must go through."""
    main, importer, filer = workers[:3]
    seed(main, DEMO)
    with main.begin() as session:
        session.add(d := dispute("DSP-2026-820001", "northwind", "contoso"))
    between = threading.Event()

    def someone_waits_for_a_lock() -> bool:
        with main.read() as session:
            return bool(
                session.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
            )

    @event.listens_for(importer.engine, "before_cursor_execute")
    def hold_before_the_accounts(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO ACCOUNT"):
            return
        between.set()
        # Until the reservation is waiting; SQLite cannot show that, so a short hold there.
        deadline = time.monotonic() + (10 if importer.engine.dialect.name != "sqlite" else 0.5)
        while time.monotonic() < deadline:
            if importer.engine.dialect.name != "sqlite" and someone_waits_for_a_lock():
                return
            time.sleep(0.05)

    def run_import() -> None:
        with importer.begin() as session:
            import_directory(session, parse_directory(IMPORT))

    def run_assign() -> MediatorChoice:
        assert between.wait(20)
        return AssignmentActivities(filer).assign_mediator(mediator_request(d))

    with ThreadPoolExecutor(max_workers=2) as pool:
        imported = pool.submit(run_import)
        assigned = pool.submit(run_assign)
        imported.result(timeout=45)
        choice = assigned.result(timeout=45)

    assert choice.person_id is not None, choice
    with main.read() as session:
        account = session.get(Account, "ACME-NEW")
        sam = session.get(Person, "sam.okafor")
    assert account is not None and account.owner_person_id == "greta.hoffmann"
    assert sam is not None and sam.case_limit == 7


# --- the property: random directories, filings at once ---------------------------------------


@dataclass(frozen=True)
class Neutral:
    organisation: int | None
    """The partner (by index) they work for, or None for the vendor."""
    conflicts: frozenset[int]
    case_limit: int
    active: bool


@dataclass(frozen=True)
class Filing:
    claimant: int
    respondent: int
    panel: bool
    """In formal review (a panel is drawn) rather than in triage (a mediator is chosen)."""
    retried: bool
    """The activity runs twice at the same time, as a retry racing its first attempt."""
    chosen: int | None
    """An admin's pick of mediator (by index), screened like anyone else."""
    then: str
    """Before the second wave: 'stay', 'close', or 'recuse' (the mediator, or a panelist)."""


@dataclass(frozen=True)
class Scenario:
    partners: int
    mediators: tuple[Neutral, ...]
    board: tuple[tuple[str, tuple[Neutral, ...]], ...]
    """Each board function (and the chair) with its holders."""
    first: tuple[Filing, ...]
    second: tuple[Filing, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    partners = draw(st.integers(min_value=2, max_value=4))
    partner = st.integers(min_value=0, max_value=partners - 1)
    neutral = st.builds(
        Neutral,
        organisation=st.none() | st.none() | partner,  # mostly the vendor's own staff
        conflicts=st.frozensets(partner, max_size=1),
        case_limit=st.sampled_from([0, 1, 1, 2, 3]),
        active=st.sampled_from([True, True, True, False]),
    )

    mediators = tuple(draw(st.lists(neutral, min_size=1, max_size=4)))

    @st.composite
    def filing(draw: st.DrawFn) -> Filing:
        claimant = draw(partner)
        respondent = draw(st.integers(min_value=0, max_value=partners - 2))
        return Filing(
            claimant=claimant,
            respondent=respondent + (respondent >= claimant),
            panel=draw(st.booleans()),
            retried=draw(st.booleans()),
            chosen=draw(st.none() | st.none() | st.integers(0, len(mediators) - 1)),
            then=draw(st.sampled_from(["stay", "close", "recuse"])),
        )

    return Scenario(
        partners=partners,
        mediators=mediators,
        board=tuple(
            (seat, tuple(draw(st.lists(neutral, min_size=2, max_size=3))))
            for seat in (*BOARD_FUNCTIONS, "chair")
        ),
        first=tuple(draw(st.lists(filing(), min_size=2, max_size=6))),
        second=tuple(draw(st.lists(filing(), min_size=0, max_size=3))),
    )


EXAMPLES = itertools.count()


class Trial:
    """One scenario's directory and disputes in the shared database, under its own ids."""

    def __init__(self, workers: list[SessionFactory], scenario: Scenario) -> None:
        self.workers = workers
        self.sessions = workers[0]
        tag = f"x{next(EXAMPLES)}"
        self.tag = tag
        self.partners = [f"{tag}-p{i}" for i in range(scenario.partners)]
        self.people: dict[str, Person] = {}
        for i, n in enumerate(scenario.mediators):
            self._person(f"{tag}-m{i}", Role.MEDIATOR, None, n)
        for seat, holders in scenario.board:
            for i, n in enumerate(holders):
                self._person(f"{tag}-{seat}{i}", Role.BOARD, seat, n)
        self.parties: dict[str, tuple[str, str]] = {}
        self.excluded: dict[str, tuple[str, ...]] = {}
        with self.sessions.begin() as session:
            # Earlier examples' people stay in the database, out of the way.
            session.execute(update(Person).values(active=False))
            session.add_all([partner(p) for p in self.partners])
            session.add_all(self.people.values())

    def _person(self, person_id: str, role: Role, seat: str | None, n: Neutral) -> None:
        self.people[person_id] = person(
            person_id,
            role,
            case_limit=n.case_limit,
            organisation="vendor" if n.organisation is None else f"{self.tag}-p{n.organisation}",
            function=seat,
            declared_conflicts=[f"{self.tag}-p{c}" for c in sorted(n.conflicts)],
            active=n.active,
        )

    def file(self, wave: int, filings: tuple[Filing, ...]) -> list[Dispute]:
        made = [
            dispute(
                f"{self.tag}-{wave}-{i}", self.partners[f.claimant], self.partners[f.respondent]
            )
            for i, f in enumerate(filings)
        ]
        with self.sessions.begin() as session:
            session.add_all(made)
        for d in made:
            self.parties[d.number] = (d.claimant_id, d.respondent_ids[0])
        return made

    def affiliated(self, person_id: str, number: str) -> bool:
        p = self.people[person_id]
        parties = set(self.parties[number])
        return p.organisation in parties or bool(parties & set(p.declared_conflicts))

    def could_sit(self, person_id: str, request: MediatorRequest | PanelRequest) -> bool:
        """Eligible but for their load: active, unaffiliated, not excluded."""
        return (
            self.people[person_id].active
            and not self.affiliated(person_id, request.number)
            and person_id not in request.excluded_person_ids
        )


@dataclass
class Attempt:
    dispute: Dispute
    filing: Filing
    request: MediatorRequest | PanelRequest
    outcomes: list[MediatorChoice | PanelChoice]


def act(
    worker: SessionFactory, request: MediatorRequest | PanelRequest
) -> MediatorChoice | PanelChoice:
    """What the workflow asks of a worker: a panel, or a mediator and then the offer's entry."""
    if isinstance(request, PanelRequest):
        return PanelActivities(worker).draw_panel(request)
    choice = AssignmentActivities(worker).assign_mediator(request)
    offer(RecordActivities(worker), request, choice)
    return choice


def run_wave(
    trial: Trial, filings: list[tuple[Dispute, Filing, int, PanelRequest | None]]
) -> list[Attempt]:
    """Every filing's request at once, each on a worker of its own (a retried one twice)."""
    attempts: list[Attempt] = []
    calls: list[Callable[[], MediatorChoice | PanelChoice]] = []
    for i, (d, f, round_no, asked) in enumerate(filings):
        request: MediatorRequest | PanelRequest
        if asked is not None:
            request = asked
        elif f.panel:
            request = panel_request(d)
        else:
            request = mediator_request(
                d,
                round_no,
                excluded_person_ids=trial.excluded.get(d.number, ()),
                chosen_person_id=None if f.chosen is None else f"{trial.tag}-m{f.chosen}",
            )
        attempt = Attempt(d, f, request, [])
        attempts.append(attempt)
        for n in range(2 if f.retried else 1):
            worker = trial.workers[(i + n) % len(trial.workers)]
            calls.append(functools.partial(act, worker, request))
    outcomes = iter(at_once(calls))
    for attempt in attempts:
        attempt.outcomes = [next(outcomes) for _ in range(2 if attempt.filing.retried else 1)]
    return attempts


def seats_of(outcome: MediatorChoice | PanelChoice) -> dict[str, str]:
    if isinstance(outcome, MediatorChoice):
        return {"mediator": outcome.person_id} if outcome.person_id else {}
    chair = {"chair": outcome.chair.person_id} if outcome.chair else {}
    return {m.function: m.person_id for m in outcome.members} | chair


def check(trial: Trial, attempts: list[Attempt], *, freed: set[str]) -> None:
    """The invariants, read back from the database after a wave."""
    mine = [(p, n, what) for p, n, what in held(trial.sessions) if n.startswith(f"{trial.tag}-")]
    load = Counter(p for p, _, _ in mine)
    for person_id, count in load.items():
        assert count <= trial.people[person_id].case_limit, (person_id, mine)
    for person_id, number, what in mine:
        assert trial.people[person_id].active, (person_id, number, what)
        assert not trial.affiliated(person_id, number), (person_id, number, what)
    taken = set(mine)

    def full(person_id: str) -> bool:
        return load[person_id] >= trial.people[person_id].case_limit

    for a in attempts:
        number = a.request.number
        first, *retries = [seats_of(o) for o in a.outcomes]
        for retry in retries:  # a retry agrees with its first attempt on every seat both filled
            assert all(retry[k] == v for k, v in first.items() if k in retry), a
            assert retry == first or freed, a
        for outcome in a.outcomes:
            if isinstance(outcome, MediatorChoice):
                if outcome.person_id:
                    assert (outcome.person_id, number, f"round {a.request.round}") in taken
                    continue
                assert outcome.reason.startswith("no eligible mediator: "), outcome
                # Refused only when whoever could have sat had no room left.
                assert isinstance(a.request, MediatorRequest)
                for p in trial.people.values():
                    if a.request.chosen_person_id not in (None, p.id):
                        continue
                    if p.role is Role.MEDIATOR and trial.could_sit(p.id, a.request):
                        assert full(p.id) or p.id in freed, (p.id, outcome.reason, mine)
                continue
            for seat, person_id in seats_of(outcome).items():
                assert (person_id, number, seat) in taken, (seat, person_id, mine)
            assert isinstance(a.request, PanelRequest)
            wanted = {*a.request.functions, "chair"}
            for seat in wanted - seats_of(outcome).keys():
                assert not outcome.complete
                for p in trial.people.values():
                    if p.function == seat and trial.could_sit(p.id, a.request):
                        assert full(p.id) or p.id in freed, (p.id, outcome.reason, mine)


def test_no_case_limit_is_exceeded_and_no_affiliated_neutral_is_seated_whatever_arrives_together(
    workers: list[SessionFactory],
) -> None:
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],  # no shrinking: each example is a database's worth of work
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(scenario=scenarios())
    def property_holds(scenario: Scenario) -> None:
        trial = Trial(workers, scenario)
        first = trial.file(1, scenario.first)
        wave = run_wave(
            trial, [(d, f, 1, None) for d, f in zip(first, scenario.first, strict=True)]
        )
        check(trial, wave, freed=set())
        # Between the waves some disputes close and some neutrals recuse; then more arrive,
        # together with the recused disputes' new requests.
        again: list[tuple[Dispute, Filing, int, PanelRequest | None]] = []
        freed: set[str] = set()
        for attempt in wave:
            d, f, outcome = attempt.dispute, attempt.filing, attempt.outcomes[0]
            if f.then == "close":
                with trial.sessions.begin() as session:
                    ended = session.get(Dispute, d.number)
                    assert ended is not None
                    ended.stage = DisputeStage.CLOSED
                    session.add(ended)
            elif f.then == "recuse" and isinstance(outcome, MediatorChoice) and outcome.person_id:
                record(trial.sessions, d, 2, 1, outcome.person_id, "recused")
                trial.excluded[d.number] = (outcome.person_id,)
                again.append((d, f, 2, None))
            elif f.then == "recuse" and isinstance(outcome, PanelChoice) and outcome.members:
                leaving, *staying = outcome.members
                trial.excluded[d.number] = (leaving.person_id,)
                freed.add(leaving.person_id)
                refill = panel_request(
                    d,
                    excluded_person_ids=(leaving.person_id, *(m.person_id for m in staying)),
                    functions=(leaving.function,),
                )
                again.append((d, f, 1, refill))
        later = trial.file(2, scenario.second)
        again += [(d, f, 1, None) for d, f in zip(later, scenario.second, strict=True)]
        check(trial, run_wave(trial, again), freed=freed)

    property_holds()
