"""The CLI explains itself: `accord partners`, `accord people` and `accord playbook` tell what
to pass, every action taking --remedy names the remedy kinds, and every help screen fits 80
columns. The README's `temporal workflow list` honours the configured Temporal address."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.app import app
from accord.cli.reference import REMEDIES, REMEDY_OPTION_HELP, example_json, validate_example
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from accord.playbooks.library import PlaybookLibrary
from models import search_attributes
from models.enums import DisputeCategory, RemedyKind
from models.payloads import (
    CommissionSplit,
    CoSellingResources,
    LeadReroute,
    MdfCredit,
    RebateAdjustment,
    TerritoryReassignment,
    WrittenWarning,
)
from tests.conftest import CONVERTER, REPO_ROOT, seed
from tests.processes import deployed_environment, run_accord

MODELS: dict[RemedyKind, Any] = {
    RemedyKind.TERRITORY_REASSIGNMENT: TerritoryReassignment,
    RemedyKind.COMMISSION_SPLIT: CommissionSplit,
    RemedyKind.REBATE_ADJUSTMENT: RebateAdjustment,
    RemedyKind.CO_SELLING_RESOURCES: CoSellingResources,
    RemedyKind.LEAD_REROUTE: LeadReroute,
    RemedyKind.MDF_CREDIT: MdfCredit,
    RemedyKind.WRITTEN_WARNING: WrittenWarning,
}
RUNNER = CliRunner()


def invoke(*args: str, **env: str) -> str:
    result = RUNNER.invoke(app, list(args), env={"COLUMNS": "80", **env})
    assert result.exit_code == 0, result.output
    return result.output


def command_paths() -> Iterator[list[str]]:
    import typer

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def over_80(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > 80]


# --- remedies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RemedyKind))
def test_every_remedy_kind_is_explained_field_by_field_with_an_example_that_validates(
    kind: RemedyKind,
) -> None:
    guide = REMEDIES[kind]
    fields = set(MODELS[kind].model_fields) - {"kind"}
    assert [f.name for f in guide.fields] == [n for n in MODELS[kind].model_fields if n != "kind"]
    assert {f.name for f in guide.fields} == fields
    assert all(f.type and f.meaning for f in guide.fields)
    remedy = validate_example(kind)
    assert isinstance(remedy, MODELS[kind]) and remedy.kind is kind
    assert json.loads(example_json(kind))["kind"] == kind.value


def test_accord_playbook_tells_the_rules_in_force_with_examples_that_validate() -> None:
    out = run_accord("playbook", env=deployed_environment(COLUMNS="80"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert over_80(text) == []
    playbook = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").all()[-1]
    assert f"Playbook {playbook.version}" in text
    flat = " ".join(text.split())
    for category in DisputeCategory:
        rules = playbook.categories[category]
        assert re.search(rf"^  {category.value}\b", text, re.M)
        assert " ".join(rules.clause.split()) in flat
        assert ", ".join(k.value for k in rules.allowed_remedies) in flat
    # Each example, as printed, is JSON that --remedy takes.
    examples = re.findall(r"--remedy '(.*?)'", text, flags=re.DOTALL)
    assert len(examples) == len(RemedyKind)
    kinds = set()
    for example in examples:
        remedy = MODELS[RemedyKind(json.loads(example)["kind"])].model_validate_json(example)
        kinds.add(remedy.kind)
        guide = REMEDIES[remedy.kind]
        assert f"{remedy.kind.value}: {guide.meaning}"[:60] in flat
        for field in guide.fields:
            assert field.name in text and field.type in text
    assert kinds == set(RemedyKind)
    for raw in ("RemedyKind.", "DisputeCategory.", "{'", "None"):
        assert raw not in text


def test_an_unknown_playbook_version_is_named() -> None:
    out = run_accord("playbook", "--version", "1999.9", env=deployed_environment())
    assert out.returncode == 2
    assert "playbook version '1999.9' is not available" in out.stderr


# --- the directory ----------------------------------------------------------------------------


@pytest.fixture
def directory(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    upgrade(url)
    seed(SessionFactory(make_engine(url)))
    return url


def test_accord_partners_lists_ids_names_tiers_regions_and_contacts(directory: str) -> None:
    out = invoke("partners", DATABASE_URL=directory)
    assert over_80(out) == []
    assert re.search(r"^northwind\s+Northwind Traders\s+platinum\s+NA-East\s+1$", out, re.M), out
    assert re.search(r"^direct-sales\s+Vendor Direct Sales \*", out, re.M)
    assert "* the vendor's own direct sales team" in out
    assert "nora@northwind.example" not in out
    out = invoke("partners", "--contacts", DATABASE_URL=directory)
    assert over_80(out) == []
    assert re.search(r"^northwind\s+nora@northwind\.example\s+Nora Quinn$", out, re.M), out
    rows = json.loads(invoke("partners", "--json", DATABASE_URL=directory))
    northwind = next(r for r in rows if r["id"] == "northwind")
    assert northwind["contacts"] == [
        {"name": "Nora Quinn", "email": "nora@northwind.example", "active": True}
    ]


def test_accord_people_lists_ids_names_roles_functions_and_organisations(directory: str) -> None:
    out = invoke("people", DATABASE_URL=directory)
    assert over_80(out) == []
    assert re.search(
        r"^board\.partners\s+Paula Partners\s+board member\s+partner management\s+the vendor$",
        out,
        re.M,
    ), out
    assert re.search(r"^greta\.hoffmann\s+Greta Hoffmann\s+mediator\s+-\s+the vendor$", out, re.M)
    out = invoke("people", "--role", "board", DATABASE_URL=directory)
    assert "board.chair" in out and "greta.hoffmann" not in out
    rows = json.loads(invoke("people", "--role", "mediator", "--json", DATABASE_URL=directory))
    assert {r["role"] for r in rows} == {"mediator"}
    assert "greta.hoffmann" in {r["id"] for r in rows}


# --- help -------------------------------------------------------------------------------------


def test_every_help_screen_fits_80_columns() -> None:
    paths = list(command_paths())
    assert len(paths) > 40 and ["playbook"] in paths and ["outbox", "list"] in paths
    for path in paths:
        out = invoke(*path, "--help")
        assert over_80(out) == [], f"accord {' '.join(path)} --help"
    # And so as a process, the way a person runs it.
    out = run_accord("--help", env=deployed_environment(COLUMNS="80"))
    assert out.returncode == 0 and over_80(out.stdout) == [] and "playbook" in out.stdout


def test_the_example_in_the_remedy_help_validates() -> None:
    from pydantic import TypeAdapter

    from models.payloads import Remedy

    [example] = re.findall(r"\{.*\}", REMEDY_OPTION_HELP)
    assert TypeAdapter(Remedy).validate_json(example).kind is RemedyKind.MDF_CREDIT


@pytest.mark.parametrize("action", ["propose", "vote", "rule"])
def test_every_action_taking_a_remedy_names_the_remedy_kinds(action: str) -> None:
    out = invoke(action, "--help")
    for kind in RemedyKind:
        assert kind.value in out, f"accord {action} --help does not name {kind.value}"
    assert "accord" in out and "playbook" in out


# --- the README -------------------------------------------------------------------------------


async def test_the_readme_temporal_workflow_list_honours_the_configured_address() -> None:
    from temporalio.testing import WorkflowEnvironment

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    # The walk-through's command, with its continuation lines, up to its comment.
    match = re.search(r"^\.venv/bin/temporal workflow list(?:.*\\\n)*.*$", readme, re.M)
    assert match, "the README has no `.venv/bin/temporal workflow list` example"
    command = (
        match.group(0)
        .split("  #")[0]
        .replace(
            ".venv/bin/temporal", shlex.quote(str(Path(sys.executable).parent / "temporal")), 1
        )
        .replace(".venv/bin/accord", f"{shlex.quote(sys.executable)} -m accord.cli.console")
    )
    env = await WorkflowEnvironment.start_local(
        namespace="accord-readme",
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=CONVERTER,
        dev_server_extra_args=["--log-level", "error", *search_attributes.DEV_SERVER_FLAGS],
    )
    try:
        address = env.client.service_client.config.target_host
        done = subprocess.run(
            ["bash", "-c", command],
            env=deployed_environment(
                ACCORD_TEMPORAL_ADDRESS=address,
                ACCORD_TEMPORAL_NAMESPACE="accord-readme",
                PYTHONPATH=str(REPO_ROOT),
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    finally:
        await env.shutdown()
