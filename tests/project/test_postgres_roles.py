"""Temporal and Accord on PostgreSQL with a role each, least privilege (issue 19, item 3): the
script the postgres service runs at its first start (deploy/postgres/init-roles.sh), run here
against this machine's server as the image runs it, under names of the test's own."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from accord.platform.settings import REPO_ROOT
from tests.conftest import POSTGRES_URL, _database_url, _require_postgres
from tests.processes import deployed_environment, run_accord

SCRIPT = REPO_ROOT / "deploy" / "postgres" / "init-roles.sh"
PASSWORD = "Pw@#%41:'\"-s3cret"


def admin(dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_database_url(dbname).replace("+psycopg", ""), autocommit=True)


def connects(user: str, dbname: str) -> str | None:
    """None when `user` may connect to `dbname` (this server trusts local connections, so
    only the CONNECT privilege decides); else the server's refusal."""
    url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    host = url.rsplit("@", 1)[1]
    try:
        with psycopg.connect(f"postgresql://{user}@{host}/{dbname}"):
            return None
    except psycopg.OperationalError as exc:
        return str(exc)


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    _require_postgres()
    suffix = uuid.uuid4().hex[:8]
    chosen = {
        "ACCORD_DATABASE_USER": f"accord_{suffix}",
        "ACCORD_DATABASE_NAME": f"accord_db_{suffix}",
        "TEMPORAL_DATABASE_USER": f"temporal_{suffix}",
        "TEMPORAL_DATABASE_NAME": f"temporal_db_{suffix}",
        "TEMPORAL_VISIBILITY_DATABASE_NAME": f"visibility_db_{suffix}",
    }
    yield chosen
    with admin() as connection:
        for db in (
            "ACCORD_DATABASE_NAME",
            "TEMPORAL_DATABASE_NAME",
            "TEMPORAL_VISIBILITY_DATABASE_NAME",
        ):
            connection.execute(f'DROP DATABASE IF EXISTS "{chosen[db]}" WITH (FORCE)')
        for role in ("ACCORD_DATABASE_USER", "TEMPORAL_DATABASE_USER"):
            connection.execute(f'DROP ROLE IF EXISTS "{chosen[role]}"')


def run_script(names: dict[str, str]) -> subprocess.CompletedProcess[str]:
    url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    user_host = url.split("://", 1)[1].rsplit("/", 1)[0]
    user, _, host_port = user_host.rpartition("@")
    host, _, port = host_port.partition(":")
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": host,
        "PGPORT": port or "5432",
        "POSTGRES_USER": user.split(":")[0] or "postgres",
        "ACCORD_DATABASE_PASSWORD": PASSWORD,
        "TEMPORAL_DATABASE_PASSWORD": PASSWORD[::-1],
        **names,
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_each_application_gets_a_role_owning_its_databases_and_nothing_else(
    names: dict[str, str], tmp_path: Path
) -> None:
    done = run_script(names)
    assert done.returncode == 0, done.stderr
    accord, temporal = names["ACCORD_DATABASE_USER"], names["TEMPORAL_DATABASE_USER"]
    with admin() as connection:
        for role in (accord, temporal):
            row = connection.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin,"
                " rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                (role,),
            ).fetchone()
            assert row == (False, False, False, False, True, True), (role, row)
        owners = dict(
            connection.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
                ([names[k] for k in names if k.endswith("_NAME")],),
            ).fetchall()
        )
    assert owners == {
        names["ACCORD_DATABASE_NAME"]: accord,
        names["TEMPORAL_DATABASE_NAME"]: temporal,
        names["TEMPORAL_VISIBILITY_DATABASE_NAME"]: temporal,
    }
    # Each reaches its own databases only.
    assert connects(accord, names["ACCORD_DATABASE_NAME"]) is None
    assert connects(temporal, names["TEMPORAL_DATABASE_NAME"]) is None
    for user, other in (
        (accord, "TEMPORAL_DATABASE_NAME"),
        (accord, "TEMPORAL_VISIBILITY_DATABASE_NAME"),
        (temporal, "ACCORD_DATABASE_NAME"),
    ):
        refusal = connects(user, names[other])
        assert refusal is not None and "permission denied" in refusal, (user, other, refusal)
    # Accord's role alone brings its schema up to date (the migrations need nothing more).
    host = POSTGRES_URL.rsplit("@", 1)[1].rsplit("/", 1)[0]
    migrated = run_accord(
        "migrate",
        env=deployed_environment(
            DATABASE_URL=f"postgresql+psycopg://{host}/{names['ACCORD_DATABASE_NAME']}",
            ACCORD_DATABASE_USER=accord,
            ACCORD_DATABASE_PASSWORD=PASSWORD,
        ),
    )
    assert migrated.returncode == 0, migrated.stderr
    with admin(names["ACCORD_DATABASE_NAME"]) as connection:
        tables = connection.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert tables == [(accord,)]


def test_the_script_refuses_to_run_without_a_password(names: dict[str, str]) -> None:
    names = {**names}
    done = run_script(names | {"ACCORD_DATABASE_PASSWORD": ""})
    assert done.returncode != 0
    assert "ACCORD_DATABASE_PASSWORD" in done.stderr


def test_compose_runs_the_script_with_what_it_needs_and_each_service_uses_its_role() -> None:
    import yaml

    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    postgres = services["postgres"]
    assert any(
        v.startswith("./deploy/postgres/init-roles.sh:/docker-entrypoint-initdb.d/")
        for v in postgres["volumes"]
    )
    needed = set(re.findall(r"\$\{(\w+):\?", SCRIPT.read_text()))
    assert needed <= set(postgres["environment"]), needed - set(postgres["environment"])
    assert "POSTGRES_DB" not in postgres["environment"]  # it would make accord first, unowned
    temporal_role = "${TEMPORAL_DATABASE_USER:-temporal}"
    assert services["temporal"]["environment"]["POSTGRES_USER"] == temporal_role
    assert services["temporal-schema"]["environment"]["SQL_USER"] == temporal_role
    accord_env = services["worker"]["environment"]
    assert accord_env["ACCORD_DATABASE_USER"] == "${ACCORD_DATABASE_USER:-accord}"
    assert "POSTGRES_USER" not in str(accord_env) and "POSTGRES_PASSWORD" not in str(accord_env)


def test_run_again_after_stopping_halfway_it_finishes_the_job(names: dict[str, str]) -> None:
    """A first start killed midway (or an operator running it by hand on a server where part of
    it was done) leaves some roles and databases made: run again, it makes the rest and
    changes nothing that is there, so the guide's "run it once" is never a trap."""
    assert run_script(names).returncode == 0
    with admin() as connection:
        connection.execute(f'DROP DATABASE "{names["TEMPORAL_VISIBILITY_DATABASE_NAME"]}"')
    again = run_script(names)
    assert again.returncode == 0, again.stderr
    with admin() as connection:
        made = connection.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (names["TEMPORAL_VISIBILITY_DATABASE_NAME"],),
        ).fetchall()
    assert made == [(names["TEMPORAL_VISIBILITY_DATABASE_NAME"], names["TEMPORAL_DATABASE_USER"])]
    assert run_script(names).returncode == 0  # a third time: nothing to do
