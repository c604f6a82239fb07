"""Probe: hostile decision tables in a playbook file (accord.playbooks.library)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from accord.platform.settings import REPO_ROOT
from accord.playbooks.engagement import recommend
from accord.playbooks.library import PlaybookError, load_playbook
from models.enums import DisputeCategory
from models.payloads.engagement import EngagementFacts


def _write(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((REPO_ROOT / "playbooks" / "2026.2.yaml").read_text())
    change(data)
    path = tmp_path / "2026.2.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_condition_left_empty_is_refused_not_read_as_whatever_the_facts(
    tmp_path: Path,
) -> None:
    """`when: {exception: }` (a value left out, YAML null) loads: Conditions takes None as 'not
    asked', so the rule loses its only condition and decides every dispute of its categories.
    Here RoE 2.1's first rule then recommends deny for a claimant who registered first inside
    the protection window (RoE 3.1 says uphold), for every deal-registration, territory,
    lead-routing and channel-vs-direct dispute."""
    text = (REPO_ROOT / "playbooks" / "2026.2.yaml").read_text()
    hostile = text.replace("- when: {exception: respondent}", "- when: {exception: }", 1)
    assert hostile != text
    path = tmp_path / "2026.2.yaml"
    path.write_text(hostile)
    try:
        playbook = load_playbook(path)
    except PlaybookError as refused:
        if "exception" not in str(refused):
            raise AssertionError(f"refused, but not naming the condition: {refused}") from None
        return
    found = recommend(
        playbook,
        DisputeCategory.DEAL_REGISTRATION,
        EngagementFacts(first_registrant="claimant", within_protection=True),
        purpose="t",
    )
    raise AssertionError(
        f"loaded; the rule now applies whatever the facts: recommends {found.outcome} under "
        f"{found.clause!r}"
    )


def test_a_table_clause_worded_otherwise_than_the_category_clause_of_its_reference_is_refused(
    tmp_path: Path,
) -> None:
    """Two tables with one reference are refused ('RoE 3.1 is also tables[1]'s'), as the
    reference is the clause's key everywhere (citations, divergence, the backtest's per-clause
    figures). A table whose clause has the reference of a category's clause but other words
    loads, and the playbook then words RoE 3.1 two ways: the recommendation shows the table's
    wording, a ruling citing RoE 3.1 is recorded with the category's (canonical_clauses)."""

    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["engagement"]["tables"][5]["clause"] = "RoE 3.1 The last registration wins"

    path = _write(tmp_path, change)
    with pytest.raises(PlaybookError) as refused:
        load_playbook(path)
    assert "RoE 3.1" in str(refused.value)
