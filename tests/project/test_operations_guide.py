"""The operator's guide (docs/operations.md) holds only what exists: its commands, settings,
make targets, services and files are checked against the code, and the commands that can run
on a CI machine (no container engine, no docker) are run."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
from base64 import b64decode, b64encode
from pathlib import Path
from select import select as wait_readable

import psycopg
import pytest
import yaml
from sqlalchemy import make_url
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment
from typer.main import get_command

from accord.application import build_services
from accord.cli.app import app
from accord.platform.schema import upgrade
from accord.precedents.search import search_precedents
from models import search_attributes
from models.enums import DisputeCategory
from models.tables import Dispute, DisputeEvent
from tests.conftest import (
    CONVERTER,
    POSTGRES_URL,
    MailCapture,
    fresh_postgres_database,
    make_settings,
    running_stack,
)
from tests.precedent_rows import add_precedent
from tests.processes import deployed_environment, run_accord

ROOT = Path(__file__).parents[2]
GUIDE = (ROOT / "docs" / "operations.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", GUIDE, re.S)
COMMANDS = [line.split("#")[0].strip() for block in BLOCKS for line in block.splitlines()]


def test_named_commands_settings_targets_services_and_files_exist() -> None:
    cli = set(get_command(app).commands)  # type: ignore[attr-defined]
    for command in re.findall(r"(?<!namespace )\baccord ([a-z][a-z-]*)", GUIDE):
        assert command in cli, f"accord {command}"
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = [c.split()[1] for c in COMMANDS if c.startswith("make ")]
    for target in named + re.findall(r"`make ([a-z-]+)`", GUIDE):
        assert target in targets, f"make {target}"
    documented = (ROOT / ".env.example").read_text()
    for setting in set(re.findall(r"\b((?:ACCORD|POSTGRES)_[A-Z_]+|DATABASE_URL)\b", GUIDE)):
        assert re.search(rf"^#? ?{setting}=", documented, re.M), setting
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    for service in re.findall(r"`([a-z-]+)`", GUIDE):
        if service in ("temporal-schema", "temporal-bootstrap", "accord-migrate"):
            assert service in services
    for command in COMMANDS:
        words = shlex.split(re.sub(r" [<>] [\w.]+$", "", command))  # without a file redirection
        if words[:2] != ["docker", "compose"] or words[2] not in ("exec", "run", "stop", "start"):
            continue
        named = [w for w in words[3:] if not w.startswith("-")]
        # exec and run name one service and then a command; stop and start name services only.
        for service in named[:1] if words[2] in ("exec", "run") else named:
            assert service in services, command
    for path in re.findall(r"`((?:deploy|workflows|tests|docs)/[\w./]+)`", GUIDE):
        assert (ROOT / path).exists(), path
    for attribute in search_attributes.TYPES:
        assert attribute in GUIDE


def test_the_production_refusal_reads_as_the_guide_shows() -> None:
    done = run_accord("worker", env=deployed_environment(ACCORD_ENVIRONMENT="production"))
    shown = [line[2:] for line in GUIDE.splitlines() if line.startswith("# error: ")]
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == shown[0]
    for line in ("  - DATABASE_URL: not set (the SQLite file is for one machine only)",):
        assert line in done.stderr.splitlines()


PG_COMMAND = re.compile(
    r"docker compose exec -T postgres sh -c '(pg_dump|pg_restore) (.*) (\w+)' ([<>]) (\S+)$"
)


def run_guide_pg_command(command: str, databases: dict[str, str], folder: Path) -> None:
    """The part inside the quotes, run here as it runs in the postgres container, on the
    database this test stands in for the one the guide names."""
    match = PG_COMMAND.match(command)
    assert match, command
    tool, options, database, direction, file = match.groups()
    admin = make_url(POSTGRES_URL)
    env = {
        **os.environ,
        "POSTGRES_USER": admin.username or "postgres",
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
    }
    with (folder / file).open("wb" if direction == ">" else "rb") as stream:
        done = subprocess.run(
            ["sh", "-c", f"{tool} {options} {databases[database]}"],
            env=env,
            stdout=stream if direction == ">" else None,
            stdin=stream if direction == "<" else None,
            stderr=subprocess.PIPE,
            text=False,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.postgres
async def test_backup_and_restore_as_the_guide_shows(
    env: WorkflowEnvironment, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    tools = {c: m.group(1) for c in COMMANDS if (m := PG_COMMAND.match(c))}
    dumps = [c for c, tool in tools.items() if tool == "pg_dump"]
    restores = [c for c, tool in tools.items() if tool == "pg_restore"]
    [check] = [c for c in COMMANDS if c.endswith("accord verify --all")]
    assert len(dumps) == len(restores) == 3
    accord_url, drop_accord = fresh_postgres_database()
    # Temporal's two databases cannot be filled by a real Temporal here (its dev server keeps
    # SQLite); stand-ins with a table of their own show the same commands carry them over.
    stand_ins = [fresh_postgres_database() for _ in range(2)]
    databases = {
        "accord": make_url(accord_url).database or "",
        "temporal": make_url(stand_ins[0][0]).database or "",
        "temporal_visibility": make_url(stand_ins[1][0]).database or "",
    }
    try:
        upgrade(accord_url)
        for url, _ in stand_ins:
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("CREATE TABLE executions (workflow_id text PRIMARY KEY)")
                conn.execute("INSERT INTO executions VALUES ('before the backup')")
        async with running_stack(env, accord_url, smtp, tmp_path) as stack:
            kept = (await stack.file()).number
            await stack.wait_for_event(kept, "mediator_offered")
            with stack.sessions.begin() as session:
                add_precedent(
                    session,
                    "DSP-2025-000009",
                    category=DisputeCategory.DEAL_REGISTRATION,
                    outcome="upheld",
                    facts="Overlapping registrations for the Fabrikam renewal.",
                    rationale="The first registration stands.",
                )
            trail = stack.actions(kept)

            for command in dumps:
                run_guide_pg_command(command, databases, tmp_path)

            # After the backup: a new dispute, and Temporal's databases move on.
            lost = (
                await stack.file(
                    contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0099"}]
                )
            ).number
            await stack.wait_for_event(lost, "filed")
        for url, _ in stand_ins:
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("INSERT INTO executions VALUES ('after the backup')")

        for command in restores:
            run_guide_pg_command(command, databases, tmp_path)

        sessions = build_services(make_settings(accord_url, 0, tmp_path)).sessions
        with sessions.read() as session:
            assert session.get(Dispute, kept) is not None
            assert session.get(Dispute, lost) is None
            restored = session.exec(
                select(DisputeEvent.action)
                .where(DisputeEvent.dispute_number == kept)
                .order_by(col(DisputeEvent.seq))
            ).all()
            assert list(restored) == trail
            # The search index came back with the rows (PostgreSQL full-text columns).
            assert search_precedents(session, "Fabrikam", public=False).total == 1
        for url, _ in stand_ins:
            with psycopg.connect(url.replace("+psycopg", "")) as conn:
                rows = conn.execute("SELECT workflow_id FROM executions").fetchall()
            assert rows == [("before the backup",)]

        argv = shlex.split(check.split(" worker ", 1)[1])[1:]
        temporal = env.client.service_client.config.target_host
        done = run_accord(
            *argv,
            env={**os.environ, "DATABASE_URL": accord_url, "ACCORD_TEMPORAL_ADDRESS": temporal},
            cwd=tmp_path,
        )
        # The precedent's own dispute row (written by the helper) has no trail of its own, and
        # no workflow; the kept dispute's trail reaches the head its workflow published. Exit 1
        # only because the time-skipping server cannot list workflows (a real one can).
        assert done.returncode == 1, done.stderr
        assert done.stdout == (
            f"2 disputes: every audit trail intact ({len(trail)} entries; 1 has none yet); "
            "compared with the chain head of its workflow: 1\n"
            "not looked for: disputes deleted from the database with their whole trail (their "
            "workflows are found by listing them): this Temporal cannot list workflows "
            "(unimplemented)\n"
        )
    finally:
        drop_accord()
        for _, drop in stand_ins:
            drop()


def scram_verifies(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's stored SCRAM-SHA-256 verifier is the one for `password` (RFC 5802:
    StoredKey = H(HMAC(PBKDF2(password, salt, iterations), "Client Key")))."""
    method, rest = verifier.split("$", 1)
    iterations, salt = rest.split("$")[0].split(":")
    stored_key = rest.split("$")[1].split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (
        method == "SCRAM-SHA-256"
        and b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
    )


def run_on_a_terminal(
    argv: list[str], env: dict[str, str], answers: list[tuple[bytes, bytes]]
) -> int:
    """Run `argv` with a terminal of its own (psql reads passwords from it), answering each
    prompt as it appears; the exit status."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execvpe(argv[0], argv, env)
    seen = b""
    finished = False
    try:
        for prompt, answer in answers:
            while prompt not in seen:
                ready, _, _ = wait_readable([terminal], [], [], 30)
                assert ready, f"no {prompt!r} from {argv[0]}: {seen!r}"
                seen += os.read(terminal, 1024)
            seen = b""
            os.write(terminal, answer + b"\n")
        with contextlib.suppress(OSError):  # the pty closes as the child ends
            while os.read(terminal, 1024):
                pass
        finished = True
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.postgres
def test_the_database_password_rotation_runs_as_the_guide_shows() -> None:
    [command] = [c for c in COMMANDS if "\\password" in c]
    words = shlex.split(command)
    assert words[:5] == ["docker", "compose", "exec", "postgres", "psql"], command
    url, drop = fresh_postgres_database()
    role = f"accord_rotation_{os.getpid()}"
    admin = make_url(POSTGRES_URL)
    try:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'Old-Secret-1'")
        # The guide's psql command, with this machine's administrator, database and role
        # standing in for the compose user `accord` and its database.
        argv = [
            {"accord": admin.username or "postgres"}.get(w, w) if words[i - 1] == "-U" else w
            for i, w in enumerate(words[4:], start=4)
        ]
        argv = [make_url(url).database or "" if a == "accord" else a for a in argv]
        argv = [a.replace("\\password accord", f"\\password {role}") for a in argv]
        env = {**os.environ, "PGHOST": admin.host or "127.0.0.1", "PGPORT": str(admin.port or 5432)}
        new = "Rotated-Secret-2"
        code = run_on_a_terminal(
            argv, env, [(b"Enter new password", new.encode()), (b"Enter it again", new.encode())]
        )
        assert code == 0
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            [(verifier,)] = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchall()
        assert scram_verifies(verifier, new) and not scram_verifies(verifier, "Old-Secret-1")
    finally:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
            drop()
            conn.execute(f"DROP ROLE IF EXISTS {role}")


async def test_the_search_attribute_query_runs_against_temporal() -> None:
    [query] = [c for c in COMMANDS if c.startswith("temporal workflow list")]
    env = await WorkflowEnvironment.start_local(
        namespace="accord",
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=CONVERTER,
        dev_server_extra_args=["--log-level", "error", *search_attributes.DEV_SERVER_FLAGS],
    )
    try:
        address = env.client.service_client.config.target_host
        argv = [str(Path(sys.executable).parent / "temporal"), *shlex.split(query)[1:]]
        done = subprocess.run(
            [*argv, "--address", address],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    finally:
        await env.shutdown()
