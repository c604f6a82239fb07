"""The playbook loads, pins by date, and explains what is wrong with a bad file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import PlaybookError, PlaybookLibrary, load_playbook

SHIPPED = REPO_ROOT / "playbooks" / "2026.1.yaml"


def write_variant(tmp_path: Path, change: object, name: str = "2026.1") -> Path:
    data = yaml.safe_load(SHIPPED.read_text())
    change(data)  # type: ignore[operator]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_playbook_is_valid_and_covers_every_category() -> None:
    playbook = load_playbook(SHIPPED)
    terms = playbook.terms_for(playbook.categories.__iter__().__next__())
    assert terms.version == "2026.1" and terms.mediation_days == 15
    assert terms.warning_fractions == (0.5, 0.8)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["categories"]["pricing"]["allowed_remedies"].append("refund"),
            "categories.pricing.allowed_remedies[3]: Input should be 'territory_reassignment'",
        ),
        (
            lambda d: d["calendars"]["GB"].update(time_zone="Mars/Olympus"),
            "calendars.GB.time_zone: Value error, unknown time zone 'Mars/Olympus'",
        ),
        (
            lambda d: d["calendars"]["DE-BY"]["holidays"].update(subdivision="XX"),
            "calendars.DE-BY.holidays: Value error, unknown subdivision 'XX' of DE",
        ),
        (
            lambda d: d["stages"]["mediation"].update(business_days=0),
            "stages.mediation.business_days: Input should be greater than or equal to 1",
        ),
        (lambda d: d["categories"].pop("territory"), "categories: missing territory"),
        (
            lambda d: d.update(board_calendar="NOWHERE"),
            "board_calendar: 'NOWHERE' is not in calendars",
        ),
        (
            lambda d: d["calendars"]["FR"].update(working_hours=["18:00", "09:00"]),
            "calendars.FR.working_hours: Value error, working hours must start before they end",
        ),
        (lambda d: d.update(surprise=True), "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_playbook_names_file_path_and_problem(
    tmp_path: Path, change: object, expected: str
) -> None:
    path = write_variant(tmp_path, change)
    with pytest.raises(PlaybookError) as error:
        load_playbook(path)
    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


def test_malformed_yaml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "2026.9.yaml"
    path.write_text("version: '2026.9'\ncategories: [unclosed\n")
    with pytest.raises(PlaybookError, match=r"2026\.9\.yaml: not valid YAML"):
        load_playbook(path)


def test_version_must_match_file_name(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda d: None, name="2027.1")
    with pytest.raises(PlaybookError, match="does not match the file name"):
        load_playbook(path)


def test_dispute_pins_the_version_in_force_on_its_filing_date(tmp_path: Path) -> None:
    write_variant(tmp_path, lambda d: None)
    write_variant(
        tmp_path,
        lambda d: d.update(
            version="2027.1", effective_from=date(2027, 1, 1), filing_window_days=30
        ),
        name="2027.1",
    )
    library = PlaybookLibrary.from_dir(tmp_path)
    assert library.in_force(date(2026, 12, 31)).version == "2026.1"
    assert library.in_force(date(2027, 1, 1)).version == "2027.1"
    assert library.get("2026.1").filing_window_days == 90
    with pytest.raises(PlaybookError, match="no playbook is in force on 2025-06-01"):
        library.in_force(date(2025, 6, 1))
