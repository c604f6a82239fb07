"""Adversarial probes of 0032 (dispute_search.parties), the FROM-list websearch parse with
ts_rank, and the worker's _Runner: partners never see another's dispute however they search,
the parties array never drifts from dispute_party, pages of equal matches neither repeat nor
skip, and the runner answers as the stock sandbox does. English stop words still differ between
the databases (PostgreSQL's websearch_to_tsquery drops them, FTS5 searches them): accepted."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from accord.disputes.access import Viewer
from accord.disputes.listing import DisputeFilters, list_disputes
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from models.enums import AssignmentState, DisputeStage, Role
from models.payloads import Actor
from models.tables import Assignment, Dispute, DisputeParty
from tests.conftest import fresh_postgres_database, seed
from tests.precedents.test_search import _dispute

COMPLIANCE = Viewer(Actor(id="c", role=Role.COMPLIANCE, name="C"), "c@vendor.example")
ADMIN = Viewer(Actor(id="alex.admin", role=Role.ADMIN, name="A"), "a@vendor.example")


def partner(pid: str | None) -> Viewer:
    return Viewer(Actor(id=f"{pid}@x", role=Role.PARTNER, name="P", partner_id=pid), "p@x")


MEDIATOR = Viewer(Actor(id="maria.lopez", role=Role.MEDIATOR, name="M"), "m@vendor.example")

BASE = datetime(2026, 3, 1, 9, tzinfo=UTC)

# number -> (parties, facts, filed offset days, stage)
DATA: dict[str, tuple[tuple[str, ...], str, int, DisputeStage]] = {
    "DSP-2026-000001": (
        ("northwind", "contoso"),
        "Quokka pricing quarrel over rebates.",
        1,
        DisputeStage.MEDIATION,
    ),
    "DSP-2026-000002": (
        ("fabrikam", "contoso"),
        "Quokka territory quarrel in Pacific.",
        2,
        DisputeStage.MEDIATION,
    ),
    "DSP-2026-000003": (
        ("adatum",),
        "Quokka registration, mentions DSP-2026-000002.",
        3,
        DisputeStage.CLOSED,
    ),
    "DSP-2026-000004": (("fabrikam",), "Wombat matters only; or not.", 4, DisputeStage.MEDIATION),
    "DSP-2026-000005": ((), "Quokka with no parties at all.", 5, DisputeStage.MEDIATION),
    "DSP-2026-000010": (
        ("northwind", "fabrikam"),
        'Rebate "quoted" quokka-deal.',
        6,
        DisputeStage.MEDIATION,
    ),
}


def _add(
    session: Any, number: str, parties: tuple[str, ...], facts: str, days: int, stage: DisputeStage
) -> None:
    d = _dispute(number, facts, BASE + timedelta(days=days))
    d.stage = stage
    if parties:
        d.claimant_id = parties[0]
        d.respondent_ids = list(parties[1:])
    session.add(d)
    session.flush()
    for i, p in enumerate(parties):
        session.add(
            DisputeParty(
                dispute_number=number, partner_id=p, side="claimant" if i == 0 else "respondent"
            )
        )


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    with factory.begin() as session:
        for number, (parties, facts, days, stage) in DATA.items():
            _add(session, number, parties, facts, days, stage)
    return factory


def _truth(sessions: SessionFactory) -> dict[str, set[str]]:
    with sessions.read() as session:
        rows = session.exec(select(DisputeParty)).all()
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r.dispute_number, set()).add(r.partner_id)
    return found


def _all_pages(
    sessions: SessionFactory, viewer: Viewer, filters: DisputeFilters, pages: int = 10
) -> tuple[list[str], set[int]]:
    seen: list[str] = []
    totals: set[int] = set()
    with sessions.read() as session:
        for page in range(1, pages + 1):
            rows, total = list_disputes(session, viewer, filters, page=page)
            totals.add(total)
            seen += [r.number for r in rows]
    return seen, totals


QUERIES = [
    "quokka",
    "quokka OR wombat",
    "wombat or",
    "-quokka",
    '"',
    "-",
    '"" -"" -',
    "quokka -pacific",
    '"quokka territory"',
    "DSP-2026",
    "dsp-2026-00000",
    "DSP-2026-000002",
    "DSP-",
    "DSP",
    "'); DROP TABLE dispute; --",
    "Straße 東京 quokka",
    "q" * 200,
    "quokka " * 28,
    "rebate* quo:* !quokka & | <->",
    "quokka-deal",
    "quoted",
]


@pytest.mark.parametrize("pid", ["fabrikam", "northwind", "adatum", "contoso", "nobody"])
@pytest.mark.parametrize("party", [None, "contoso", "northwind", "fabrikam", "nobody"])
def test_partner_never_sees_a_dispute_it_is_not_party_to(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch, pid: str, party: str | None
) -> None:
    """Every query, with and without the party filter, over every page (page size 1): only the
    partner's own disputes (and the party filter's), counted as listed."""
    monkeypatch.setattr("accord.disputes.listing.PAGE_SIZE", 1)
    truth = _truth(sessions)
    viewer = partner(pid)
    for q in QUERIES:
        seen, totals = _all_pages(sessions, viewer, DisputeFilters(q=q, party=party), pages=8)
        for n in seen:
            assert pid in truth.get(n, set()), (q, party, n)
            if party:
                assert party in truth.get(n, set()), (q, party, n)
        assert len(seen) == len(set(seen)), (q, party, seen)
        assert totals == {len(seen)}, (q, party, seen, totals)


@pytest.mark.parametrize("pid", [None, ""])
def test_partner_without_a_partner_id_sees_nothing(
    sessions: SessionFactory, pid: str | None
) -> None:
    """dispute_scope treats a partner user with no (None) or an empty partner id as party to
    nothing; the search by words must agree."""
    viewer = partner(pid)
    for q in ("quokka", "wombat", "DSP-2026", "quokka DSP"):
        for party in (None, "contoso"):
            seen, totals = _all_pages(sessions, viewer, DisputeFilters(q=q, party=party), 2)
            assert (seen, totals) == ([], {0}), (q, party)
    with sessions.read() as session:  # and the list without words agrees
        rows, total = list_disputes(session, viewer, DisputeFilters(stage=DisputeStage.MEDIATION))
    assert (rows, total) == ([], 0)


def test_mediator_board_compliance_scopes_with_words_and_party(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        session.add(
            Assignment(
                dispute_number="DSP-2026-000001",
                round=1,
                person_id="maria.lopez",
                state=AssignmentState.ACCEPTED,
                assigned_at=BASE,
            )
        )
        session.add(
            Assignment(
                dispute_number="DSP-2026-000002",
                round=1,
                person_id="maria.lopez",
                state=AssignmentState.OFFERED,
                assigned_at=BASE,
            )
        )

    def found(viewer: Viewer, **f: Any) -> list[str]:
        seen, totals = _all_pages(sessions, viewer, DisputeFilters(**f), 2)
        assert totals == {len(seen)}
        return sorted(seen)

    assert found(MEDIATOR, q="quokka") == ["DSP-2026-000001"]
    assert found(MEDIATOR, q="quokka", party="contoso") == ["DSP-2026-000001"]
    assert found(MEDIATOR, q="quokka", party="fabrikam") == []
    assert found(MEDIATOR, q="DSP-2026", party="contoso") == ["DSP-2026-000001"]
    board = Viewer(Actor(id="greta.hoffmann", role=Role.BOARD, name="G"), "g@vendor.example")
    assert found(board, q="quokka") == []
    assert found(board, q="quokka", party="contoso") == []
    for v in (COMPLIANCE, ADMIN):
        assert found(v, q="quokka", party="contoso") == ["DSP-2026-000001", "DSP-2026-000002"]
        assert found(v, q="quokka", party="fabrikam", stage=DisputeStage.MEDIATION) == [
            "DSP-2026-000002",
            "DSP-2026-000010",
        ]
        assert found(v, q="quokka", party="adatum", open_only=True) == ["DSP-2026-000003"]


@pytest.mark.parametrize(
    ("year", "q"), [("2026", "numbat"), ("2027", "DSP-2027")], ids=["words", "number prefix"]
)
def test_equal_matches_filed_in_one_instant_page_without_repeats_or_gaps(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch, year: str, q: str
) -> None:
    """Many disputes with the same text, filed in the same instant, found by their words or by
    the start of their number: every page is a slice of one order, so each dispute is listed
    exactly once across the pages."""
    _file_in_one_instant(sessions, year, "Numbat dispute text.")
    listed = _listed_across_pages(sessions, monkeypatch, DisputeFilters(q=q), pages=13)
    assert {total for total, _ in listed.values()} == {90}
    bad = {who: total - distinct for who, (total, distinct) in listed.items() if distinct != total}
    assert bad == {}, f"disputes missing from every page (shown twice instead): {bad}"


@pytest.mark.parametrize(
    "filters",
    [DisputeFilters(), DisputeFilters(stage=DisputeStage.MEDIATION, open_only=True)],
    ids=["plain list", "filtered list"],
)
def test_disputes_filed_in_one_instant_page_without_repeats_or_gaps_in_the_lists(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch, filters: DisputeFilters
) -> None:
    """The lists without search words order by filing time: disputes filed in the same instant
    (an import, a burst of email) are still each listed exactly once across the pages."""
    _file_in_one_instant(sessions, "2026", "Plain dispute text.")
    listed = _listed_across_pages(sessions, monkeypatch, filters, pages=20)
    assert all(total >= 90 for total, _ in listed.values()), listed
    bad = {who: total - distinct for who, (total, distinct) in listed.items() if distinct != total}
    assert bad == {}, f"disputes missing from every page (shown twice instead): {bad}"


def _file_in_one_instant(sessions: SessionFactory, year: str, facts: str) -> None:
    """90 disputes of northwind's, filed in the same instant with the same text."""
    at = datetime(2026, 5, 1, 9, tzinfo=UTC)
    with sessions.begin() as session:
        for n in (f"DSP-{year}-{i:06d}" for i in range(100, 190)):
            session.add(_dispute(n, facts, at))
            session.flush()
            session.add(DisputeParty(dispute_number=n, partner_id="northwind", side="claimant"))


def _listed_across_pages(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch, filters: DisputeFilters, pages: int
) -> dict[str, tuple[int, int]]:
    """For compliance and for northwind, paging 7 at a time: the total the list gives, and how
    many distinct disputes its pages showed (each page's rows are counted against the total)."""
    monkeypatch.setattr("accord.disputes.listing.PAGE_SIZE", 7)
    listed = {}
    for who, viewer in (("compliance", COMPLIANCE), ("northwind", partner("northwind"))):
        seen, totals = _all_pages(sessions, viewer, filters, pages=pages)
        [total] = totals
        assert len(seen) == total, (who, total, len(seen))
        listed[who] = (total, len(set(seen)))
    return listed


# --- PostgreSQL: the parties array against dispute_party ----------------------------------


def _pg_factory() -> tuple[str, Any, SessionFactory]:
    url, drop = fresh_postgres_database()
    upgrade(url)
    factory = SessionFactory(make_engine(url))
    seed(factory)
    return url, drop, factory


def _drift(factory: SessionFactory) -> list[tuple[str, list[str], list[str]]]:
    with factory.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.number, s.parties, ARRAY(SELECT partner_id FROM dispute_party p"
                " WHERE p.dispute_number = s.number) FROM dispute_search s"
            )
        ).all()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM dispute d LEFT JOIN dispute_search s ON s.number ="
                " d.number WHERE s.number IS NULL"
            )
        ).scalar()
    assert orphans == 0
    return [(n, sorted(a), sorted(b)) for n, a, b in rows if sorted(a) != sorted(b)]


@pytest.mark.postgres
def test_postgres_parties_follow_every_kind_of_write() -> None:
    _url, drop, factory = _pg_factory()
    try:
        with factory.begin() as session:
            for number, (parties, facts, days, stage) in DATA.items():
                _add(session, number, parties, facts, days, stage)
        assert _drift(factory) == []
        with factory.engine.begin() as conn:
            # a party moved to another dispute, a partner renamed on a row, a no-op update
            conn.execute(
                text(
                    "UPDATE dispute_party SET dispute_number = 'DSP-2026-000005'"
                    " WHERE dispute_number = 'DSP-2026-000003'"
                )
            )
            conn.execute(
                text(
                    "UPDATE dispute_party SET partner_id = 'adatum'"
                    " WHERE dispute_number = 'DSP-2026-000004'"
                )
            )
            conn.execute(
                text(
                    "UPDATE dispute_party SET partner_id = partner_id,"
                    " dispute_number = dispute_number"
                )
            )
            # the ON CONFLICT path: a dispute's text and filing time change after its parties
            conn.execute(
                text(
                    "UPDATE dispute SET facts = 'x', filed_at = filed_at"
                    " + interval '1 day', claimant_id = 'northwind'"
                )
            )
            # a dispute removed and filed again under the same number with other parties
            conn.execute(text("DELETE FROM dispute_party WHERE dispute_number = 'DSP-2026-000001'"))
            conn.execute(text("DELETE FROM dispute WHERE number = 'DSP-2026-000001'"))
        assert _drift(factory) == []
        with factory.begin() as session:
            _add(
                session,
                "DSP-2026-000001",
                ("fabrikam",),
                "Reborn quokka.",
                9,
                DisputeStage.MEDIATION,
            )
        assert _drift(factory) == []
        # rolled back writes leave nothing
        with factory.engine.connect() as conn:
            conn.begin()
            conn.execute(
                text("INSERT INTO dispute_party VALUES ('DSP-2026-000002', 'adatum', 'respondent')")
            )
            conn.rollback()
        assert _drift(factory) == []
        # a party filter search after all that agrees with dispute_party
        with factory.read() as session:
            rows, total = list_disputes(session, partner("fabrikam"), DisputeFilters(q="quokka"))
        truth = _truth(factory)
        assert total == len(rows) and all("fabrikam" in truth[r.number] for r in rows)
        assert "DSP-2026-000001" in [r.number for r in rows]
    finally:
        factory.engine.dispose()
        drop()


@pytest.mark.postgres
@pytest.mark.parametrize("order", ["remove_first", "add_first"])
def test_postgres_concurrent_remove_and_add_both_count(order: str) -> None:
    _url, drop, factory = _pg_factory()
    try:
        with factory.begin() as session:
            _add(
                session, "DSP-2026-000001", ("northwind", "contoso"), "q", 1, DisputeStage.MEDIATION
            )
        engine = factory.engine
        first, second = engine.connect(), engine.connect()
        remove = text(
            "DELETE FROM dispute_party WHERE dispute_number = 'DSP-2026-000001'"
            " AND partner_id = 'contoso'"
        )
        add = text("INSERT INTO dispute_party VALUES ('DSP-2026-000001', 'fabrikam', 'x')")
        a, b = (remove, add) if order == "remove_first" else (add, remove)
        first.begin()
        first.execute(a)
        second.begin()
        t = threading.Thread(target=lambda: second.execute(b))
        t.start()
        t.join(1.0)
        first.commit()
        t.join(10)
        second.commit()
        first.close()
        second.close()
        assert _drift(factory) == []
    finally:
        factory.engine.dispose()
        drop()


@pytest.mark.postgres
def test_postgres_downgrade_leaves_nothing_and_upgrades_again() -> None:
    from alembic import command

    from accord.platform.schema import alembic_config

    url, drop, factory = _pg_factory()
    try:
        with factory.begin() as session:
            for number, (parties, facts, days, stage) in DATA.items():
                _add(session, number, parties, facts, days, stage)
        factory.engine.dispose()
        command.downgrade(alembic_config(url), "0031")
        engine = make_engine(url)
        with engine.begin() as conn:
            left = (
                conn.execute(
                    text(
                        "SELECT 'fn' FROM pg_proc WHERE proname = 'dispute_search_parties'"
                        " UNION ALL SELECT 'tg' FROM pg_trigger WHERE tgname = 'dispute_search_parties'"
                        " UNION ALL SELECT 'ix' FROM pg_class WHERE relname = 'ix_dispute_search_parties'"
                        " UNION ALL SELECT 'sync' FROM pg_proc WHERE proname = 'dispute_search_sync'"
                        " AND prosrc LIKE '%parties%'"
                    )
                )
                .scalars()
                .all()
            )
            assert left == []
            conn.execute(
                text("INSERT INTO dispute_party VALUES ('DSP-2026-000005', 'adatum', 'x')")
            )
            conn.execute(text("UPDATE dispute SET facts = 'y'"))
        engine.dispose()
        upgrade(url)
        factory = SessionFactory(make_engine(url))
        assert _drift(factory) == []
    finally:
        factory.engine.dispose()
        drop()


@pytest.mark.postgres
def test_postgres_and_sqlite_answer_alike(tmp_path: Path) -> None:
    """The same data, the same searches: the same disputes in the same order on both."""
    _url, drop, pg = _pg_factory()
    sqlite_url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(sqlite_url)
    lite = SessionFactory(make_engine(sqlite_url))
    seed(lite)
    try:
        for f in (pg, lite):
            with f.begin() as session:
                for number, (parties, facts, days, stage) in DATA.items():
                    _add(session, number, parties, facts, days, stage)
        differ = []
        for viewer in (COMPLIANCE, partner("fabrikam"), partner("northwind")):
            for q in QUERIES:
                for party in (None, "contoso"):
                    answers = []
                    for f in (pg, lite):
                        with f.read() as session:
                            rows, total = list_disputes(
                                session, viewer, DisputeFilters(q=q, party=party)
                            )
                        answers.append((sorted(r.number for r in rows), total))
                    if answers[0] != answers[1]:
                        differ.append((viewer.actor.partner_id, q, party, answers))
        assert differ == []
    finally:
        pg.engine.dispose()
        lite.engine.dispose()
        drop()


# --- the worker's runner ------------------------------------------------------------------


def _details() -> Any:
    from tests.runtime.test_worker_runner import instance_details

    return instance_details()


async def test_runner_contexts_match_stock_for_every_command_type() -> None:
    from temporalio.api.enums.v1 import CommandType
    from temporalio.worker._command_aware_visitor import CommandInfo
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from accord.runtime.wiring import WORKFLOW_RUNNER

    stock = SandboxedWorkflowRunner(restrictions=WORKFLOW_RUNNER.restrictions)
    ours, theirs = WORKFLOW_RUNNER.create_instance(_details()), stock.create_instance(_details())
    for name, value in CommandType.items():
        for seq in (0, 1, 99):
            info = CommandInfo(command_type=value, command_seq=seq)
            assert ours.get_serialization_context(info) == theirs.get_serialization_context(info), (
                name
            )
            assert ours.get_external_store_context(info) == theirs.get_external_store_context(
                info
            ), name
    # the runner is still usable as the Worker configures it
    import dataclasses

    replaced = dataclasses.replace(WORKFLOW_RUNNER)
    assert type(replaced) is type(WORKFLOW_RUNNER)
    WORKFLOW_RUNNER.prepare_workflow(_details().defn)


HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


async def test_stored_histories_replay_on_the_workers_runner() -> None:
    """The worker replays (after eviction) with WORKFLOW_RUNNER, not the stock runner the
    replay tests use; the histories are sealed by the payload codec (CONVERTER)."""
    from temporalio.client import WorkflowHistory

    from accord.runtime.wiring import WORKFLOW_RUNNER
    from tests.conftest import CONVERTER
    from tests.history_splits import dispute_replayer

    assert HISTORIES
    replayer = dispute_replayer(CONVERTER, workflow_runner=WORKFLOW_RUNNER)
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, path.stem


@pytest.mark.parametrize(
    "party",
    [
        "contoso,northwind",
        "{contoso,northwind}",
        '"contoso"',
        "contoso\\",
        "NULL",
        "{}",
        "Contoso",
        " contoso",
        "contoso ",
    ],
)
def test_hostile_party_filters_match_only_that_exact_partner(
    sessions: SessionFactory, party: str
) -> None:
    """The party filter reaches the array as one element, never as array syntax."""
    for viewer in (COMPLIANCE, partner("northwind")):
        for q in ("quokka", "DSP-2026"):
            with sessions.read() as session:
                rows, total = list_disputes(session, viewer, DisputeFilters(q=q, party=party))
            assert (rows, total) == ([], 0), (viewer.actor.partner_id, q, party)


@pytest.mark.postgres
def test_postgres_many_writers_on_one_disputes_parties_keep_the_array_exact() -> None:
    import random

    _url, drop, factory = _pg_factory()
    try:
        with factory.begin() as session:
            _add(session, "DSP-2026-000001", ("northwind",), "q", 1, DisputeStage.MEDIATION)
            _add(session, "DSP-2026-000002", ("contoso",), "q", 2, DisputeStage.MEDIATION)
        partners = ["northwind", "contoso", "fabrikam", "adatum"]
        errors: list[BaseException] = []

        def work(seed_: int) -> None:
            rnd = random.Random(seed_)
            with factory.engine.connect() as conn:
                for _ in range(60):
                    d = rnd.choice(["DSP-2026-000001", "DSP-2026-000002"])
                    p = rnd.choice(partners)
                    op = rnd.choice(["add", "del", "move", "swap"])
                    try:
                        with conn.begin():
                            if op == "add":
                                conn.execute(
                                    text(
                                        "INSERT INTO dispute_party VALUES (:d, :p, 'x')"
                                        " ON CONFLICT DO NOTHING"
                                    ),
                                    {"d": d, "p": p},
                                )
                            elif op == "del":
                                conn.execute(
                                    text(
                                        "DELETE FROM dispute_party WHERE"
                                        " dispute_number = :d AND partner_id = :p"
                                    ),
                                    {"d": d, "p": p},
                                )
                            elif op == "move":
                                conn.execute(
                                    text(
                                        "UPDATE dispute_party SET dispute_number = CASE"
                                        " dispute_number WHEN 'DSP-2026-000001' THEN"
                                        " 'DSP-2026-000002' ELSE 'DSP-2026-000001' END"
                                        " WHERE partner_id = :p"
                                    ),
                                    {"p": p},
                                )
                            else:
                                q = rnd.choice(partners)
                                conn.execute(
                                    text(
                                        "UPDATE dispute_party SET partner_id = :q"
                                        " WHERE dispute_number = :d AND partner_id = :p"
                                    ),
                                    {"d": d, "p": p, "q": q},
                                )
                    except Exception as e:  # unique violations / deadlocks are fine here
                        name = type(getattr(e, "orig", e)).__name__
                        if name not in (
                            "UniqueViolation",
                            "DeadlockDetected",
                            "SerializationFailure",
                        ):
                            errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert _drift(factory) == []
    finally:
        factory.engine.dispose()
        drop()


async def test_live_worker_on_the_runner_seals_queries_and_replays(stack: Any) -> None:
    """A dispute worked on the worker's _Runner with the sealing codec: a note's text never in
    the clear in the history, the query answers, and the history replays on _Runner after the
    worker's cache is gone."""
    from accord.runtime.wiring import WORKFLOW_RUNNER
    from models.enums import NoteVisibility
    from models.payloads import AddNote
    from tests.conftest import CONVERTER
    from tests.history_splits import dispute_replayer
    from tests.workflows.test_dispute_paths import in_mediation
    from workflows.dispute import DisputeWorkflow

    assert stack.worker.config()["workflow_runner"] is WORKFLOW_RUNNER
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(
        DisputeWorkflow.add_note,
        AddNote(
            actor=stack.actor(mediator),
            text="PROBE-SEALED-NOTE-i17s5",
            visibility=NoteVisibility.CAUCUS,
            caucus_partner_id="contoso",
        ),
    )
    state = await stack.wait_for(number, lambda s: len(s.notes) == 1)
    assert state.notes[0].text == "PROBE-SEALED-NOTE-i17s5"
    history = await handle.fetch_history()
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert b"PROBE-SEALED-NOTE-i17s5" not in raw
    replayed = await dispute_replayer(CONVERTER, workflow_runner=WORKFLOW_RUNNER).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None


def test_filed_to_takes_in_the_whole_last_day(sessions: SessionFactory) -> None:
    """`filed_to` is a day, both ends included: a dispute filed in its last microsecond is in
    (the list compared `<` with 23:59:59.999999 and left it out)."""
    last = datetime(2026, 7, 1, 23, 59, 59, 999999, tzinfo=UTC)
    with sessions.begin() as session:
        _add(
            session,
            "DSP-2026-000900",
            ("northwind",),
            "Filed at the day's end.",
            0,
            DisputeStage.FILED,
        )
        session.flush()
        session.get_one(Dispute, "DSP-2026-000900").filed_at = last
    day = DisputeFilters(filed_from=last.date(), filed_to=last.date())
    with sessions.read() as session:
        rows, total = list_disputes(session, COMPLIANCE, day)
    assert [r.number for r in rows] == ["DSP-2026-000900"] and total == 1
    with sessions.read() as session:  # the last day a date can name bounds nothing
        _, total = list_disputes(session, COMPLIANCE, DisputeFilters(filed_to=date.max))
    assert total >= 1
