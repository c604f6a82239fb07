"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, event, text
from sqlmodel import Session, create_engine

# The key of PostgreSQL's transaction-level advisory lock over the directory's people (any
# 64-bit number no other lock of this database uses; these are the ASCII of "accordpp").
PEOPLE_LOCK_KEY = 0x6163636F72647070


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

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
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class SessionFactory:
    """Hands out short transactions; activities hold one of these, never a global session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite allows one writer at a time and makes the others poll with growing sleeps;
        # queueing this process's writers on a lock instead cut the lifecycle benchmark's
        # latency. PostgreSQL needs no such thing.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def begin(self, *, immediate: bool = False) -> Iterator[Session]:
        """One write transaction, committed on leaving the block.

        `immediate`: what the transaction reads must still hold when it commits, across
        processes too (counting someone's open seats, then reserving one). SQLite then takes its
        write lock at the first statement (BEGIN IMMEDIATE; the Python driver would only begin
        at the first write, after the count), so other writers wait their turn; on PostgreSQL
        the transaction locks the rows it depends on itself (SELECT ... FOR UPDATE).
        """
        with (
            self._writing(),
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            if immediate and self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

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
