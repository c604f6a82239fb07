"""Probe: the SLA report's backtest of the rules of engagement, on odd recorded content and on
many precedents (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from accord.channel.imports import import_file
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import PlaybookLibrary
from accord.reports.sla import sla_report
from models.enums import ChannelKind, DisputeCategory, ImportFormat, Role
from models.tables import DisputeEvent
from tests.conftest import seed
from tests.precedent_rows import add_precedent

TABLES = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.2")
HEADER = (
    "external_id,partner_id,customer_name,customer_domain,country,status,registered_at,modified_at"
)


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


def _registrations(sessions: SessionFactory) -> None:
    rows = [
        f"DR-1,northwind,Acme Corp,acme.com,US,approved,{_day(10)},{_day(10)}T10:00:00Z",
        f"DR-2,contoso,ACME Corporation,,US,submitted,{_day(5)},{_day(5)}T10:00:00Z",
    ]
    import_file(
        sessions,
        kind=ChannelKind.REGISTRATION,
        fmt=ImportFormat.CSV,
        file_name="registrations.csv",
        data="\n".join((HEADER, *rows)).encode() + b"\n",
        started_by="ada.admin",
    )


def _recommendation_entry(number: str, content: dict) -> DisputeEvent:  # type: ignore[type-arg]
    return DisputeEvent(
        dispute_number=number,
        seq=1,
        step=1,
        at=datetime.now(UTC),
        actor_id="accord",
        actor_role=Role.SYSTEM,
        action="recommendation",
        content=content,
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def test_one_precedent_with_malformed_recorded_facts_does_not_take_the_sla_report_down(
    database_url: str,
) -> None:
    """_recorded_facts validates each recorded `facts` with EngagementFacts (extra="forbid",
    literal sides) and lets the ValidationError out: one audit entry of another shape (a fact
    renamed or removed since, a side spelled otherwise) makes the whole SLA report (page, CSV,
    JSON, API) fail, not just that precedent's backtest."""
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    _registrations(sessions)
    acme = ({"kind": "deal_registration", "ref": "DR-2"},)
    with sessions.begin() as session:
        for number in ("DSP-2026-000301", "DSP-2026-000302"):
            add_precedent(
                session,
                number,
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome="deny",
                facts="Both registered Acme.",
                rationale="As the rules say.",
                objects=acme,
            )
        # A recorded reading of another shape: a fact this version does not know.
        session.add(
            _recommendation_entry(
                "DSP-2026-000302",
                {"facts": {"first_registrant": "respondent", "registered_via": "portal"}},
            )
        )
    now = datetime.now(UTC)
    try:
        with sessions.read() as session:
            report = sla_report(session, now - timedelta(days=1), None, now, TABLES)
        assert report.backtest is not None
        assert report.backtest.precedents == 2
    finally:
        sessions.engine.dispose()


def test_the_backtest_does_not_query_the_database_per_precedent(database_url: str) -> None:
    """Precedents whose dispute recorded no recommendation (every precedent decided before the
    tables existed) each have their facts read from the channel data one by one: the parties,
    then every statement of establish() (contested registrations, leads, accounts, the parties'
    registrations up to 5,000 rows, territories, opportunities, partners). The statements the
    SLA report runs grow with the number of precedents in the period: measured 7 statements a
    precedent (10 precedents: 78, 410: 2,878). With the parties holding 5,000 registrations
    (each establish() loads and fuzzy-compares up to MAX_REGISTRATIONS rows), 200 such
    precedents made the SLA report take 57 s on SQLite and 55 s on PostgreSQL."""
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    _registrations(sessions)
    acme = ({"kind": "deal_registration", "ref": "DR-2"},)

    def statements_for(precedents: int, offset: int) -> tuple[int, float]:
        with sessions.begin() as session:
            for n in range(precedents):
                add_precedent(
                    session,
                    f"DSP-2026-{offset + n:06d}",
                    category=DisputeCategory.DEAL_REGISTRATION,
                    outcome="deny",
                    facts="Both registered Acme.",
                    rationale="As the rules say.",
                    objects=acme,
                )
        count = 0

        def counted(*_args: object) -> None:
            nonlocal count
            count += 1

        event.listen(sessions.engine, "before_cursor_execute", counted)
        now = datetime.now(UTC)
        began = time.monotonic()
        try:
            with sessions.read() as session:
                report = sla_report(session, now - timedelta(days=1), None, now, TABLES)
        finally:
            event.remove(sessions.engine, "before_cursor_execute", counted)
        assert report.backtest is not None
        return count, time.monotonic() - began

    try:
        few, few_took = statements_for(10, 1000)
        many, many_took = statements_for(400, 2000)
        print(f"10 precedents: {few} statements, {few_took:.2f}s")
        print(f"410 precedents: {many} statements, {many_took:.2f}s")
        assert many - few < 50, (few, many)
    finally:
        sessions.engine.dispose()
