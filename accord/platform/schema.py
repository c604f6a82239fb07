"""Run the Alembic migrations programmatically (used by `accord migrate`, `make run`, tests)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from accord.platform.db import make_engine

# The Alembic configuration and its scripts sit beside the packages, in accord/ (package data).
INI = Path(__file__).resolve().parents[1] / "alembic.ini"


def alembic_config(url: str, locations: tuple[Path, ...] = ()) -> Config:
    config = Config(str(INI))
    config.set_main_option("script_location", str(INI.parent / "migrations"))
    if locations:
        folders = (INI.parent / "migrations" / "versions", *locations)
        config.set_main_option("version_locations", os.pathsep.join(str(f) for f in folders))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Search objects made by hand in migrations 0006, 0007, 0012, 0028 and 0030 (FTS5 tables, their
# shadow tables, dispute_fts_key and the index of precedents' search rows on SQLite; generated
# tsvector columns, their GIN indexes, dispute_search and a pattern index on PostgreSQL): not in
# the models, so autogenerate must not propose to drop them.
HAND_MADE = (
    "precedent_fts",
    "search_tsv",
    "public_tsv",
    "ix_precedent_search_tsv",
    "ix_precedent_public_tsv",
    "dispute_fts",
    "ix_dispute_number_prefix",
    "ix_dispute_search_tsv",
    "dispute_search",
    "ix_precedent_search_rows",
)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, other: object
) -> bool:
    return not (name or "").startswith(HAND_MADE)


LOCK_TIMEOUT = 3.0
"""Seconds a migration's statement waits for a lock on PostgreSQL before it gives up and the
migration is tried again: every request on that table queues behind a waiting DDL statement,
so the wait is what a request may be held up by."""
LOCK_TRIES = 20
"""How many times a migration that could not take its lock is tried, a few seconds apart."""


class MigrationBlocked(RuntimeError):
    """A migration could not take a lock in LOCK_TRIES tries: a long transaction holds it."""


def upgrade(
    url: str,
    revision: str = "head",
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    tries: int = LOCK_TRIES,
    said: Callable[[str], None] = lambda _: None,
    locations: tuple[Path, ...] = (),
) -> None:
    """Migrates to `revision`, each migration in its own transaction (migrations/env.py). On
    PostgreSQL a migration whose statement waited over `lock_timeout` for a lock is rolled back
    and tried again (`said` is told), the ones before it staying done; `locations` adds folders
    of migrations (a test's next release)."""
    config = alembic_config(url, locations)
    config.attributes.update(lock_timeout=lock_timeout, tries=tries, said=said)
    for attempt in range(1, tries + 1):
        try:
            command.upgrade(config, revision)
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) not in RETRIED:
                raise
            stuck = _next_after(config, current_revision(url))
            if attempt == tries:
                raise MigrationBlocked(
                    f"migration {stuck} could not take its locks in {tries} tries (each waited"
                    f" over {lock_timeout:g} s, or deadlocked with a request): a long transaction"
                    " holds a table it changes (see pg_stat_activity); the migrations before it"
                    " are done, run accord migrate again"
                ) from None
            said(
                f"migration {stuck} waited over {lock_timeout:g} s for a lock, or deadlocked;"
                f" trying again (try {attempt + 1} of {tries})"
            )
            time.sleep(min(attempt, 5))


RETRIED = frozenset({"55P03", "40P01"})
"""lock_not_available (a statement waited over lock_timeout) and deadlock_detected (with a
request): the migration, or its batch, is rolled back and tried again."""


def _next_after(config: Config, revision: str | None) -> str:
    """The migration that runs after `revision` (the first, after none): the one that waited."""
    for script in ScriptDirectory.from_config(config).walk_revisions():
        if script.down_revision == revision:
            return f"{script.revision} ({script.doc.splitlines()[0]})"
    return f"after {revision}"


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The revision this code's models need the database to be at."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def known_revision(revision: str) -> bool:
    """Whether `revision` is one of this release's migrations (else a later release's)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


@functools.cache
def _scripts() -> ScriptDirectory:
    """Read once a process: /ready asks on every probe, and the scripts never change under it."""
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def record_release(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    """After each migration, in its transaction: which releases' code the schema now serves.

    A migration that only adds (a table, a nullable column, an index: the expand half of a
    change) says `serves_previous_release = True`, and the releases the one before it served
    stay served, so during a rolling upgrade the old processes stay ready while `accord
    migrate` runs and the new ones start. Any other migration (the contract half: a column
    dropped or renamed, a new constraint the old code would break) serves its own release
    only. The set is worked out from the scripts for the revision the schema is now at, so a
    downgrade gives back exactly what that revision served on the way up."""
    connection = ctx.connection
    assert connection is not None
    if not inspect(connection).has_table("schema_release"):  # before 0033
        return
    assert ctx.environment_context is not None
    scripts = ctx.environment_context.script
    now_at = step.up_revision_id if step.is_upgrade else _single(step.down_revision_ids)
    connection.execute(text("DELETE FROM schema_release"))
    for name in sorted(_served(scripts, now_at)):
        connection.execute(
            text("INSERT INTO schema_release (revision) VALUES (CAST(:r AS VARCHAR(32)))"),
            {"r": name},
        )


def _single(revisions: Collection[str]) -> str | None:
    return next(iter(revisions), None)


def _served(scripts: ScriptDirectory, revision: str | None) -> set[str]:
    """`revision` and, while each migration says it serves the release before it, the ones
    below it."""
    served: set[str] = set()
    while revision is not None:
        served.add(revision)
        script = scripts.get_revision(revision)
        if script is None or not getattr(script.module, "serves_previous_release", False):
            break
        down = script.down_revision
        revision = down if isinstance(down, str) else None
    return served
