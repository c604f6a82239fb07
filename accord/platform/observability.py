"""Health, readiness and business metrics, shared by the web app and the worker.

Business metrics are read from the database when Prometheus scrapes, not counted in memory:
every process reports the same figures (scrape any one web process), a restart loses nothing,
and the audit trail they come from is append-only, so the totals only grow, as counters must.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from temporalio.client import Client

from accord.platform.db import SessionFactory
from accord.platform.schema import head_revision, known_revision
from models.enums import DisputeStage, InboundState, OutboxState

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
    """Reachable, and at a schema this code works on: the one its release migrates to, or a
    later release's that still serves it (the expand half of a rolling upgrade). A process of a
    newer release started before `accord migrate` ran is not ready, nor one whose release a
    later migration stopped serving."""
    with sessions.read() as session:
        session.execute(text("SELECT 1")).scalar()
        try:
            versions = list(
                session.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
        except DBAPIError:
            session.rollback()
            versions = []
        if len(versions) > 1:
            return f"alembic_version holds {len(versions)} revisions, not one: {sorted(versions)}"
        version = versions[0] if versions else None
        needed = head_revision()
        if version == needed:
            return "ok"
        if version is None or known_revision(version):
            return (
                f"schema at {version or 'nothing'}, this release needs {needed}: run accord migrate"
            )
        try:
            served = set(
                session.execute(text("SELECT revision FROM schema_release")).scalars().all()
            )
        except DBAPIError:
            served = set()
    # The schema lists its own revision among those it serves: a revision it does not list is
    # not what migrations left there.
    if needed in served and version in served:
        return "ok"
    return (
        f"schema at {version}, a later release's that no longer serves this one ({needed}):"
        " upgrade this process"
    )


TAIL_ROWS = 10_000
"""How many of the newest audit entries are counted afresh on every scrape. The trail is
append-only, so older entries are counted once per process and kept; the newest are counted
again because one may still be committing under an id below a newer entry's (PostgreSQL gives
ids at insert, not at commit). An entry whose transaction stays open while 10,000 later ones
commit would be left out of the metric (never out of the trail)."""


NO_LIMIT = 2**62
"""An id above every id (the column is a 64-bit integer)."""


class EventTally:
    """accord_events_total's counts, read incrementally: on a trail of 2 M entries, a count of
    the whole of it cost about 2 s of database time on every scrape."""

    def __init__(self) -> None:
        self.settled: Counter[str] = Counter()
        self.watermark = 0
        """Entries with an id up to this are in `settled`."""
        self.newest = 0
        self._mark: str | None = None
        """The hash of the entry at the watermark, when counted: a restore from an older backup
        (or another database) puts different entries, or none, at that id."""
        self._lock = threading.Lock()

    def counts(self, session: Session) -> Counter[str]:
        with self._lock:
            if self.watermark and self._hash_at(session, self.watermark) != self._mark:
                # Entries counted are gone, and new ones may take their ids: count anew.
                self.settled, self.watermark, self._mark = Counter(), 0, None
            self.newest = int(
                session.execute(text("SELECT max(id) FROM dispute_event")).scalar() or 0
            )
            # The newest entry at least TAIL_ROWS ids back (an entry, not a gap in the ids, so
            # that its hash can show a restore).
            boundary = int(
                session.execute(
                    text("SELECT max(id) FROM dispute_event WHERE id <= :limit"),
                    {"limit": self.newest - TAIL_ROWS},
                ).scalar()
                or 0
            )
            if boundary > self.watermark:
                self.settled += self._count(session, self.watermark, boundary)
                self.watermark = boundary
                self._mark = self._hash_at(session, boundary)
            return self.settled + self._count(session, self.watermark, None)

    @staticmethod
    def _hash_at(session: Session, entry_id: int) -> str | None:
        found = session.execute(
            text("SELECT hash FROM dispute_event WHERE id = :id"), {"id": entry_id}
        ).scalar()
        return None if found is None else str(found)

    @staticmethod
    def _count(session: Session, after: int, up_to: int | None) -> Counter[str]:
        rows = session.execute(
            text(
                "SELECT action, count(*) FROM dispute_event"
                " WHERE id > :after AND id <= :up_to AND action IN :actions GROUP BY action"
            ).bindparams(bindparam("actions", expanding=True)),
            {
                "after": after,
                "up_to": NO_LIMIT if up_to is None else up_to,
                "actions": list(COUNTED_ACTIONS),
            },
        ).all()
        return Counter({str(action): int(count) for action, count in rows})


class BusinessMetrics(Collector):
    """Disputes by stage, audit events by action (SLA warnings and breaches, remedies, decisions),
    email intake by state, and mail waiting in the outbox."""

    def __init__(
        self, sessions: SessionFactory, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sessions = sessions
        self.tally = EventTally()
        self.gauges = GaugeCounts(clock)

    def collect(self) -> Iterator[Any]:
        with self.sessions.read() as session:
            events = self.tally.counts(session)
            by_gauge = [(gauge, self.gauges.rows(session, gauge)) for gauge in GAUGES]
        for gauge, rows in by_gauge:
            family = GaugeMetricFamily(gauge.name, gauge.doc, labels=[gauge.label])
            for value, count in rows:
                family.add_metric([_plain(value)], count)
            yield family
        counted = CounterMetricFamily(
            "accord_events",
            "Audit-trail entries by action: filings, SLA warnings (deadline_warning) and breaches"
            " (deadline_passed, *_overdue), remedies applied, failed or waived, decisions.",
            labels=["action"],
        )
        for action in COUNTED_ACTIONS:
            counted.add_metric([action], events.get(action, 0))
        yield counted


@dataclass(frozen=True)
class Gauge:
    """Rows of one table by one column. The values still moving (a backlog alerts watch: mail
    pending or failed, intake held, disputes open) are counted on every scrape, from the
    column's index, in time that grows with the backlog alone. The values rows end in (mail
    sent, disputes closed: millions, in time) are counted at most every SETTLED_EVERY seconds
    by each process: at 2,000,000 outbox rows that count took about 105 ms of database time
    on PostgreSQL, every scrape."""

    name: str
    doc: str
    label: str
    table: str
    column: str
    moving: tuple[str, ...]


GAUGES = (
    Gauge(
        "accord_disputes",
        "Disputes in each stage now (the closed stages' counts at most 5 minutes old).",
        "stage",
        "dispute",
        "stage",
        tuple(stage.value for stage in DisputeStage if stage.is_open),
    ),
    Gauge(
        "accord_intake_messages",
        "Received emails by where they stand (the finished ones' counts at most 5 minutes old).",
        "state",
        "inbound_message",
        "state",
        (InboundState.RECEIVED, InboundState.QUARANTINED, InboundState.FAILED),
    ),
    Gauge(
        "accord_outbox_messages",
        "Outgoing emails by state (sent and dismissed: counts at most 5 minutes old).",
        "state",
        "outbox_message",
        "state",
        (OutboxState.PENDING, OutboxState.FAILED),
    ),
)
SETTLED_EVERY = 300.0
"""Seconds between two counts of the values rows end in."""


class GaugeCounts:
    """One process's counts of GAUGES: the moving values afresh, the settled ones cached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._settled: dict[str, tuple[float, list[tuple[Any, int]]]] = {}
        self._lock = threading.Lock()

    def rows(self, session: Session, gauge: Gauge) -> list[tuple[Any, int]]:
        moving = _counts(session, gauge, "IN")
        with self._lock:
            counted_at, settled = self._settled.get(gauge.name, (None, []))
            if counted_at is None or self.clock() - counted_at >= SETTLED_EVERY:
                settled = _counts(session, gauge, "NOT IN")
                self._settled[gauge.name] = (self.clock(), settled)
        return moving + settled


def _counts(session: Session, gauge: Gauge, among: str) -> list[tuple[Any, int]]:
    """The gauge's rows by value, of the values IN or NOT IN its moving ones."""
    # The names are GAUGES' own constants, never input.
    rows = session.execute(
        text(
            f"SELECT {gauge.column}, count(*) FROM {gauge.table}"  # noqa: S608
            f" WHERE {gauge.column} {among} :values GROUP BY {gauge.column}"
        ).bindparams(bindparam("values", expanding=True)),
        {"values": list(gauge.moving)},
    ).all()
    return [(value, count) for value, count in rows]


def _plain(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()
