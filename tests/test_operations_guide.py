"""The operator's guide (docs/operations.md) holds only what exists: its commands, settings,
make targets, services and files are checked against the code, and the commands that can run
on a CI machine (no container engine, no docker) are run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from typer.main import get_command

from accord.cli import app
from models import search_attributes

ROOT = Path(__file__).parent.parent
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
        if command.startswith("docker compose") and " exec " in command:
            assert command.split(" exec ")[1].split()[0] in services, command
    for path in re.findall(r"`((?:deploy|workflows|tests|docs)/[\w./]+)`", GUIDE):
        assert (ROOT / path).exists(), path
    for attribute in search_attributes.TYPES:
        assert attribute in GUIDE


def test_the_production_refusal_reads_as_the_guide_shows() -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ACCORD_") and k != "DATABASE_URL"
    }
    env["ACCORD_ENVIRONMENT"] = "production"
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shown = [line[2:] for line in GUIDE.splitlines() if line.startswith("# error: ")]
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == shown[0]
    for line in ("  - DATABASE_URL: not set (the SQLite file is for one machine only)",):
        assert line in done.stderr.splitlines()


async def test_the_search_attribute_query_runs_against_temporal() -> None:
    [query] = [c for c in COMMANDS if c.startswith("temporal workflow list")]
    env = await WorkflowEnvironment.start_local(
        namespace="accord",
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
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
