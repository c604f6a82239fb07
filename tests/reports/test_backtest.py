"""The rules of engagement backtested on the SLA report (issue 20, item 4): today's decision
tables on each precedent's facts, the agreement rate, per deciding clause and where they
disagreed; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accord.channel.imports import import_file
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import PlaybookLibrary
from accord.reports.sla import sla_report
from models.enums import ChannelKind, DisputeCategory, ImportFormat, Role
from models.tables import DisputeEvent
from tests.conftest import seed
from tests.precedent_rows import add_precedent

LIBRARY = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks")
HEADER = (
    "external_id,partner_id,customer_name,customer_domain,country,status,registered_at,modified_at"
)
SPLIT = {
    "kind": "commission_split",
    "deal_ref": "DR-1",
    "shares": {"northwind": "70", "contoso": "30"},
}


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


def _history(sessions: SessionFactory) -> None:
    """Northwind registered Acme before Contoso. Four precedents between them on Acme: upheld
    with a split (as the tables say), denied (against them), settled on nothing the channel data
    knows, withdrawn; and one whose dispute recorded other facts (Contoso first) and was denied."""
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
    acme = ({"kind": "deal_registration", "ref": "DR-2"},)
    with sessions.begin() as session:
        for number, outcome, remedies, objects in (
            ("DSP-2026-000201", "uphold", (SPLIT,), acme),
            ("DSP-2026-000202", "deny", (), acme),
            ("DSP-2026-000203", "settled", (SPLIT,), ()),
            ("DSP-2026-000204", "withdrawn", (), acme),
            ("DSP-2026-000205", "deny", (), acme),
        ):
            add_precedent(
                session,
                number,
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome=outcome,
                facts="Both registered the Acme opportunity.",
                rationale="As the rules say.",
                remedies=remedies,
                objects=objects,
            )
        session.add(
            DisputeEvent(
                dispute_number="DSP-2026-000205",
                seq=1,
                step=1,
                at=datetime.now(UTC),
                actor_id="accord",
                actor_role=Role.SYSTEM,
                action="recommendation",
                content={
                    "outcome": "deny",
                    "facts": {"first_registrant": "respondent", "within_protection": True},
                },
                prev_hash="0" * 64,
                hash="1" * 64,
            )
        )


def test_the_tables_are_backtested_on_the_period_s_precedents(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    _history(sessions)
    now = datetime.now(UTC)
    with sessions.read() as session:
        report = sla_report(session, now - timedelta(days=1), None, now, LIBRARY.get("2026.2"))
    b = report.backtest
    assert b is not None and b.playbook_version == "2026.2"
    assert (b.precedents, b.recommended, b.agreed, b.recorded_facts) == (4, 3, 2, 1)
    assert b.agreement_rate == 2 / 3
    assert b.by_clause == {"RoE 3.1": (3, 2)}
    (against,) = b.disagreements
    assert against.number == "DSP-2026-000202" and against.decided == "deny"
    assert against.recommended == "uphold with commission_split"
    assert against.why.startswith("outcome: the rules of engagement recommend uphold (RoE 3.1)")
    rows = [r for r in report.rows() if r["section"] == "backtest"]
    assert {r["measure"]: r["value"] for r in rows}["agreement_rate"] == 2 / 3

    # A playbook without tables has nothing to backtest; an earlier period has no precedents.
    with sessions.read() as session:
        old = sla_report(session, now - timedelta(days=1), None, now, LIBRARY.get("2026.1"))
        earlier = sla_report(
            session, now - timedelta(days=30), now - timedelta(days=2), now, LIBRARY.get("2026.2")
        )
    assert old.backtest is not None and old.backtest.playbook_version is None
    assert not [r for r in old.rows() if r["section"].startswith("backtest")]
    assert earlier.backtest is not None
    assert (earlier.backtest.precedents, earlier.backtest.agreement_rate) == (0, None)
    sessions.engine.dispose()
