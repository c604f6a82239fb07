"""What a migration uses to change a table the product is using (PostgreSQL), so that an upgrade
runs while the web tier and the workers go on reading and writing.

The rules every migration follows on PostgreSQL (docs/operations.md, "Upgrading"):
- Each migration is its own transaction (env.py), and DDL waits at most a few seconds for its
  lock (schema.upgrade: the statement fails and is tried again, rather than queue every
  request behind it while a long transaction finishes).
- A statement that takes a table's strong lock only changes the catalogue: a column added
  nullable or with a constant default, a trigger, a function. Never a rewrite of the table
  (a generated column, a type change, CLUSTER) under that lock.
- Indexes are built CONCURRENTLY (`create_index`): writes go on while one builds.
- Rows are filled in batches, each its own short transaction (`in_batches`), after the
  triggers that keep new rows right are committed; so a row written meanwhile is right too.
- Whatever runs outside the migration's transaction may run again (the migration is retried
  from its start when it fails midway): IF NOT EXISTS, OR REPLACE, and fills that only set what
  is missing.

On SQLite (one machine, one writer) these do the plain thing inside the migration's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic import op
from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import OperationalError

from accord.platform.schema import LOCK_TRIES, RETRIED

BATCH = 5_000
"""Rows a fill changes per transaction: each holds its rows' locks for tens of milliseconds."""


@contextmanager
def outside() -> Iterator[Connection]:
    """Commits the migration's transaction so far (its locks are released) and runs the block
    with each statement its own transaction; the migration's next statements begin a new one."""
    with op.get_context().autocommit_block():
        yield op.get_bind()


@contextmanager
def outside_on_postgres() -> Iterator[Connection]:
    """`outside()` on PostgreSQL; on SQLite, the migration's own connection and transaction."""
    if postgres():
        with outside() as bind:
            yield bind
    else:
        yield op.get_bind()


def postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_index(
    name: str,
    table: str,
    columns: str,
    *,
    unique: bool = False,
    using: str | None = None,
) -> None:
    """CREATE INDEX name ON table [USING using] (columns); CONCURRENTLY on PostgreSQL, where a
    build interrupted before (which leaves the index INVALID) is dropped and built again."""
    kind = "UNIQUE INDEX" if unique else "INDEX"
    method = f" USING {using}" if using else ""
    if not postgres():
        op.execute(f"CREATE {kind} IF NOT EXISTS {name} ON {table}{method} ({columns})")
        return
    with outside() as bind:
        invalid = bind.execute(
            text(
                "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
                " WHERE pg_class.relname = :name AND NOT pg_index.indisvalid"
            ),
            {"name": name},
        ).scalar()
        # A concurrent build waits for the transactions older than it, which blocks no one (it
        # holds only the lock that keeps other DDL off the table): no limit on that wait; the
        # operator is told, since it waits even for a session idle in a transaction.
        _options()[1](
            f"building index {name} concurrently: it waits for every transaction older than it"
            " (an idle one holds it up: see pg_stat_activity); nothing waits for it"
        )
        waited = bind.execute(text("SHOW lock_timeout")).scalar()
        bind.execute(text("SET lock_timeout = 0"))
        try:
            if invalid:
                bind.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            build = f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON {table}{method}"
            bind.execute(text(f"{build} ({columns})"))
        finally:
            bind.execute(text(f"SET lock_timeout = '{waited}'"))


def drop_index(name: str) -> None:
    if not postgres():
        op.execute(f"DROP INDEX IF EXISTS {name}")
        return
    with outside() as bind:
        bind.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))


def in_batches(
    statement: str, *, table: str, key: str, below: int | str, lock_first: bool = False
) -> None:
    """Runs `statement` once per batch of BATCH rows of `table` in `key` order, each batch its
    own transaction on PostgreSQL. The statement bounds its rows with `{key} > :low AND {key} <=
    :high`; `below` is a value under every key (0 for ids, '' for text keys).

    `lock_first`: the batch's rows of `table` are locked (FOR UPDATE) before the statement, in
    its transaction. A statement that sets a row from other tables reads them as of its start;
    one that then waits for a row a request changed (and whose trigger changed that row too)
    would write back what the request had just removed. Locked first, the statement starts
    after every such request ended, and reads what it did."""
    bind = op.get_bind()
    if not postgres():
        bind.execute(text(statement), {"low": below, "high": _highest(table, key, below)})
        return
    with outside():
        low: int | str = below
        while True:
            # The names are the migration's own constants, never input.
            high = bind.execute(
                text(
                    f"SELECT max({key}) FROM (SELECT {key} FROM {table} WHERE {key} > :low"  # noqa: S608
                    f" ORDER BY {key} LIMIT {BATCH}) AS batch"
                ),
                {"low": low},
            ).scalar()
            if high is None:
                return
            lock = (
                f"SELECT 1 FROM {table} WHERE {key} > :low AND {key} <= :high FOR UPDATE"  # noqa: S608
                if lock_first
                else None
            )
            _retried(bind, text(statement), {"low": low, "high": high}, lock=lock)
            low = high


def _retried(
    bind: Connection, statement: TextClause, bounds: dict[str, object], lock: str | None = None
) -> None:
    """Runs one batch, again while a row it changes stays locked past lock_timeout, or after a
    deadlock with a request (a batch is its own transaction: the ones before it stay done, and
    running it again is harmless). As often as `accord migrate --tries` says, each try told."""
    tries, said = _options()
    for attempt in range(1, tries + 1):
        try:
            if lock is None:
                bind.execute(statement, bounds)
            else:
                bind.execute(text("BEGIN"))
                try:
                    bind.execute(text(lock), bounds)
                    bind.execute(statement, bounds)
                except BaseException:
                    bind.execute(text("ROLLBACK"))
                    raise
                bind.execute(text("COMMIT"))
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) not in RETRIED or attempt == tries:
                raise
            said(
                f"a batch of rows waited over the lock timeout, or deadlocked with a request;"
                f" trying it again (try {attempt + 1} of {tries})"
            )
            time.sleep(1)


def _options() -> tuple[int, Callable[[str], None]]:
    """How often to try and whom to tell: what `accord migrate` (schema.upgrade) passed."""
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    return int(attributes.get("tries", LOCK_TRIES)), attributes.get("said", lambda _: None)


def _highest(table: str, key: str, below: int | str) -> int | str:
    found = op.get_bind().execute(text(f"SELECT max({key}) FROM {table}")).scalar()  # noqa: S608
    return below if found is None else found


def run_outside_transaction(*statements: str) -> None:
    """Commits the migration's work so far (releasing its locks) and runs each statement as its
    own transaction (PostgreSQL); on SQLite, in the migration's transaction."""
    if not postgres():
        for statement in statements:
            op.execute(statement)
        return
    with outside() as bind:
        for statement in statements:
            bind.execute(text(statement))
