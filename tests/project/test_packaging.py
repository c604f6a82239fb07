"""The package configuration setuptools reads on `make run`'s install: none of the keys that make
it print its deprecation and "absent from packages" warnings (pages of "!!" blocks, shown by
recent pip even with --quiet)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_the_license_is_an_spdx_expression_not_a_deprecated_table() -> None:
    assert isinstance(PYPROJECT["project"]["license"], str)
    assert not any("License ::" in c for c in PYPROJECT["project"].get("classifiers", []))
    # setuptools reads an SPDX expression from 77 on (older ones refuse it)
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]


def test_every_folder_shipped_inside_a_package_is_listed_as_one() -> None:
    """setuptools warns, once per folder, about a folder inside a package whose files it ships
    but that `packages` does not name."""
    packages = set(SETUPTOOLS["packages"])
    unlisted = []
    for package in packages:
        folder = REPO_ROOT / Path(*package.split("."))
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or not child.name.isidentifier():
                continue
            if child.name == "__pycache__" or not any(child.iterdir()):
                continue
            if f"{package}.{child.name}" not in packages:
                unlisted.append(f"{package}.{child.name}")
    assert unlisted == [], f"add to [tool.setuptools] packages: {', '.join(unlisted)}"


def test_package_data_names_only_listed_packages_and_files_that_exist() -> None:
    packages = set(SETUPTOOLS["packages"])
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        assert package in packages, package
        folder = REPO_ROOT / Path(*package.split("."))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"
