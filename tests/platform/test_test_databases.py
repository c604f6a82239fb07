"""Each test's database is a copy of one migrated once per session (conftest): at the head
revision, and its own, so no test sees another's rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from accord.platform.db import make_engine
from accord.platform.schema import head_revision
from tests.conftest import PostgresTemplate, sqlite_copy


def revision_and_partners(url: str) -> tuple[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            partners = conn.execute(text("SELECT count(*) FROM partner")).scalar_one()
    finally:
        engine.dispose()
    return str(revision), int(partners)


def add_partner(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO partner (id, name, tier, regions, email_domains, calendar,"
                    " is_direct_sales, active) VALUES ('p1', 'P One', 'gold', '[]', '[]',"
                    " 'US-NY', false, true)"
                )
            )
    finally:
        engine.dispose()


def test_sqlite_copies_start_at_head_and_keep_their_rows_to_themselves(
    sqlite_template: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    one, other = sqlite_copy(sqlite_template, first), sqlite_copy(sqlite_template, second)
    add_partner(one)
    assert revision_and_partners(one) == (head_revision(), 1)
    assert revision_and_partners(other) == (head_revision(), 0)
    assert revision_and_partners(f"sqlite:///{sqlite_template}") == (head_revision(), 0)


@pytest.mark.postgres
def test_postgres_copies_start_at_head_and_keep_their_rows_to_themselves(
    postgres_template: PostgresTemplate,
) -> None:
    (one, drop_one), (other, drop_other) = postgres_template.copy(), postgres_template.copy()
    try:
        add_partner(one)
        assert revision_and_partners(one) == (head_revision(), 1)
        assert revision_and_partners(other) == (head_revision(), 0)
        # The template itself is never connected to: a copy is refused while anyone is.
        third, drop_third = postgres_template.copy()
        drop_third()
        assert third not in (one, other)
    finally:
        drop_one()
        drop_other()
