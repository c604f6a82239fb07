"""Health, readiness and business metrics, shared by the web app and the worker.

Business metrics are read from the database when Prometheus scrapes, not counted in memory:
every process reports the same figures (scrape any one web process), a restart loses nothing,
and the audit trail they come from is append-only, so the totals only grow, as counters must.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError
from temporalio.client import Client

from accord.platform.db import SessionFactory
from accord.platform.schema import head_revision

COUNTED_ACTIONS = (
    "filed",
    "deadline_warning",
    "deadline_passed",
    "information_overdue",
    "deadline_fallback",
    "deadline_not_moved",
    "review_overdue",
    "remedy_overdue",
    "remedy_applied",
    "remedy_failed",
    "remedy_waived",
    "settled",
    "ruling_issued",
    "closed",
)
"""Audit-trail actions counted in accord_events_total: filings, SLA warnings and breaches,
deadlines the playbook's calendars could not give, remedies applied, failed or waived,
decisions."""
CHECK_TIMEOUT = 3.0


async def readiness(sessions: SessionFactory, client: Client | None) -> dict[str, str]:
    """Each dependency: "ok", or why it is not (no secrets, no connection strings)."""
    checks: dict[str, str] = {}
    try:
        checks["database"] = await asyncio.wait_for(
            asyncio.to_thread(_check_database, sessions), CHECK_TIMEOUT
        )
    except Exception as error:  # any failure means not ready; its kind is shown
        checks["database"] = f"unreachable ({type(error).__name__})"
    if client is None:
        checks["temporal"] = "not connected yet"
    else:
        try:
            healthy = await asyncio.wait_for(client.service_client.check_health(), CHECK_TIMEOUT)
            checks["temporal"] = "ok" if healthy else "not serving"
        except Exception as error:
            checks["temporal"] = f"unreachable ({type(error).__name__})"
    return checks


def _check_database(sessions: SessionFactory) -> str:
    """Reachable, and at the schema this code needs (a process of a newer release started
    before `accord migrate` ran is not ready)."""
    with sessions.read() as session:
        session.execute(text("SELECT 1")).scalar()
        try:
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            version = None
    needed = head_revision()
    if version != needed:
        return f"schema at {version or 'nothing'}, this release needs {needed}: run accord migrate"
    return "ok"


class BusinessMetrics(Collector):
    """Disputes by stage, audit events by action (SLA warnings and breaches, remedies, decisions),
    email intake by state, and mail waiting in the outbox."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Any]:
        with self.sessions.read() as session:
            events = dict(
                session.execute(
                    text(
                        "SELECT action, count(*) FROM dispute_event WHERE action IN :actions"
                        " GROUP BY action"
                    ).bindparams(bindparam("actions", expanding=True)),
                    {"actions": list(COUNTED_ACTIONS)},
                ).all()
            )
            gauges = [
                (name, doc, label, session.execute(text(sql)).all())
                for name, doc, label, sql in GAUGES
            ]
        for name, doc, label, rows in gauges:
            gauge = GaugeMetricFamily(name, doc, labels=[label])
            for value, count in rows:
                gauge.add_metric([_plain(value)], count)
            yield gauge
        counted = CounterMetricFamily(
            "accord_events",
            "Audit-trail entries by action: filings, SLA warnings (deadline_warning) and breaches"
            " (deadline_passed, *_overdue), remedies applied, failed or waived, decisions.",
            labels=["action"],
        )
        for action in COUNTED_ACTIONS:
            counted.add_metric([action], events.get(action, 0))
        yield counted


GAUGES = (
    (
        "accord_disputes",
        "Disputes in each stage now.",
        "stage",
        "SELECT stage, count(*) FROM dispute GROUP BY stage",
    ),
    (
        "accord_intake_messages",
        "Received emails by where they stand.",
        "state",
        "SELECT state, count(*) FROM inbound_message GROUP BY state",
    ),
    (
        "accord_outbox_messages",
        "Outgoing emails by state.",
        "state",
        "SELECT state, count(*) FROM outbox_message GROUP BY state",
    ),
)
"""Gauges counted by one column of one table: name, help, label, query."""


def _plain(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()
