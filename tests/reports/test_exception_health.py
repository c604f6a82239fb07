"""The board's exceptions in the channel-health view, on SQLite and PostgreSQL: requests of the
period by clause and state, hours from request to decision, the exceptions in force now, and
the same figures in the view's CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

from accord.channel.exceptions import end_of
from accord.platform.db import SessionFactory, make_engine
from accord.reports.exports import health_export
from accord.reports.health import channel_health
from models.enums import ExceptionState
from models.tables import ChannelException
from tests.conftest import seed

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
RoE_4_2 = "RoE 4.2 Exclusive territories are served only by their holder"
RoE_3_4 = "RoE 3.4 A named account is carved out for the partner it is named to"
A, D, E, W = (
    ExceptionState.APPROVED,
    ExceptionState.DENIED,
    ExceptionState.EXPIRED,
    ExceptionState.WITHDRAWN,
)


def _exceptions(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        for days_ago, clause, ref, state, hours, until in (
            (30, RoE_4_2, "DACH", A, 10.0, date(2026, 9, 30)),  # in force now
            (20, RoE_4_2, "NORDICS", D, 30.0, None),
            (40, RoE_3_4, "ACC-7", A, 50.0, date(2026, 7, 31)),  # in force now
            (60, RoE_3_4, "ACC-8", E, 70.0, date(2026, 6, 1)),  # ran out
            (10, RoE_3_4, "ACC-9", W, None, None),  # withdrawn: no decision
            (400, RoE_4_2, "BENELUX", E, 5.0, date(2025, 12, 31)),  # before the period
            (5, RoE_4_2, "IBERIA", ExceptionState.REQUESTED, None, None),
        ):
            requested = NOW - timedelta(days=days_ago)
            last = until or date(2026, 12, 31)
            session.add(
                ChannelException(
                    partner_id="adatum",
                    clause=clause,
                    scope_kind="account" if ref.startswith("ACC") else "territory",
                    scope_ref=ref,
                    affected_partner_ids=["litware"],
                    reason="Asked for a good reason, at length enough.",
                    requested_by="anja@adatum.example",
                    requested_at=requested,
                    until=last,
                    expires_at=end_of(last, "UTC"),
                    playbook_version="2026.2",
                    state=state,
                    decided_at=requested + timedelta(hours=hours) if hours else None,
                    decided_by="chair@vendor.example" if hours else None,
                    decision_reason="Decided." if hours else None,
                )
            )


def test_the_exceptions_of_the_period_and_those_in_force(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    _exceptions(sessions)
    with sessions.read() as session:
        report = channel_health(session, NOW - timedelta(days=90), NOW, NOW)
    found = report.exceptions
    assert found.requested == 6
    assert [(c.clause, c.state, c.count) for c in found.counts] == [
        ("RoE 3.4", A, 1),
        ("RoE 3.4", W, 1),
        ("RoE 3.4", E, 1),
        ("RoE 4.2", ExceptionState.REQUESTED, 1),
        ("RoE 4.2", A, 1),
        ("RoE 4.2", D, 1),
    ]
    # Decided: 10, 30, 50 and 70 hours from request (the one before the period not counted).
    assert (found.decided, found.median_hours_to_decision) == (4, 40.0)
    assert [(e.scope_ref, e.partner, e.clause, e.until) for e in found.in_force] == [
        ("ACC-7", "Adatum GmbH", "RoE 3.4", date(2026, 7, 31)),
        ("DACH", "Adatum GmbH", "RoE 4.2", date(2026, 9, 30)),
    ]
    rows = list(csv.DictReader(io.StringIO(health_export(report, "csv"))))
    assert {
        "section": "exceptions",
        "name": "requests",
        "measure": "median_hours_to_decision",
        "value": "40.0",
    } in rows
    assert {
        "section": "exceptions_by_clause",
        "name": "RoE 4.2",
        "measure": "denied",
        "value": "1",
    } in rows
    in_force = [r for r in rows if r["section"] == "exceptions_in_force"]
    assert [r["value"] for r in in_force] == ["2026-07-31", "2026-09-30"]
    body = json.loads(health_export(report, "json"))
    assert body["exceptions"]["in_force"][0]["number"].startswith("EXC-")
    # Another period: none requested in it; the exceptions in force are still today's.
    with sessions.read() as session:
        empty = channel_health(
            session, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC), NOW
        )
    assert (empty.exceptions.requested, empty.exceptions.median_hours_to_decision) == (0, None)
    assert len(empty.exceptions.in_force) == 2
    sessions.engine.dispose()
