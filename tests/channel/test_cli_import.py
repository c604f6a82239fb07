"""`accord channel import` and `accord channel imports` as an admin runs them, on both
databases: the outcome in one line, every problem by file, row and field with nothing written,
progress for a large file, and only admins."""

from __future__ import annotations

import json
from pathlib import Path

from bench.channel_import import registrations_csv
from tests.processes import deployed_environment, run_accord

GOOD = """external_id,partner_id,customer_name,customer_domain,country,amount,currency,status,registered_at,modified_at
DR-1,contoso,ACME Corp.,https://www.acme.com,US,125000.00,USD,approved,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z
DR-2,fabrikam,Acme Corporation,acme.com,US,99.5,USD,submitted,2026-11-03,2026-11-03T09:00:00+01:00
"""


def test_an_admin_imports_a_file_twice_then_a_bad_one_and_lists_the_imports(
    database_url: str, tmp_path: Path
) -> None:
    env = deployed_environment(DATABASE_URL=database_url)
    assert run_accord("seed-demo", env=env).returncode == 0
    (tmp_path / "registrations.csv").write_text(GOOD)
    first = run_accord(
        "channel", "import", "registrations.csv", "--as", "ada.admin", env=env, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "registrations.csv: 2 registrations read; 2 new, 0 updated, 0 unchanged" in first.stdout
    again = run_accord(
        "channel", "import", "registrations.csv", "--as", "ada.admin", env=env, cwd=tmp_path
    )
    assert "0 new, 0 updated, 2 unchanged" in again.stdout, again.stderr

    (tmp_path / "march.csv").write_text(
        GOOD.replace("US,99.5", "USA,99.5").replace("DR-1,contoso", "DR-3,nobody")
    )
    bad = run_accord(
        "channel",
        "import",
        "march.csv",
        "--kind",
        "registration",
        "--as",
        "ada.admin",
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "march.csv was not imported, nothing of it was written (2 problems" in bad.stderr, (
        bad.stderr
    )
    assert (
        "march.csv, row 2, field partner_id: 'nobody' is no partner in the directory" in bad.stderr
    )
    assert "march.csv, row 3, field country: is not a two-letter country code" in bad.stderr
    assert "Traceback" not in bad.stderr

    listed = run_accord("channel", "imports", "--json", env=env)
    rows = json.loads(listed.stdout)
    assert [(r["file_name"], r["state"], r["created"], r["problem_count"]) for r in rows] == [
        ("march.csv", "refused", 0, 2),
        ("registrations.csv", "done", 0, 0),
        ("registrations.csv", "done", 2, 0),
    ]
    assert rows[0]["started_by"] == "ada.admin"


def test_a_large_import_shows_its_progress_and_a_partner_may_not_import(
    database_url: str, tmp_path: Path
) -> None:
    env = deployed_environment(DATABASE_URL=database_url)
    assert run_accord("seed-demo", env=env).returncode == 0
    data = registrations_csv(12_000).replace(b",DACH,", b",,")
    for n in range(1, 41):
        data = data.replace(f",p{n},".encode(), b",contoso,")
    (tmp_path / "registrations.csv").write_bytes(data)
    partner = run_accord(
        "channel",
        "import",
        "registrations.csv",
        "--as",
        "carl@contoso.example",
        env=env,
        cwd=tmp_path,
    )
    assert partner.returncode == 2 and "only admins work with channel data" in partner.stderr, (
        partner.stderr
    )
    done = run_accord(
        "channel", "import", "registrations.csv", "--as", "ada.admin", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    progress = done.stderr.splitlines()
    assert "registrations.csv: checking rows, 5,000" in progress
    assert "registrations.csv: checking rows, 10,000" in progress
    assert "registrations.csv: writing rows, 12,000 of 12,000" in progress
    assert "12000 registrations read; 12000 new" in done.stdout


def test_an_admin_lists_and_dismisses_alerts_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    env = deployed_environment(DATABASE_URL=database_url)
    assert run_accord("seed-demo", env=env).returncode == 0
    (tmp_path / "registrations.csv").write_text(GOOD)
    run_accord("channel", "import", "registrations.csv", "--as", "ada.admin", env=env, cwd=tmp_path)
    listed = run_accord("channel", "alerts", env=env)
    assert (
        "same customer" in listed.stdout
        and "registration:DR-1 and registration:DR-2" in listed.stdout
    )
    alert_id = listed.stdout.split()[0]
    # Making it a dispute: the options are checked, and only admins may, before anything else.
    amount = run_accord(
        "channel",
        "convert",
        alert_id,
        "--claimant",
        "northwind",
        "--amount",
        "-5",
        "--as",
        "ada.admin",
        env=env,
    )
    assert amount.returncode == 2 and "--amount:" in amount.stderr, amount.stderr
    partner = run_accord(
        "channel",
        "convert",
        alert_id,
        "--claimant",
        "contoso",
        "--as",
        "carl@contoso.example",
        env=env,
    )
    assert partner.returncode == 2 and "only admins" in partner.stderr, partner.stderr
    short = run_accord(
        "channel", "dismiss", alert_id, "--reason", "no", "--as", "ada.admin", env=env
    )
    assert short.returncode == 2 and "--reason:" in short.stderr, short.stderr
    partner = run_accord(
        "channel",
        "dismiss",
        alert_id,
        "--reason",
        "not a conflict",
        "--as",
        "carl@contoso.example",
        env=env,
    )
    assert partner.returncode == 2 and "only admins" in partner.stderr
    done = run_accord(
        "channel",
        "dismiss",
        alert_id,
        "--reason",
        "Two divisions of Acme",
        "--as",
        "ada.admin",
        env=env,
    )
    assert done.returncode == 0 and f"alert {alert_id} dismissed" in done.stdout, done.stderr
    again = run_accord(
        "channel",
        "dismiss",
        alert_id,
        "--reason",
        "Two divisions of Acme",
        "--as",
        "ada.admin",
        env=env,
    )
    assert again.returncode == 2 and "dismissed already" in again.stderr
    assert run_accord("channel", "alerts", env=env).stdout.strip() == "no alerts"
    shown = run_accord("channel", "alerts", "--state", "dismissed", "--json", env=env)
    assert [a["decision_reason"] for a in json.loads(shown.stdout)] == ["Two divisions of Acme"]
    wrong = run_accord("channel", "alerts", "--state", "closed", env=env)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr


def test_hostile_command_lines_are_one_line_each(database_url: str, tmp_path: Path) -> None:
    """Adversarial probe: an alert id past a row id's range was a traceback; a FIFO made the
    import wait for ever; an unknown kind did not list the known ones."""
    import os

    env = deployed_environment(DATABASE_URL=database_url)
    assert run_accord("seed-demo", env=env).returncode == 0
    far = run_accord(
        "channel", "dismiss", "2147483648", "--reason", "no conflict", "--as", "ada.admin", env=env
    )
    assert far.returncode == 2 and "no alert 2147483648" in far.stderr, far.stderr
    os.mkfifo(tmp_path / "registrations.csv")
    fifo = run_accord(
        "channel", "import", "registrations.csv", "--as", "ada.admin", env=env, cwd=tmp_path
    )
    assert fifo.returncode == 2 and "is not a file" in fifo.stderr, fifo.stderr
    kind = run_accord("channel", "alerts", "--kind", "zzz", env=env)
    assert kind.returncode == 2 and "same_customer, exclusive_territory" in kind.stderr
    (tmp_path / "export.json").write_text('{"records": [' + "9" * 5000 + "]}")
    huge = run_accord(
        "channel", "import", "export.json", "--as", "ada.admin", env=env, cwd=tmp_path
    )
    assert huge.returncode == 2 and "over 4,300 digits" in huge.stderr, huge.stderr
    for out in (far, fifo, kind, huge):
        assert "Traceback" not in out.stderr
