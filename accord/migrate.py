"""Run the Alembic migrations programmatically (used by `accord migrate`, `make run`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

INI = Path(__file__).parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    config = Config(str(INI))
    config.set_main_option("script_location", str(INI.parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
