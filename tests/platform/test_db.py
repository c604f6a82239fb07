"""The session factory's turns at SQLite's one writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from temporalio import activity
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from accord.application import build_services
from accord.platform.db import SessionFactory, Turn, make_engine
from accord.platform.settings import Settings


def _queued(sessions: SessionFactory, count: int) -> None:
    """Wait until `count` writers are queued for the writer's turn."""
    deadline = time.monotonic() + 10
    while sessions.writers_waiting() < count:
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.005)


def test_writers_take_sqlite_turns_by_urgency_then_in_arrival_order(tmp_path: Path) -> None:
    sessions = SessionFactory(make_engine(f"sqlite:///{tmp_path / 'turns.db'}"))
    with sessions.begin() as session:
        session.execute(text("CREATE TABLE log (who TEXT)"))
    order: list[str] = []

    def write(who: str, turn: Turn) -> None:
        with sessions.begin(turn=turn) as session:
            session.execute(text("INSERT INTO log VALUES (:who)"), {"who": who})
            order.append(who)

    arrivals = [
        ("mail 1", Turn.BACKGROUND),
        ("entry 1", Turn.NORMAL),
        ("mail 2", Turn.BACKGROUND),
        ("filing", Turn.URGENT),
        ("entry 2", Turn.NORMAL),
    ]
    threads: list[threading.Thread] = []
    with sessions.begin():  # holds the writer's turn while the others queue, one at a time
        for i, (who, turn) in enumerate(arrivals):
            thread = threading.Thread(target=write, args=(who, turn))
            thread.start()
            threads.append(thread)
            _queued(sessions, i + 1)
    for thread in threads:
        thread.join(10)
    assert order == ["filing", "entry 1", "entry 2", "mail 1", "mail 2"]
    with sessions.read() as session:
        assert session.execute(text("SELECT count(*) FROM log")).scalar_one() == 5
    assert sessions.writers_waiting() == 0


def test_a_background_writer_waits_no_longer_than_its_patience(tmp_path: Path) -> None:
    """Mail is written after the audit trail's entries, but not forever: once a background
    writer has waited its patience, it goes before writers that arrived after it."""
    sessions = SessionFactory(
        make_engine(f"sqlite:///{tmp_path / 'patience.db'}"), background_patience=0.05
    )
    order: list[str] = []

    def write(who: str, turn: Turn) -> None:
        with sessions.begin(turn=turn):
            order.append(who)

    threads = []
    with sessions.begin():
        mail = threading.Thread(target=write, args=("mail", Turn.BACKGROUND))
        mail.start()
        threads.append(mail)
        _queued(sessions, 1)
        time.sleep(0.1)
        entry = threading.Thread(target=write, args=("entry", Turn.NORMAL))
        entry.start()
        threads.append(entry)
        _queued(sessions, 2)
    for thread in threads:
        thread.join(10)
    assert order == ["mail", "entry"]


def test_a_failed_transaction_gives_the_turn_to_the_next_writer(tmp_path: Path) -> None:
    sessions = SessionFactory(make_engine(f"sqlite:///{tmp_path / 'fail.db'}"))
    with pytest.raises(OperationalError), sessions.begin() as session:
        session.execute(text("SELECT * FROM no_such_table"))
    done = threading.Event()

    def write() -> None:
        with sessions.begin():
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert done.wait(5), "the writer's turn was not given back after a failure"
    thread.join(5)


def test_postgresql_writers_take_no_turns() -> None:
    sessions = SessionFactory(make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    with sessions.begin(turn=Turn.URGENT), sessions.begin(turn=Turn.BACKGROUND):
        assert sessions.writers_waiting() == 0


def test_an_activity_cancelled_while_it_waits_for_its_turn_passes_the_turn_on(
    tmp_path: Path,
) -> None:
    """Temporal cancels a threaded activity by raising into its thread (a local activity whose
    workflow task was lost, say). Raised while the activity waited for SQLite's writer, the
    exception used to land just after the turn was handed to it, before anything could give
    the turn back: every later writer of the process then waited for ever (the parked
    benchmark wedged with 20 record activities queued). The cancelled activity now finishes
    its turn, then is cancelled; the next writer writes."""
    sessions = SessionFactory(make_engine(f"sqlite:///{tmp_path / 'cancel.db'}"))
    with sessions.begin() as session:
        session.execute(text("CREATE TABLE log (who TEXT)"))
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with sessions.begin() as session:
            session.execute(text("INSERT INTO log VALUES ('holder')"))
            holding.set()
            release.wait(10)

    env = ActivityEnvironment()
    outcome: list[BaseException | None] = []

    def record() -> None:
        with sessions.begin() as session:
            session.execute(text("INSERT INTO log VALUES ('cancelled')"))

    def cancelled_activity() -> None:
        try:
            env.run(activity.defn(name="record")(record))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    first = threading.Thread(target=holder)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=cancelled_activity)
    second.start()
    _queued(sessions, 1)
    env.cancel()
    release.set()
    first.join(10)
    second.join(10)
    assert outcome and isinstance(outcome[0], CancelledError), outcome

    done = threading.Event()

    def later() -> None:
        with sessions.begin() as session:
            session.execute(text("INSERT INTO log VALUES ('later')"))
        done.set()

    threading.Thread(target=later, daemon=True).start()
    assert done.wait(10), "the writer's turn was lost with the cancelled activity"
    assert sessions.writers_waiting() == 0


def test_the_writers_use_counts_turns_held_and_waited_time(tmp_path: Path) -> None:
    """What a benchmark reads to say whether its run waited on SQLite's one writer."""
    sessions = SessionFactory(make_engine(f"sqlite:///{tmp_path / 'use.db'}"))
    before = sessions.writer_use()

    def write() -> None:
        with sessions.begin():
            pass

    with sessions.begin():
        waiting = threading.Thread(target=write)
        waiting.start()
        _queued(sessions, 1)
        time.sleep(0.05)  # the second writer waits this long at least
    waiting.join(10)
    use = sessions.writer_use().since(before)
    assert use.turns == 2
    assert use.waited_seconds >= 0.05
    assert use.held_seconds >= 0.05  # the first held it while the second waited
    assert (
        SessionFactory(
            make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        ).writer_use()
        == type(use)()
    )


def test_a_failed_statement_s_error_never_holds_what_it_was_given(database_url: str) -> None:
    """A database error reaches logs and tracebacks: SQLAlchemy writes the statement's values
    into its message unless told not to, and they are partners' texts, addresses, tokens."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe_values (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO probe_values VALUES (1, 'first')"))
    with pytest.raises(IntegrityError) as failed, engine.begin() as connection:
        connection.execute(
            text("INSERT INTO probe_values VALUES (:id, :body)"),
            {"id": 1, "body": "Nora's confidential caucus note"},
        )
    assert "confidential" not in str(failed.value)
    assert "hidden due to hide_parameters" in str(failed.value)
    engine.dispose()


def test_the_pool_is_as_the_settings_say() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://accord@db/accord",
        database_pool_size=4,
        database_max_overflow=2,
    )
    engine = make_engine(
        settings.resolved_database_url(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    assert (engine.pool.size(), engine.pool._max_overflow) == (4, 2)  # type: ignore[attr-defined]
    services = build_services(settings)
    pool = services.sessions.engine.pool
    assert (pool.size(), pool._max_overflow) == (4, 2)  # type: ignore[attr-defined]
