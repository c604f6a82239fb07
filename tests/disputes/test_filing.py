"""Filing: bad input gets an error naming the field or rule, and nothing is written."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from accord.disputes.filing import FilingRejected
from accord.runtime.wiring import build_worker
from models.tables import Dispute, DisputeEvent, FilingReceipt, OutboxMessage
from tests.conftest import MailCapture, Stack, dev_stack


def row_counts(stack: Stack) -> tuple[int, ...]:
    with stack.sessions.read() as session:
        return tuple(
            session.exec(select(func.count()).select_from(table)).one()
            for table in (Dispute, FilingReceipt, DisputeEvent, OutboxMessage)
        )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"claimant_id": "nobody"}, "claimant_id: unknown partner 'nobody'"),
        ({"respondent_ids": ["contoso", "ghost"]}, "respondent_ids[1]: unknown partner 'ghost'"),
        (
            {"filed_by": "carl@contoso.example"},
            "filed_by: carl@contoso.example is not an active contact of northwind",
        ),
        (
            {"contested_objects": [{"kind": "account", "ref": "NOPE-1"}]},
            "contested_objects[0].ref: unknown account 'NOPE-1'",
        ),
        (
            {"contested_objects": [{"kind": "territory", "ref": "MARS"}]},
            "contested_objects[0].ref: unknown territory 'MARS'",
        ),
        (
            {"occurred_on": (date.today() - timedelta(days=200)).isoformat()},
            "occurred_on: outside the filing window",
        ),
        (
            {"occurred_on": (date.today() + timedelta(days=2)).isoformat()},
            "occurred_on: is in the future",
        ),
    ],
)
async def test_filing_refused_against_directory_and_playbook(
    stack: Stack, overrides: dict[str, Any], expected: str
) -> None:
    before = row_counts(stack)
    with pytest.raises(FilingRejected) as rejected:
        await stack.file(**overrides)
    assert expected in str(rejected.value)
    assert row_counts(stack) == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"respondent_ids": ["northwind"]}, "the claimant cannot also be a respondent"),
        ({"respondent_ids": []}, "respondent_ids"),
        ({"category": "gossip"}, "category"),
        ({"amount_at_stake": "-5"}, "amount_at_stake"),
        ({"currency": "dollars"}, "currency"),
        ({"contested_objects": [{"kind": "spaceship", "ref": "X"}]}, "contested_objects.0.kind"),
        ({"summary": ""}, "summary"),
        ({"occurred_on": "yesterday"}, "occurred_on"),
    ],
)
def test_malformed_submission_names_the_field(
    stack: Stack, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as invalid:
        stack.submission(**overrides)
    assert field in str(invalid.value)


async def test_a_filing_stored_before_a_crash_is_started_later(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from accord.disputes.filing import FilingService

    real_start = FilingService._start

    async def crash(self: FilingService, dispute: object, key: str, *, fresh: bool) -> bool:
        raise ConnectionError("worker host lost power")

    monkeypatch.setattr(FilingService, "_start", crash)
    with pytest.raises(ConnectionError):
        await stack.file()
    monkeypatch.setattr(FilingService, "_start", real_start)
    with stack.sessions.read() as session:
        stored = session.exec(select(Dispute)).one()
    assert stored.stage.value == "filed"

    started = await stack.filing.start_stranded(older_than=timedelta(0))
    assert started == [stored.number]
    await stack.wait_for(stored.number, lambda s: s.candidate_mediator_id is not None)
    assert await stack.filing.start_stranded(older_than=timedelta(0)) == []


async def test_retrying_after_a_crash_starts_the_same_dispute(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.disputes.filing import FilingService

    real_start = FilingService._start

    async def crash(self: FilingService, dispute: object, key: str, *, fresh: bool) -> bool:
        raise ConnectionError("Temporal unreachable")

    monkeypatch.setattr(FilingService, "_start", crash)
    with pytest.raises(ConnectionError):
        await stack.file()
    monkeypatch.setattr(FilingService, "_start", real_start)
    again = await stack.file()
    assert again.duplicate
    await stack.wait_for(again.number, lambda s: s.candidate_mediator_id is not None)


async def test_a_filing_waiting_on_the_database_leaves_the_event_loop_running(
    stack: Stack,
) -> None:
    """The worker shares the web process's event loop: a filing waiting for SQLite's writer
    (another thread's transaction holds it) must let workflow tasks and requests run meanwhile."""
    from tests.races import runs_while_the_writer_is_held

    loop_ran_while_held, result = await runs_while_the_writer_is_held(stack.sessions, stack.file())
    assert loop_ran_while_held
    assert not result.duplicate
    await stack.wait_for(result.number, lambda s: s.candidate_mediator_id is not None)


def test_the_years_first_two_numbers_drawn_at_once_are_two_numbers(database_url: str) -> None:
    """The first filings of a year race to create its counter: the second waits on the first
    (PostgreSQL on its uncommitted row, SQLite for the one writer) and, once the first commits,
    must take the next number. On PostgreSQL it met a duplicate key on dispute_counter and the
    filing failed (CI's chaos run, once filings stopped taking turns on the event loop)."""
    import threading

    from accord.disputes.filing import FilingService
    from accord.platform.db import SessionFactory, make_engine

    sessions = SessionFactory(make_engine(database_url))
    drawn: list[str] = []
    failed: list[BaseException] = []

    def second() -> None:
        try:
            with sessions.begin() as session:
                drawn.append(FilingService._next_number(session, 2031))
        except BaseException as exc:  # reported below
            failed.append(exc)

    racing = threading.Thread(target=second)
    with sessions.begin() as session:
        first = FilingService._next_number(session, 2031)
        racing.start()
        racing.join(1)
        assert racing.is_alive(), "the second draw did not wait for the first"
    racing.join(30)
    assert not failed, failed
    assert (first, drawn) == ("DSP-2031-000001", ["DSP-2031-000002"])


async def test_a_new_dispute_starts_on_this_processs_worker_at_once(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start asks for its first workflow task back (eager start): a worker sharing the
    client (the intake's, `accord run`'s) runs it at once, instead of the task waiting on the
    queue behind running disputes' tasks. Under the intake bench that wait was 5 to 35 s before
    the acknowledgement was even written to the outbox."""
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)
    eagerly: list[bool] = []
    real_start = Client.start_workflow

    async def started(self: Client, *args: Any, **kwargs: Any) -> Any:
        handle = await real_start(self, *args, **kwargs)
        eagerly.append(bool(getattr(handle, "__temporal_eagerly_started", False)))
        return handle

    monkeypatch.setattr(Client, "start_workflow", started)
    async with stack.worker:
        result = await stack.file()
        assert eagerly == [True]
        await stack.wait_for_event(result.number, "filed")


async def test_a_worker_built_but_not_running_on_the_client_does_not_hold_a_new_dispute(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> None:
    """Eagerly started, the first workflow task goes to a worker of the filing's client; one
    that is built but not polling (a stack whose worker runs in another process) would hold
    it until the task's timeout (10 s). The worker of another client takes it at once."""
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)  # its worker is built, not run
    other = await Client.connect(
        dev_server.client.service_client.config.target_host,
        namespace=dev_server.client.namespace,
        data_converter=dev_server.client.data_converter,
    )
    async with build_worker(other, stack.services, stack.settings.task_queue):
        began = time.monotonic()
        result = await stack.file()
        await stack.wait_for_event(result.number, "filed")
        assert time.monotonic() - began < 5
