"""Secrets stay secret (issue 19, item 3): no command prints the database password, a password
with the characters a URL reserves works, and neither git nor the image takes .env or state."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT, Settings
from accord.runtime.embedded import banner
from tests.conftest import fresh_postgres_database, seed
from tests.processes import deployed_environment, run_accord

PASSWORD = "Pw@#%41:/?-s3cret"
"""`@`, `#`, `%41` (which a URL reads as "A"), `:`, `/` and `?`: each broke a password in a URL."""


def with_password(url: str, password: str) -> str:
    """`url` (a test database's) with `password`, percent-encoded as a URL must carry it."""
    parsed = make_url(url)
    return parsed.set(password=password).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_accord_migrate_never_prints_the_database_password() -> None:
    url, drop = fresh_postgres_database()  # the server trusts local connections: any password
    try:
        done = run_accord(
            "migrate", env=deployed_environment(DATABASE_URL=with_password(url, PASSWORD))
        )
    finally:
        drop()
    assert done.returncode == 0, done.stderr
    assert "schema up to date at postgresql+psycopg://" in done.stdout
    for shown in (PASSWORD, quote(PASSWORD, safe=""), "Pw"):
        assert shown not in done.stdout + done.stderr


def test_the_embedded_banner_never_shows_the_database_password(
    sqlite_url: str, tmp_path: Path
) -> None:
    sessions = SessionFactory(make_engine(sqlite_url))
    seed(sessions)
    url = with_password("postgresql+psycopg://accord@db/accord", "Vq81")
    shown = banner(Settings(database_url=url), sessions, tmp_path)
    assert "Database         postgresql+psycopg://accord:***@db/accord" in shown
    assert "Vq81" not in shown


@pytest.mark.parametrize("password", [PASSWORD, "plain", "100%", "a@b", "#hash"])
def test_a_database_password_of_any_characters_is_passed_as_it_is(password: str) -> None:
    """Compose cannot percent-encode a password into a URL: it passes the password apart
    (ACCORD_DATABASE_PASSWORD) and the URL without it; the engine gets it unchanged."""
    settings = Settings(
        database_url="postgresql+psycopg://accord@postgres:5432/accord",
        database_password=password,
    )
    assert make_url(settings.resolved_database_url()).password == password
    # A password in the URL is the URL's (a reader gets what was meant, once decoded).
    given = with_password("postgresql+psycopg://accord@postgres:5432/accord", password)
    assert make_url(Settings(database_url=given).resolved_database_url()).password == password


@pytest.mark.postgres
def test_the_password_apart_connects(tmp_path: Path) -> None:
    url, drop = fresh_postgres_database()
    try:
        done = run_accord(
            "migrate",
            env=deployed_environment(DATABASE_URL=url, ACCORD_DATABASE_PASSWORD=PASSWORD),
        )
    finally:
        drop()
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_neither_git_nor_the_image_takes_secrets_state_or_venvs() -> None:
    ignored = set((REPO_ROOT / ".gitignore").read_text().split())
    assert {".env", "state/", ".venv/"} <= ignored
    dockerignore = REPO_ROOT / ".dockerignore"
    assert dockerignore.exists(), "no .dockerignore: `docker build` sends .env and state along"
    patterns = set(dockerignore.read_text().split())
    assert {".env", ".env.*", "state", ".venv", ".git", "tests"} <= patterns, patterns


def test_every_secret_setting_is_hidden_when_settings_are_shown() -> None:
    """A setting holding a secret is a SecretStr: settings printed, logged or in a traceback's
    locals show it as **********. (The demo password is the README's, for development.)"""
    secret = re.compile(r"password|secret|keys?$")
    values = {
        name: "Hunter2-" + name
        for name in Settings.model_fields
        if secret.search(name) and name != "demo_password"
    }
    assert len(values) >= 7, values  # every kind: database, mail, webhook, IMAP, OIDC, keys
    shown = repr(Settings.model_validate(values)) + str(Settings.model_validate(values))
    assert [name for name in values if values[name] in shown] == []


@pytest.mark.parametrize("field", ["database_password", "database_user"])
def test_a_nul_in_the_database_role_or_password_is_named_at_start(field: str) -> None:
    """No database takes a NUL in a user name or password: named at start, not a driver's
    error at the first connection."""
    values = {"database_url": "postgresql+psycopg://postgres:5432/accord", field: "pw\x00x"}
    [problem] = Settings.model_validate(values).problems()
    said = "a NUL character" if field == "database_password" else "a control character"
    assert problem.startswith(f"ACCORD_{field.upper()}: holds {said}"), problem


def test_a_password_in_the_url_s_query_is_hidden_too() -> None:
    url = "postgresql+psycopg://user:pw@db/accord?password=QSECRET&sslmode=require"
    shown = Settings(database_url=url).database_url_shown()
    assert "QSECRET" not in shown and "pw" not in shown.split("@")[0], shown
    assert "sslmode=require" in shown


def test_sqlite_takes_no_role_or_password_apart() -> None:
    """.env.example sets ACCORD_DATABASE_USER for compose; a SQLite URL beside it stays a
    SQLite URL (it has no users) instead of one SQLAlchemy cannot read."""
    settings = Settings(
        database_url="sqlite:////tmp/accord-probe.db",
        database_user="accord",
        database_password="pw",
    )
    assert settings.resolved_database_url() == "sqlite:////tmp/accord-probe.db"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"database_url": "postgresql+psycopg://db/te\x00st"}, "DATABASE_URL: holds a control"),
        ({"database_user": "post\ngres"}, "ACCORD_DATABASE_USER: holds a control"),
    ],
)
def test_control_characters_in_how_to_reach_the_database_are_named(
    values: dict[str, str], problem: str
) -> None:
    given = {"database_url": "postgresql+psycopg://postgres:5432/accord", **values}
    [found] = Settings.model_validate(given).problems()
    assert found.startswith(problem), found
