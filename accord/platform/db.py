"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, Table, event, text
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine, func, select
from sqlmodel.sql.expression import SelectOfScalar
from temporalio import activity

# The key of PostgreSQL's transaction-level advisory lock over the directory's people (any
# 64-bit number no other lock of this database uses; these are the ASCII of "accordpp").
PEOPLE_LOCK_KEY = 0x6163636F72647070

_T = TypeVar("_T")


HIDE_PARAMETERS = True
"""A failed statement's error (in a log line, a traceback) names the statement, never the values
it was given: partners' texts, addresses, tokens."""


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    """An engine for `url`; on PostgreSQL with a pool of `pool_size` connections and up to
    `max_overflow` more (SQLite has one file and no pool to size)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=HIDE_PARAMETERS,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        hide_parameters=HIDE_PARAMETERS,
    )


class Turn(IntEnum):
    """Whose write goes first when several of this process's writers wait for SQLite's one
    writer: a person waiting on the answer, then the disputes' own steps, then mail."""

    URGENT = 0
    """A person waits on this write (a filing being acknowledged), or an email's outcome (until
    it is written, a relay that dies sends the accepted email again)."""
    NORMAL = 1
    """The disputes' own steps (audit entries, seats, remedies)."""
    BACKGROUND = 2
    """The outbox relay's claims and lease renewals: mail may leave a few milliseconds later."""


@dataclass(frozen=True)
class WriterUse:
    """How this process has used SQLite's one writer since it started: the turns taken, the
    seconds they were held and the seconds writers waited for them. A benchmark reads it before
    and after a run: a writer held for most of the run is what the run waits on."""

    turns: int = 0
    held_seconds: float = 0.0
    waited_seconds: float = 0.0

    def taken(self, waited: float) -> WriterUse:
        return replace(self, turns=self.turns + 1, waited_seconds=self.waited_seconds + waited)

    def given_back(self, held: float) -> WriterUse:
        return replace(self, held_seconds=self.held_seconds + held)

    def since(self, earlier: WriterUse) -> WriterUse:
        return WriterUse(
            self.turns - earlier.turns,
            self.held_seconds - earlier.held_seconds,
            self.waited_seconds - earlier.waited_seconds,
        )


class _WriterTurns:
    """SQLite's one writer, handed from each writer to the next in order of urgency, then of
    arrival. A plain lock lets any thread take it on release: under load (16 activity threads,
    the relay, filings) a filing waited a median 57 ms and a p95 of 270 ms for its 8 ms
    transaction, behind the relay's 800 claims and records. A background writer that has
    waited `patience` seconds goes next all the same, so mail is never starved."""

    def __init__(self, patience: float) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._queues: tuple[deque[tuple[float, threading.Lock]], ...] = tuple(deque() for _ in Turn)
        self._patience = patience
        # Written by the writer holding the turn only, so one at a time.
        self.use = WriterUse()
        self._since = 0.0

    def waiting(self) -> int:
        with self._mutex:
            return sum(len(q) for q in self._queues)

    def acquire(self, turn: Turn) -> None:
        asked = time.perf_counter()
        self._take(turn)
        self._since = time.perf_counter()
        self.use = self.use.taken(waited=self._since - asked)

    def _take(self, turn: Turn) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            baton = threading.Lock()
            baton.acquire()
            self._queues[turn].append((time.monotonic(), baton))
        baton.acquire()  # released by the writer handing its turn to this one

    def release(self) -> None:
        self.use = self.use.given_back(held=time.perf_counter() - self._since)
        with self._mutex:
            nxt = self._next()
            if nxt is None:
                self._held = False
            else:
                nxt.release()  # the turn passes straight on: no other thread can barge in

    def _next(self) -> threading.Lock | None:
        background = self._queues[Turn.BACKGROUND]
        if background and time.monotonic() - background[0][0] >= self._patience:
            return background.popleft()[1]
        for queue in self._queues:
            if queue:
                return queue.popleft()[1]
        return None


@contextmanager
def _cancellation_deferred() -> Iterator[None]:
    """In an activity's thread, Temporal's cancellation is raised at the end of the block, not
    inside it; elsewhere, nothing."""
    if not activity.in_activity():
        yield
        return
    with activity.shield_thread_cancel_exception():
        yield


class SessionFactory:
    """Hands out short transactions; activities hold one of these, never a global session."""

    def __init__(self, engine: Engine, *, background_patience: float = 0.5) -> None:
        self.engine = engine
        # SQLite allows one writer at a time and makes the others poll with growing sleeps;
        # queueing this process's writers instead cut the lifecycle benchmark's latency, and
        # taking them by urgency keeps a filing from waiting behind the relay's mail.
        # PostgreSQL needs no such thing.
        self._turns = _WriterTurns(background_patience) if engine.dialect.name == "sqlite" else None

    def writer_use(self) -> WriterUse:
        """This process's use of SQLite's writer so far (nothing on PostgreSQL)."""
        return WriterUse() if self._turns is None else self._turns.use

    def writers_waiting(self) -> int:
        """How many of this process's writers wait for SQLite's writer now (0 on PostgreSQL)."""
        return 0 if self._turns is None else self._turns.waiting()

    @contextmanager
    def begin(self, *, immediate: bool = False, turn: Turn = Turn.NORMAL) -> Iterator[Session]:
        """One write transaction, committed on leaving the block.

        `immediate`: what the transaction reads must still hold when it commits, across
        processes too (counting someone's open seats, then reserving one). SQLite then takes its
        write lock at the first statement (BEGIN IMMEDIATE; the Python driver would only begin
        at the first write, after the count), so other writers wait their turn; on PostgreSQL
        the transaction locks the rows it depends on itself (SELECT ... FOR UPDATE).

        `turn`: where this writer queues for SQLite's writer among this process's others.
        """
        with (
            self._writing(turn),
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            if immediate and self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    @contextmanager
    def _writing(self, turn: Turn) -> Iterator[None]:
        if self._turns is None:
            yield
            return
        # Temporal cancels a threaded activity by raising into its thread, wherever it is: one
        # raised into a writer waiting for its turn landed just after the turn was handed over,
        # before the `try`, and the turn was never given back (every writer of the process then
        # waited for ever). Shielded, the cancellation waits until the turn is passed on.
        with _cancellation_deferred():
            self._turns.acquire(turn)
            try:
                yield
            finally:
                self._turns.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session


def lock_people_writers(session: Session) -> None:
    """Wait until no other transaction is changing the directory's people, then hold that right
    until this transaction ends. Call it first, before reading or writing anything.

    Every writer of people rows takes it (seat reservations and releases, the directory import):
    they then never hold some people while waiting for others, which is how an import (a
    person updated, then an account whose owner check needs another person) and a reservation
    (its mediators locked in id order) used to deadlock on PostgreSQL. There it is one
    transaction-level advisory lock. SQLite has one writer at a time already; here the
    transaction takes the write lock now (BEGIN IMMEDIATE, unless it has begun writing), so a
    writer in another process waits its turn instead of failing with 'database is locked'.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PEOPLE_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        if driver is not None and not driver.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def hold_turn(session: Session, name: str) -> None:
    """Wait until no other transaction holds the turn called `name`, then hold it until this
    transaction ends: on PostgreSQL a transaction-level advisory lock keyed by the name, on
    SQLite the write lock taken now (BEGIN IMMEDIATE, unless the transaction has begun
    writing), which is one turn for every name. Call it first in the transaction."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        key = 0x6163636F72640000 | zlib.crc32(name.encode()) & 0xFFFF
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        if driver is not None and not driver.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert_or_skip(connection: Connection, table: Table) -> PgInsert | SqliteInsert:
    """An INSERT of `table`'s rows that skips a row whose key is taken (ON CONFLICT DO NOTHING,
    which SQLite and PostgreSQL both speak, each through its own dialect)."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


def first_of(session: Session, query: SelectOfScalar[_T], most: int) -> tuple[list[_T], int]:
    """The first `most` rows of `query` and how many it holds in all (counted only when there
    are more): a list that shows part of its rows says so."""
    rows = list(session.exec(query.limit(most + 1)).all())
    if len(rows) <= most:
        return rows, len(rows)
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    return rows[:most], total


_SQLITE_AWAY = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",
)
"""SQLite's codes (and their extended forms) for a database it cannot use now. Its other
OperationalErrors are the statement's fault (no such table, a syntax error): not an outage."""


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached or could not serve the statement now (PostgreSQL
    refusing or cutting connections, SQLite locked by another process past its busy timeout):
    the same statement may well succeed in a moment, unlike a constraint or a bug."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    name = getattr(exc.orig, "sqlite_errorname", None)
    # PostgreSQL's OperationalErrors are the connection's (class 08, 57P0x, 53...): a missing
    # table or bad SQL is a ProgrammingError there.
    return name is None or name.startswith(_SQLITE_AWAY)


def schema_missing(exc: BaseException) -> bool:
    """The statement named a table the database does not have: `accord migrate` has not set
    this database up (or not to this release)."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "42P01":  # PostgreSQL: undefined_table
        return True
    return str(exc.orig).startswith("no such table")  # SQLite


def engine_words(exc: BaseException) -> str:
    """The first line of what the database driver said, for an operator's log line."""
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).splitlines() or [type(exc).__name__])[0]
