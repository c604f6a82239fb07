"""Alembic environment: the URL comes from the caller (accord.platform.schema) or from Settings.

Each migration runs in a transaction of its own, so an upgrade holds a migration's locks only
while that migration runs, and one that fails leaves the ones before it done. On PostgreSQL a
statement waits at most `lock_timeout` for a lock (accord.platform.schema.upgrade tries the
migration again): a DDL statement queued behind a long transaction would hold up every request
queued behind it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from accord.platform.db import make_engine
from accord.platform.schema import LOCK_TIMEOUT, include_object, record_release
from accord.platform.settings import Settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url()
target_metadata = SQLModel.metadata
MIGRATE_LOCK = 0x616363_6D6967  # "accmig": the advisory lock key of `accord migrate`


def run_migrations() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # One `accord migrate` at a time (two deploys at once, a job run twice): the
                # second waits here for the first, then finds nothing left to do. Held by this
                # session until it ends.
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATE_LOCK})
                waited = config.attributes.get("lock_timeout", LOCK_TIMEOUT)
                # At least 1 ms: 0 would mean no limit at all.
                connection.execute(text(f"SET lock_timeout = '{max(1, round(waited * 1000))}ms'"))
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                include_object=include_object,
                transaction_per_migration=True,
                on_version_apply=record_release,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        # Its connection closed, the session ends, and with it the advisory lock: however the
        # run ended, a migration stopped midway included.
        engine.dispose()


run_migrations()
