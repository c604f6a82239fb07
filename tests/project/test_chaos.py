"""The reduced chaos run of `make test`: a few disputes through every path while the worker is
killed, the dev server restarted, the mail server and the database go away and hostile mail
arrives; on SQLite and on PostgreSQL (`make chaos` runs the full plan)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chaos.processes import Recording
from chaos.suite import ChaosRun, Plan, run_chaos
from models.payloads import NotificationRequest
from models.tables import OutboxMessage
from tests.notifications.test_outbox_relay import CONTEXT

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


def test_only_a_copy_sent_after_a_kill_cut_its_send_is_excused() -> None:
    """A relay killed between the server's acceptance and its record sends the email again
    once its lease runs out (the outbox's at-least-once, same Message-ID): that copy is counted
    apart. A copy with no kill just after the delivery before it is a finding."""
    recording = Recording()
    recording.deliveries = [
        ("<a@x>", "p@x", "s", 10.0),
        ("<a@x>", "p@x", "s", 75.0),  # a kill at 10.3: cut
        ("<b@x>", "p@x", "s", 20.0),
        ("<b@x>", "p@x", "s", 21.0),  # no kill between
        ("<c@x>", "p@x", "s", 30.0),
        ("<c@x>", "p@x", "s", 95.0),  # a kill at 40.0: too late to have cut this send
        ("<d@x>", "p@x", "s", 50.0),  # once
    ]
    cut, unexplained = recording.cut_by_kill([10.3, 40.0], window=2.0)
    assert cut == {("<a@x>", "p@x"): 1}
    assert unexplained == {("<b@x>", "p@x"): 1, ("<c@x>", "p@x"): 1}


def test_a_record_held_up_by_a_database_outage_widens_the_window_to_its_end() -> None:
    """While the database is unreachable the relay cannot record what the server accepted (it
    tries again until the database is back): a kill during the outage, or just after it, cut
    the send as surely as one just after the delivery; a kill well after the outage did not."""
    recording = Recording()
    recording.deliveries = [
        ("<e@x>", "p@x", "s", 60.0),
        ("<e@x>", "p@x", "s", 130.0),  # a kill at 62.5, the database away from 59.5 to 63
        ("<f@x>", "p@x", "s", 58.0),
        ("<f@x>", "p@x", "s", 140.0),  # the outage began before its record: a kill at 64.5
        ("<g@x>", "p@x", "s", 70.0),
        ("<g@x>", "p@x", "s", 150.0),  # a kill at 72.5, the outage long over
    ]
    kills = [62.5, 64.5, 72.5]
    cut, unexplained = recording.cut_by_kill(kills, window=2.0, outages=[(59.5, 63.0)])
    assert cut == {("<e@x>", "p@x"): 1, ("<f@x>", "p@x"): 1}
    assert unexplained == {("<g@x>", "p@x"): 1}
    # Without the outage, the same kills excuse nothing.
    assert recording.cut_by_kill(kills, window=2.0)[0] == {}


def test_a_duplicate_is_reported_with_what_its_diagnosis_needs(tmp_path: Path) -> None:
    """A CI run's folder is gone when its report is read: a duplicate's line carries its
    delivery times, the kills and outages around them, its outbox row and the worker's log
    lines about that row."""
    run = ChaosRun(Plan(), tmp_path)
    run.prepare()
    [row_id] = run.services.outbox.enqueue(
        NotificationRequest(
            key="DSP-2026-000001:1:closure",
            number="DSP-2026-000001",
            template="closure",
            recipients=("nora@northwind.example",),
            context={**CONTEXT, "number": "DSP-2026-000001"},
        ),
        datetime.now(UTC),
    )
    with run.services.sessions.read() as session:
        message_id = session.get(OutboxMessage, row_id).message_id  # type: ignore[union-attr]
    run.mail.recording.deliveries = [
        (message_id, "nora@northwind.example", "s", 100.0),
        (message_id, "nora@northwind.example", "s", 170.5),
    ]
    run.worker.killed_at = [104.25]
    run.outage.spans = [(101.0, 104.0)]
    run.worker.log.write_text(
        f"INFO other\nWARNING accord.outbox: outbox message {row_id}: lease not renewed\n"
        f"WARNING accord.outbox: outbox message {row_id + 1}: unrelated\n"
    )
    lines = run._trace(message_id, "nora@northwind.example")
    assert lines[:3] == [
        "delivered at 0.00, 70.50",
        "worker killed at 4.25",
        "database away 1.00-4.00",
    ]
    assert lines[3] == f"outbox row {row_id}: pending, 0 attempts"
    assert lines[4:] == [f"WARNING accord.outbox: outbox message {row_id}: lease not renewed"]
