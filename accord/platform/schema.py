"""Run the Alembic migrations programmatically (used by `accord migrate`, `make run`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# The Alembic configuration and its scripts sit beside the packages, in accord/ (package data).
INI = Path(__file__).resolve().parents[1] / "alembic.ini"


def alembic_config(url: str) -> Config:
    config = Config(str(INI))
    config.set_main_option("script_location", str(INI.parent / "migrations"))
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


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The revision this code's models need the database to be at."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head
