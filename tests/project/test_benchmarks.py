"""Every benchmark runs to the end, small: a benchmark that cannot finish fails here, not on the
night of a measurement. Nothing here judges speed (the figures are for bench/results.md); each
run must exit 0 and print its figures, its goals, the machine's load and the CPU per unit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from accord.platform.settings import REPO_ROOT


def run_bench(name: str, *args: str, timeout: float = 280) -> str:
    # Its own temporary folder, to see what the run leaves there: a benchmark's work (its
    # databases, 150 MB for the small web run) must go with it, or every `make test` fills /tmp.
    with tempfile.TemporaryDirectory(prefix="bench-tmp-") as scratch:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": scratch}
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        left = sorted(p.name for p in Path(scratch).glob("accord-*"))
    out = done.stdout
    assert done.returncode == 0, (
        f"bench.{name} exited {done.returncode}:\n{out[-3000:]}\n{done.stderr[-5000:]}"
    )
    assert not left, f"bench.{name} left its work folder behind: {left}"
    finished = re.search(rf"^bench {name} finished: (\d+) figures, (\d+) goals", out, re.M)
    assert finished, f"bench.{name} printed no closing line:\n{out[-3000:]}"
    assert int(finished[1]) > 0, out
    assert re.search(
        r"^machine: \d+ cores, load [\d.]+ [\d.]+ [\d.]+ before, [\d.]+ [\d.]+ [\d.]+ after",
        out,
        re.M,
    ), out
    return out


def goals_in(out: str) -> list[str]:
    return re.findall(r"goal [<>]= .*?(PASS|MISS)$", out, re.M)


@pytest.mark.timeout(300)
def test_the_lifecycle_benchmark_runs_to_the_end_review_path_included() -> None:
    out = run_bench("lifecycle", "--disputes", "4", "--concurrency", "2")
    assert "Review path: 1 disputes from filing to ruling" in out
    assert re.search(r"ratio to the bare engine .* goal >= 0.8 +(PASS|MISS)", out), out
    assert re.search(r"Accord: process CPU per settled dispute .* goal <= 250 ms", out), out
    assert "Accord: server CPU per settled dispute" in out
    assert re.search(r"Accord: SQLite writer held \(share of the run\) +\d", out), out
    # Whose transactions hold it: the audit entries' among them, each with its share.
    assert re.search(
        r"writer held by activities\.records\.RecordActivities\._append \(\d+ turns, [\d.]+ ms each\) +[\d.]+ %",
        out,
    ), out
    assert len(goals_in(out)) == 2


@pytest.mark.timeout(300)
def test_the_web_benchmark_runs_to_the_end_with_the_action_round_trip(database_url: str) -> None:
    out = run_bench(
        "web",
        *("--disputes", "300", "--requests", "5", "--filings", "6", "--single-filings", "3"),
        *("--open-disputes", "10", "--actions", "12", "--people", "4", "--busy-notes", "6"),
        "--database-url",
        database_url,
    )
    for figure in (
        "action: add note (4 people) p50",
        "action: add note (4 people) p95",
        "filing (API, one at a time) p50",
        "filing (API, 20 concurrent) p95",
        "search p95",
        "search (list's text field) p95",
        "busy dispute page p95",
        "busy dispute page, worker stopped p95",
        "add note: process CPU per action",
    ):
        assert figure in out, out
    assert len(goals_in(out)) == 12


@pytest.mark.timeout(300)
def test_the_intake_benchmark_runs_to_the_end() -> None:
    out = run_bench("intake", "--filings", "4", "--replies", "4", "--concurrency", "2")
    assert "filing: process CPU per message" in out
    assert len(goals_in(out)) == 3


@pytest.mark.timeout(300)
def test_the_search_benchmark_runs_to_the_end(database_url: str) -> None:
    out = run_bench(
        "search", "--sizes", "500,1000", "--queries", "10", "--database-url", database_url
    )
    assert "precedent search p95 at 1,000" in out
    assert "process CPU per query at 1,000" in out


@pytest.mark.timeout(300)
def test_the_parked_benchmark_runs_to_the_end_and_its_timers_fire() -> None:
    out = run_bench(
        "parked",
        *("--disputes", "30", "--probes", "6", "--window", "20", "--lead", "10"),
        *("--stagger", "2", "--idle", "2"),
    )
    assert re.search(r"worker RSS with 30 disputes parked .* goal <= 300 MB", out), out
    assert "Temporal server RSS" in out
    assert re.search(r"timer lateness p95 .* goal <= 1000 ms", out), out
    fired = re.search(r"^timers fired: (\d+) of (\d+) due", out, re.M)
    assert fired and int(fired[1]) == int(fired[2]) > 0, out


def postgres_server() -> str:
    """A URL to the test PostgreSQL server's own database: a benchmark makes its own there."""
    from tests.conftest import POSTGRES_URL, _require_postgres

    _require_postgres()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_migrations_benchmark_runs_to_the_end() -> None:
    out = run_bench(
        "migrations", "--disputes", "2000", "--entries", "20000", "--database", postgres_server()
    )
    assert re.search(r"probes blocked \(a lock waited for over 1s\) +0\.0", out), out
    assert "upgrade from 0006 to head" in out


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_metrics_benchmark_runs_to_the_end() -> None:
    out = run_bench(
        "metrics", "--entries", "30000", "--scrapes", "3", "--database", postgres_server()
    )
    assert "a later scrape, p95" in out


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.timeout(300)
def test_the_channel_import_benchmark_creates_then_skips_then_updates(database: str) -> None:
    args = ["--rows", "3000"] + (
        ["--database", postgres_server()] if database == "postgres" else []
    )
    out = run_bench("channel_import", *args)
    assert "created 3,000, updated 0, unchanged 0" in out, out
    assert "created 0, updated 0, unchanged 3,000" in out, out
    assert re.search(r"created 0, updated [1-9]\d, unchanged 2,9\d\d", out), out
    assert re.search(r"detection over the import: precision +[01]\.\d{3}", out), out
    assert re.search(r"detection over the import: recall +[01]\.\d{3}", out), out


def test_the_matching_benchmark_prints_precision_and_recall_per_variation() -> None:
    out = run_bench("matching")
    assert re.search(r"same customer: precision +[01]\.\d{3} +goal >= 0\.95 +PASS", out), out
    assert re.search(r"same customer: recall +[01]\.\d{3} +goal >= 0\.9 +PASS", out), out
    assert "transliteration" in out and "generic words only in common" in out
