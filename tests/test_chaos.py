"""The reduced chaos run of `make test`: a few disputes through every path while the worker is
killed, the dev server restarted, the mail server and the database go away and hostile mail
arrives; on SQLite and on PostgreSQL (`make chaos` runs the full plan)."""

from __future__ import annotations

import dataclasses

import pytest

from chaos.suite import Plan, run_chaos

REDUCED = Plan(
    disputes=8,
    concurrency=8,
    worker_kills=2,
    kill_interval=(2.0, 5.0),
    server_restarts=1,
    smtp_down_seconds=5.0,
    database_down_seconds=3.0,
    hostile_mail=True,
    patience_seconds=240.0,
    drain_seconds=150.0,
    seed=14,
)


@pytest.mark.timeout(900)
async def test_disputes_survive_the_reduced_chaos_run(database_url: str) -> None:
    report = await run_chaos(dataclasses.replace(REDUCED, database_url=database_url))
    print(report.table())
    assert report.ok, report.table()
