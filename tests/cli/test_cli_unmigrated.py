"""A command run against a database `accord migrate` has not set up yet says so in one line,
on SQLite and PostgreSQL, instead of SQLAlchemy's traceback ("no such table: partner")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database
from tests.processes import deployed_environment, run_accord


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_command_on_a_database_never_migrated_says_run_accord_migrate(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path}/empty.db", (lambda: None)
    else:
        url, drop = fresh_postgres_database()
    try:
        env = deployed_environment(DATABASE_URL=url)
        for command in (["partners"], ["people"], ["channel", "imports"]):
            done = run_accord(*command, env=env)
            assert done.returncode == 2, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr and "sqlalche.me" not in done.stderr, done.stderr
            assert "run `accord migrate`" in done.stderr, done.stderr
    finally:
        drop()
