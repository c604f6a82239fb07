"""Backups taken in the operator's guide's order, Accord's database first and then Temporal's, and
restored together: every dispute goes on (issue 19, item 9).

Temporal here is the dev server from the wheel, which keeps its state in one SQLite file rather
than in PostgreSQL's `temporal` and `temporal_visibility`; its backup is SQLite's online backup,
a consistent copy taken while the server runs, as `pg_dump` takes one of a database. Accord's
database is PostgreSQL, dumped and restored with the guide's own `pg_dump` and `pg_restore`
commands."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from tests.activities.test_audit_trail import accord, gaps, note
from tests.conftest import MailCapture, fresh_postgres_database, running_stack, start_dev_server
from tests.processes import run_accord
from tests.project.test_operations_guide import COMMANDS, PG_COMMAND, run_guide_pg_command
from tests.workflows.test_dispute_paths import in_mediation

pytestmark = pytest.mark.postgres
QUEUE = "accord-disputes"
"""One task queue before and after the restore, as a deployment's."""


async def dev_server(state: Path) -> WorkflowEnvironment:
    """The dev server keeping its state in `state`, as the embedded stack runs it."""
    return await start_dev_server("--db-filename", str(state))


def accord_environment(env: WorkflowEnvironment, url: str) -> dict[str, str]:
    """What an `accord` command of this deployment runs with: its database and Temporal."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "ACCORD_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "ACCORD_TEMPORAL_NAMESPACE": "default",
        "ACCORD_TASK_QUEUE": QUEUE,
    }


class Backups:
    """The two backups in the guide's order, Accord's first, and their restore."""

    def __init__(self, accord_url: str, folder: Path) -> None:
        self.databases = {"accord": make_url(accord_url).database or ""}
        self.folder = folder
        self.state = folder / "temporal.db"
        self.copy = folder / "temporal-backup.db"

    def accord(self) -> None:
        run_guide_pg_command(guide_command("pg_dump", "accord"), self.databases, self.folder)

    def temporal(self) -> None:
        with sqlite3.connect(self.state) as live, sqlite3.connect(self.copy) as backup:
            live.backup(backup)

    def restore(self) -> None:
        """Both back, with Temporal stopped."""
        run_guide_pg_command(guide_command("pg_restore", "accord"), self.databases, self.folder)
        for leftover in self.state.parent.glob(self.state.name + "*"):
            leftover.unlink()
        self.copy.rename(self.state)


def guide_command(tool: str, database: str) -> str:
    [command] = [
        c for c in COMMANDS if (m := PG_COMMAND.match(c)) and m[1] == tool and m[3] == database
    ]
    return command


@pytest.mark.timeout(300)
async def test_both_backups_restored_together_every_dispute_goes_on(
    smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    accord_url, drop = fresh_postgres_database()
    backups = Backups(accord_url, tmp_path)
    try:
        upgrade(accord_url)
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                before = (await stack.file()).number
                mediator = await in_mediation(stack, before)
                await stack.recorded(before)

                backups.accord()

                # Between the two backups: an entry on a dispute, and a dispute filed.
                await note(stack, before, mediator, "Call held between the two backups.")
                between = (
                    await stack.file(
                        contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0101"}]
                    )
                ).number
                await stack.wait_for_event(between, "mediator_offered")

                backups.temporal()

                # After both: lost with them.
                await note(stack, before, mediator, "Call held after both backups.")
        finally:
            await env.shutdown()

        backups.restore()

        env = await dev_server(backups.state)
        try:
            # The guide's next step, before any process serves: `accord reconcile`.
            done = run_accord(
                "reconcile",
                env=accord_environment(env, accord_url),
                cwd=tmp_path,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.splitlines() == [
                f"newest dispute numbers Temporal knows: {between} (new filings come after them)",
                f"stored again from their workflows (they go on): {between}",
            ]
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                # Filed before both backups: its entry from between them is a gap, and it goes on.
                await note(stack, before, mediator, "Call held after the restore.")
                assert len(gaps(stack, before)) == 1
                assert stack.actions(before)[-1] == "note_added"
                await stack.live_matches(before)

                # Filed between them: Temporal ran it, Accord had lost it; stored again from its
                # workflow, it takes its mediator and its first note.
                second = await in_mediation(stack, between)
                await note(stack, between, second, "First call on the second dispute.")
                await stack.live_matches(between)
                assert stack.actions(between)[0] == "audit_gap"

                # A new filing takes the next number, not the one the lost row had freed.
                after_restore = (
                    await stack.file(
                        contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0103"}]
                    )
                ).number
                assert after_restore == f"{between[:-6]}{int(between[-6:]) + 1:06d}"
                await stack.wait_for_event(after_restore, "mediator_offered")

                code, out = await accord(stack, "verify", "--all")
                assert code == 1, out  # gaps, no breaks
                assert "broken" not in out and "missing" not in out, out
                assert (
                    f"{before}: gap at entry " in out
                    and f"{between}: gap at entry 1: steps 1-" in out
                )
        finally:
            await env.shutdown()
    finally:
        drop()


@pytest.mark.timeout(300)
async def test_a_worker_starting_after_the_restore_stores_the_lost_dispute_again(
    smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    """The same restore, where the operator starts the services without `accord reconcile`: the
    worker does it as it starts (worker.py), before its first recovery pass."""
    from sqlmodel import select

    from models.tables import Dispute, DisputeCounter
    from tests.conftest import make_settings
    from worker import run_worker

    accord_url, drop = fresh_postgres_database()
    backups = Backups(accord_url, tmp_path)
    try:
        upgrade(accord_url)
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                backups.accord()
                lost = (await stack.file()).number
                await stack.wait_for_event(lost, "mediator_offered")
                backups.temporal()
        finally:
            await env.shutdown()
        backups.restore()
        env = await dev_server(backups.state)
        try:
            settings = make_settings(accord_url, smtp[1], tmp_path, task_queue=QUEUE)
            stop = asyncio.Event()
            running = asyncio.create_task(run_worker(settings, stop, client=env.client))
            sessions = SessionFactory(make_engine(accord_url))
            deadline = time.monotonic() + 60  # a bound on the wait, not a measure
            while True:
                with sessions.read() as session:
                    row = session.get(Dispute, lost)
                    counter = session.exec(select(DisputeCounter)).first()
                if row is not None:
                    break
                assert time.monotonic() < deadline, "the worker did not store the lost dispute"
                await asyncio.sleep(0.2)
            assert counter is not None and f"DSP-{counter.year}-{counter.last:06d}" == lost
            stop.set()
            await running
            sessions.engine.dispose()
        finally:
            await env.shutdown()
    finally:
        drop()


@pytest.mark.timeout(300)
async def test_a_filing_taken_before_reconcile_does_not_take_a_lost_dispute_s_number(
    smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    """After the restore, a web process takes a filing before anyone ran `accord reconcile`.
    The counter hands it the number of the dispute filed between the backups, whose workflow
    runs; starting would have attached this filing to that workflow (its row this filing's,
    its workflow the lost dispute's). Instead the filing notices, the database is reconciled,
    and the filing gets the next number and a workflow of its own; the lost dispute is stored
    again from its workflow."""
    from models.tables import Dispute

    accord_url, drop = fresh_postgres_database()
    backups = Backups(accord_url, tmp_path)
    try:
        upgrade(accord_url)
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                backups.accord()
                lost = (await stack.file(summary="Filed between the two backups")).number
                await stack.wait_for_event(lost, "mediator_offered")
                backups.temporal()
        finally:
            await env.shutdown()
        backups.restore()
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                taken = await stack.file(
                    summary="Filed after the restore, before reconcile",
                    contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0109"}],
                )
                assert not taken.linked and taken.number != lost
                assert taken.number == f"{lost[:-6]}{int(lost[-6:]) + 1:06d}"
                with stack.sessions.read() as session:
                    rows = {
                        n: session.get(Dispute, n).summary  # type: ignore[union-attr]
                        for n in (lost, taken.number)
                    }
                assert rows == {
                    lost: "Filed between the two backups",
                    taken.number: "Filed after the restore, before reconcile",
                }
                for number, summary in rows.items():
                    dispute = await stack.filing._input_of(number)
                    assert dispute is not None and dispute.filing.summary == summary
                # Both go on: the new one is offered to a mediator, the lost one takes its own.
                await stack.wait_for_event(taken.number, "mediator_offered")
                await in_mediation(stack, lost)
        finally:
            await env.shutdown()
    finally:
        drop()


@pytest.mark.timeout(300)
async def test_reconcile_goes_past_a_workflow_it_cannot_read_and_says_so(
    smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    """One lost dispute's workflow sealed with a payload key this process does not have (and a
    workflow whose id is no dispute number) does not stop the others from being stored again:
    the command names it and exits 1. With Temporal unreachable it says so, exit 2, and no
    traceback."""
    from temporalio.client import Client

    from models.codec import PayloadKeys
    from models.converter import encrypted
    from models.tables import Dispute

    first, drop_first = fresh_postgres_database()
    second, drop_second = fresh_postgres_database()
    try:
        for url in (first, second):
            upgrade(url)
        env = await dev_server(tmp_path / "temporal.db")
        try:
            async with running_stack(env, first, smtp, tmp_path, task_queue=QUEUE) as stack:
                readable = (await stack.file()).number
                await stack.wait_for_event(readable, "mediator_offered")
                other = Client(
                    env.client.service_client,
                    namespace=env.client.namespace,
                    data_converter=encrypted(
                        PayloadKeys.parse("other:" + "b3RoZXIta2V5LW5vdC1hY2NvcmRzLTMyLWJ5dGVzISE=")
                    ),
                )
                for workflow_id in ("DSP-2026-000077", "not-a-dispute"):
                    await other.start_workflow(
                        "DisputeWorkflow", {"x": 1}, id=workflow_id, task_queue="nobody-polls"
                    )
            # `second` stands for a restored database that has none of them.
            env_vars = accord_environment(env, second)
            async with running_stack(env, second, smtp, tmp_path, task_queue=QUEUE):
                pass  # the directory, as the restore brings it
            done = run_accord("reconcile", env=env_vars, cwd=tmp_path)
            assert done.returncode == 1, done.stdout + done.stderr
            assert "Traceback" not in done.stderr
            assert f"stored again from their workflows (they go on): {readable}" in done.stdout
            assert (
                "running, missing here, and their workflows' input cannot be read with this"
                " process's payload keys (ACCORD_PAYLOAD_KEYS): DSP-2026-000077"
            ) in done.stdout
            assert "DSP-2026-000077 (new filings" in done.stdout
        finally:
            await env.shutdown()
        sessions = SessionFactory(make_engine(second))
        with sessions.read() as session:
            assert session.get(Dispute, readable) is not None
            assert session.get(Dispute, "DSP-2026-000077") is None
        sessions.engine.dispose()

        unreachable = run_accord(
            "reconcile",
            env={**env_vars, "ACCORD_TEMPORAL_ADDRESS": "127.0.0.1:1"},
            cwd=tmp_path,
        )
        assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
        assert "Traceback" not in unreachable.stderr
        assert "Temporal does not answer at 127.0.0.1:1; nothing changed" in unreachable.stderr
    finally:
        drop_first()
        drop_second()


@pytest.mark.timeout(300)
async def test_a_lost_dispute_s_own_filing_sent_again_before_reconcile(
    smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    """In the same window, a filer sends again a submission the database lost with its dispute
    (same submission id). A running dispute's: it is a repeat, answered with that dispute's
    number, and the dispute keeps its own filing even if the text sent again was edited (as a
    repeat is answered outside the window). A closed one's, which cannot be rebuilt: a new
    dispute, under the next number; the closed one stays named by reconcile."""
    from models.tables import Dispute

    accord_url, drop = fresh_postgres_database()
    backups = Backups(accord_url, tmp_path)
    try:
        upgrade(accord_url)
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                backups.accord()
                running = (
                    await stack.file(submission_id="sub-running", summary="The running one")
                ).number
                closed = (
                    await stack.file(
                        submission_id="sub-closed",
                        summary="The closed one",
                        contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0111"}],
                    )
                ).number
                await stack.wait_for_event(running, "mediator_offered")
                await stack.handle(closed).terminate("withdrawn outside Accord")
                backups.temporal()
        finally:
            await env.shutdown()
        backups.restore()
        env = await dev_server(backups.state)
        try:
            async with running_stack(env, accord_url, smtp, tmp_path, task_queue=QUEUE) as stack:
                again = await stack.file(submission_id="sub-running", summary="Edited on resend")
                assert (again.number, again.duplicate) == (running, True), again
                refiled = await stack.file(
                    submission_id="sub-closed",
                    summary="The closed one",
                    contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0111"}],
                )
                assert not refiled.duplicate and refiled.number not in (running, closed)
                with stack.sessions.read() as session:
                    kept = session.get(Dispute, running)
                    assert kept is not None and kept.summary == "The running one"
                    assert session.get(Dispute, closed) is None
                await in_mediation(stack, running)
                done = run_accord(
                    "reconcile", env=accord_environment(env, accord_url), cwd=tmp_path
                )
                assert done.returncode == 1 and closed in done.stdout, done.stdout
        finally:
            await env.shutdown()
    finally:
        drop()
