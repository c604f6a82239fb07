"""The layers on disk hold: no module imports from a layer above its own ([tool.importlinter]
in pyproject.toml), and the contract does fail on an upward import, shown on a copy of the
code with one planted."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accord", "activities", "intake", "models", "notifications", "web", "workflows")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(where / "pyproject.toml"), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_contract_is_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # A pure rule reaching up into the web layer, and a workflow into the database.
    audit = tmp_path / "accord" / "rules" / "audit.py"
    audit.write_text(audit.read_text() + "\nimport web.context  # noqa: E402, F401\n")
    core = tmp_path / "workflows" / "core.py"
    core.write_text(core.read_text() + "\nimport accord.platform.db  # noqa: E402, F401\n")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "accord.rules.audit -> web.context" in result.stdout
    assert "workflows.core -> accord.platform.db" in result.stdout
    assert "2 broken" in result.stdout


def test_every_package_on_disk_is_installed() -> None:
    """The Docker image installs the project (not editable): a package folder missing from
    `[tool.setuptools] packages` would be missing from it, though every test here passes."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert on_disk <= listed, f"not in [tool.setuptools] packages: {sorted(on_disk - listed)}"


# Where a first-party import inside a function is right, and why; nowhere else.
LAZY_ALLOWED = {
    # Start-up time: `accord --help` and each command load only what that command needs.
    "accord/cli",
    # Alembic loads every version script to find the head (readiness does, on each check); a
    # data migration's imports are its upgrade's own.
    "accord/migrations/versions",
}


def _lazy_imports(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names = [inner.module]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in (*PACKAGES, "worker"):
                    found.append(f"{path.relative_to(root)}:{inner.lineno} imports {name}")
    return found


def test_no_module_imports_its_own_code_lazily() -> None:
    """A lazy import to dodge a cycle means the module is in the wrong place: every import of
    Accord's own code is at the top of its module, except where LAZY_ALLOWED says why."""
    lazy = [
        found
        for package in (*PACKAGES, "worker.py")
        for path in sorted(
            (ROOT / package).rglob("*.py") if package != "worker.py" else [ROOT / package]
        )
        if not any(path.relative_to(ROOT).as_posix().startswith(a) for a in LAZY_ALLOWED)
        for found in _lazy_imports(path)
    ]
    assert lazy == []


def test_the_lazy_import_check_finds_one(tmp_path: Path) -> None:
    planted = tmp_path / "web" / "planted.py"
    planted.parent.mkdir()
    planted.write_text("def f():\n    from accord.platform.db import make_engine\n")
    assert _lazy_imports(planted, tmp_path) == ["web/planted.py:2 imports accord.platform.db"]


def _fixtures(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    }


def test_tests_mirror_the_tree_and_share_fixtures_through_conftest() -> None:
    """Each test module sits in the folder of what it tests (tests/<area>/, or tests/adversarial/
    for the probes across areas); a fixture two modules use is in the nearest conftest.py, never
    imported from another test module (pytest would find it only where it was imported)."""
    tests = ROOT / "tests"
    assert not list(tests.glob("test_*.py")), "a test module at the top of tests/"
    for folder in (p for p in tests.iterdir() if p.is_dir() and list(p.glob("test_*.py"))):
        assert (folder / "__init__.py").exists(), folder
    imported = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module):
                continue
            parts = node.module.split(".")
            if parts[0] != "tests" or not parts[-1].startswith("test_"):
                continue
            fixtures = _fixtures(ROOT.joinpath(*parts).with_suffix(".py"))
            imported += [
                f"{path.relative_to(ROOT)} imports the fixture {a.name} from {node.module}"
                for a in node.names
                if a.name in fixtures
            ]
    assert imported == []


def test_every_module_of_accord_is_in_a_layer() -> None:
    """A module no layer names is checked by nothing: the layers contract names packages, and
    the disputes slice's modules one by one (they sit on two layers), so a new one must be
    placed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    named = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    unplaced = [
        name
        for path in sorted((ROOT / "accord").rglob("*.py"))
        if path != ROOT / "accord" / "__init__.py"  # the namespace, nothing in it
        and (
            name := ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        )
        and not any(name == n or name.startswith(n + ".") for n in named)
        and name != "accord.disputes"  # its package file, empty: the modules are placed
    ]
    assert unplaced == []
