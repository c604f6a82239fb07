"""Health, readiness and metrics of the web app and the worker."""

from __future__ import annotations

import asyncio
import gc
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from accord.application import build_services
from accord.platform.db import SessionFactory, make_engine
from accord.platform.observability import BusinessMetrics
from accord.platform.schema import head_revision
from models.enums import DisputeStage, Role
from models.tables import DisputeEvent
from tests.activities.test_activities import add_dispute
from tests.activities.test_audit_trail import lift_guard, put_guard_back
from tests.conftest import MailCapture, Stack, make_settings, seed
from tests.processes import free_port
from tests.web_harness import make_app
from web.app import create_app
from web.health import metrics_app
from worker import run_worker


async def test_web_health_readiness_and_metrics(stack: Stack, tmp_path: Path) -> None:
    app = make_app(stack)
    number = (await stack.file()).number
    await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}
        assert (await client.get(f"/disputes/{number}")).status_code == 303  # not signed in
        assert (await client.get("/no-such-page")).status_code == 404
        # Invented methods, each of which made a series of its own: counted under one label.
        for method in ("FOOBAR", "BREW", "X" * 200, "get"):
            await client.request(method, "/health")
    # The metrics are on their own port (web.serve), not the web app's.
    scraper = httpx.ASGITransport(app=metrics_app(app.state.metrics))
    async with httpx.AsyncClient(transport=scraper, base_url="http://metrics") as client:
        metrics = (await client.get("/metrics")).text
    assert 'accord_disputes{stage="triage"} 1.0' in metrics
    assert 'accord_events_total{action="filed"} 1.0' in metrics
    assert 'accord_events_total{action="deadline_passed"} 0.0' in metrics
    assert 'accord_outbox_messages{state="sent"}' in metrics
    # Requests by route template and status, timed.
    for labels in (
        'method="GET",route="/ready",status="200"',
        'method="GET",route="/disputes/{number}",status="303"',
        'method="GET",route="unmatched",status="404"',
    ):
        assert f"accord_http_request_duration_seconds_count{{{labels}}} 1.0" in metrics
    methods = set(
        re.findall(r'accord_http_request_duration_seconds_count\{method="([^"]*)"', metrics)
    )
    assert methods == {"GET", "other"}, methods
    # Counts only: no dispute, party or person.
    for secret in (number, "northwind", "Northwind", "nora@"):
        assert secret not in metrics

    # A database not migrated to this release's schema: not ready, and the answer says why.
    broken = stack.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'missing' / 'accord.db'}"}
    )
    app = create_app(broken, build_services(broken), stack.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "database": f"schema at nothing, this release needs {head_revision()}: run accord migrate",
        "temporal": "ok",
    }


async def test_worker_health_readiness_and_temporal_metrics(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> None:
    _, smtp_port = smtp
    health_port, metrics_port = free_port(), free_port()
    settings = make_settings(sqlite_url, smtp_port, tmp_path).model_copy(
        update={
            "temporal_address": dev_server.client.service_client.config.target_host,
            "worker_health_port": health_port,
            "temporal_metrics_address": f"127.0.0.1:{metrics_port}",
        }
    )
    seed(build_services(settings).sessions)
    stop = asyncio.Event()
    gc.unfreeze()  # whatever an earlier test froze: the worker must freeze its own start-up
    running = asyncio.create_task(run_worker(settings, stop))
    base = f"http://127.0.0.1:{health_port}"
    async with httpx.AsyncClient(timeout=5) as client:
        ready = None
        for _ in range(100):
            try:
                ready = await client.get(f"{base}/ready")
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["checks"] == {"database": "ok", "temporal": "ok", "worker": "ok"}
        # Started, it froze what start-up left (accord.platform.heap): full collections stay short.
        assert gc.get_freeze_count() > 0
        assert (await client.get(f"{base}/health")).json() == {"status": "ok"}
        assert "accord_disputes" in (await client.get(f"{base}/metrics")).text
        sdk = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "temporal_" in sdk
    stop.set()
    await asyncio.wait_for(running, 30)


def test_audit_event_counts_read_only_the_newest_entries_after_the_first_scrape(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """accord_events_total at 2 M audit entries cost ~2 s of database time on every scrape (a
    count over the whole trail). The trail is append-only: entries already counted are never
    counted again, only the newest (TAIL_ROWS, in case one was still being committed)."""
    import accord.platform.observability as observability

    monkeypatch.setattr(observability, "TAIL_ROWS", 5)
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    add_dispute(sessions, "DSP-2026-000042", DisputeStage.TRIAGE)
    seq = iter(range(1, 10_000))

    def record(action: str, n: int) -> None:
        with sessions.begin() as session:
            for _ in range(n):
                step = next(seq)
                session.add(
                    DisputeEvent(
                        dispute_number="DSP-2026-000042",
                        seq=step,
                        step=step,
                        at=datetime.now(UTC),
                        actor_id="system",
                        actor_role=Role.SYSTEM,
                        action=action,
                        content={},
                        prev_hash="0" * 64,
                        hash="0" * 64,
                    )
                )

    def scraped() -> dict[str, float]:
        families = {f.name: f for f in BusinessMetrics(sessions).collect()}
        return {s.labels["action"]: s.value for s in families["accord_events"].samples}

    record("filed", 30)
    record("deadline_passed", 7)
    collector = BusinessMetrics(sessions)
    first = {f.name: f for f in collector.collect()}["accord_events"]
    assert {s.labels["action"]: s.value for s in first.samples}["filed"] == 30
    settled = collector.tally.watermark
    assert settled == collector.tally.newest - 5  # everything but the tail is counted once
    # (ids here have no gaps: the watermark is the entry TAIL_ROWS back)
    record("filed", 3)
    record("remedy_failed", 2)
    again = {f.name: f for f in collector.collect()}["accord_events"]
    counts = {s.labels["action"]: s.value for s in again.samples if s.name.endswith("_total")}
    assert (counts["filed"], counts["deadline_passed"], counts["remedy_failed"]) == (33, 7, 2)
    # What it read: only entries after the last watermark.
    assert collector.tally.watermark == collector.tally.newest - 5 > settled
    # A collector of its own (another process) agrees, counting from scratch.
    assert scraped()["filed"] == 33

    # A restore from an older backup: the newest entries go, and new ones take their ids
    # again. What this collector counted of the lost entries no longer exists: it counts anew.
    owner = SimpleNamespace(sessions=sessions)  # what lift_guard needs of a stack
    with sessions.begin() as session:
        for statement in lift_guard(owner):  # type: ignore[arg-type]
            session.execute(statement)
        session.execute(text("DELETE FROM dispute_event WHERE seq > 20"))
        for statement in put_guard_back(owner):  # type: ignore[arg-type]
            session.execute(statement)
    if database_url.startswith("postgresql"):
        with sessions.begin() as session:  # the sequence comes back with the backup too
            session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('dispute_event', 'id'),"
                    " (SELECT max(id) FROM dispute_event))"
                )
            )
    seq = iter(range(21, 10_000))
    record("settled", 6)
    after = {f.name: f for f in collector.collect()}["accord_events"]
    counts = {s.labels["action"]: s.value for s in after.samples if s.name.endswith("_total")}
    assert counts == scraped(), (counts, scraped())
    assert (counts["filed"], counts["settled"], counts["remedy_failed"]) == (20, 6, 0)


def test_gauges_count_backlogs_every_scrape_and_finished_rows_every_five_minutes(
    database_url: str,
) -> None:
    """Mail waiting or failed is counted afresh on every scrape (the alerts watch it); mail sent
    is counted at most every SETTLED_EVERY seconds by a process, so a scrape stays cheap on
    millions of sent messages. Every state of each table is one or the other, and every state
    an alert rule names is counted afresh."""
    from accord.platform.observability import GAUGES, SETTLED_EVERY
    from models.enums import InboundState, OutboxState

    enums = {
        "accord_disputes": DisputeStage,
        "accord_intake_messages": InboundState,
        "accord_outbox_messages": OutboxState,
    }
    for gauge in GAUGES:
        values = {member.value for member in enums[gauge.name]}  # type: ignore[attr-defined]
        assert set(gauge.moving) < values, gauge.name
    assert {s.value for s in DisputeStage if s.is_open} == set(GAUGES[0].moving)
    alerts = (Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml").read_text()
    for gauge in GAUGES:
        for state in re.findall(rf'{gauge.name}\{{{gauge.label}="(\w+)"\}}', alerts):
            assert state in gauge.moving, (gauge.name, state)

    sessions = SessionFactory(make_engine(database_url))
    now = [1000.0]
    collector = BusinessMetrics(sessions, clock=lambda: now[0])

    def outbox(state: str, n: int) -> None:
        with sessions.begin() as session:
            for _ in range(n):
                key = f"k{next(keys)}"
                session.execute(
                    text(
                        "INSERT INTO outbox_message (key, dispute_number, template, recipient,"
                        " subject, text_body, html_body, message_id, state, attempts, created_at)"
                        " VALUES (:k, 'DSP-2026-000001', 't', 'a@b.example', 's', 'b', 'b', :k,"
                        " :state, 0, :at)"
                    ),
                    {"k": key, "state": state, "at": datetime.now(UTC)},
                )

    keys = iter(range(10_000))

    def scraped() -> dict[str, float]:
        families = {f.name: f for f in collector.collect()}
        return {s.labels["state"]: s.value for s in families["accord_outbox_messages"].samples}

    outbox("pending", 3)
    outbox("sent", 5)
    assert scraped() == {"pending": 3, "sent": 5}
    outbox("pending", 2)
    outbox("failed", 1)
    outbox("sent", 4)
    now[0] += SETTLED_EVERY - 1
    assert scraped() == {"pending": 5, "failed": 1, "sent": 5}  # sent: as counted before
    now[0] += 1
    assert scraped() == {"pending": 5, "failed": 1, "sent": 9}
    sessions.engine.dispose()
