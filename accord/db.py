"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine


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
