"""The SLA and channel-health report: figures computed from the read model and the precedents'
timelines, shown with server-side SVG charts, exported as CSV and JSON, for compliance only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from accord.platform.db import SessionFactory, make_engine
from accord.reports.sla import sla_report
from models.enums import DisputeCategory, DisputeStage, ObjectKind, PartnerTier
from models.tables import Dispute, DisputeObject, DisputeParty
from tests.conftest import Stack, seed
from tests.precedent_rows import add_precedent
from tests.web.test_web_access import COMPLIANCE, OUTSIDER
from tests.web_harness import api, make_app, signed_in, token_for

HOUR = 3600


def timeline(triage_h: int, mediation_h: int, breached: bool) -> tuple[dict[str, str], ...]:
    return (
        {"stage": "filed", "entered_at": "2026-01-01T00:00:00+00:00", "seconds": "0"},
        {"stage": "triage", "entered_at": "x", "seconds": str(triage_h * HOUR)},
        {"stage": "mediation", "entered_at": "x", "seconds": str(mediation_h * HOUR)},
        {"deadline": "acceptance", "result": "met"},
        {"deadline": "mediation", "result": "breached" if breached else "met"},
    )


def history(sessions: SessionFactory) -> None:
    """Three decided registration disputes over the same deal (Northwind against Contoso twice,
    Fabrikam once), a decided territory dispute, and one open dispute past its deadline."""
    with sessions.begin() as session:
        for i, (claimant, breached, remedy) in enumerate(
            (
                (("northwind", "Northwind Traders", PartnerTier.PLATINUM, "NA-East"), False, True),
                (("northwind", "Northwind Traders", PartnerTier.PLATINUM, "NA-East"), True, True),
                (("fabrikam", "Fabrikam Integration", PartnerTier.SILVER, "NA-West"), True, False),
            )
        ):
            number = f"DSP-2026-00010{i}"
            add_precedent(
                session,
                number,
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome="settled" if remedy else "denied",
                facts="Both registered the Acme opportunity.",
                rationale="First valid registration wins.",
                claimant=claimant,
                remedies=(
                    {
                        "kind": "mdf_credit",
                        "partner_id": claimant[0],
                        "amount": "500",
                        "currency": "USD",
                    },
                )
                if remedy
                else (),
                timeline=timeline(
                    triage_h=2 * (i + 1), mediation_h=10 * (i + 1), breached=breached
                ),
            )
            session.add(
                DisputeObject(dispute_number=number, kind=ObjectKind.DEAL_REGISTRATION, ref="DR-1")
            )
        add_precedent(
            session,
            "DSP-2026-000200",
            category=DisputeCategory.TERRITORY,
            outcome="upheld",
            facts="Sold into an exclusive territory.",
            rationale="Exclusive territories are served only by their holder.",
            claimant=("adatum", "Adatum GmbH", PartnerTier.GOLD, "DACH"),
            timeline=timeline(triage_h=1, mediation_h=5, breached=False),
        )
        now = datetime.now(UTC)
        session.add(
            Dispute(
                number="DSP-2026-000300",
                category=DisputeCategory.DEAL_REGISTRATION,
                claimant_id="northwind",
                respondent_ids=["contoso"],
                party_key="contoso|northwind",
                contested_objects=[],
                summary="Still open",
                facts="Open and late.",
                desired_remedy="x",
                amount_at_stake=Decimal(10),
                currency="USD",
                occurred_on=now.date(),
                stage=DisputeStage.MEDIATION,
                stage_deadline=now - timedelta(days=3),
                playbook_version="2026.1",
                filed_by="nora@northwind.example",
                filed_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.add(
            DisputeParty(dispute_number="DSP-2026-000300", partner_id="northwind", side="claimant")
        )
        session.add(
            DisputeParty(dispute_number="DSP-2026-000300", partner_id="contoso", side="respondent")
        )
        session.add(
            DisputeObject(
                dispute_number="DSP-2026-000300", kind=ObjectKind.DEAL_REGISTRATION, ref="DR-1"
            )
        )


def test_report_figures(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    history(sessions)
    now = datetime.now(UTC)
    with sessions.read() as session:
        report = sla_report(session, now - timedelta(days=1), None, now)
    assert (report.filed, report.decided) == (5, 4)
    stages = {s.stage: s for s in report.stages}
    assert stages["triage"].median_hours == 3.0  # 1, 2, 4, 6 hours
    assert stages["mediation"].median_hours == 15.0  # 5, 10, 20, 30
    assert (stages["mediation"].deadlines, stages["mediation"].breaches) == (4, 2)
    assert stages["mediation"].on_time_share == 0.5
    assert stages["triage"].on_time_share == 1.0
    [registration] = [g for g in report.categories if g.name == "deal_registration"]
    assert (registration.filed, registration.open) == (4, 1)
    assert registration.outcomes == {"settled": 2, "denied": 1}
    assert registration.remedies == {"mdf_credit": 2}
    assert {g.name: g.filed for g in report.regions} == {"NA-East": 3, "NA-West": 1, "DACH": 1}
    repeat = {r.name: r for r in report.repeat_parties}
    assert (
        repeat["Contoso Systems"].disputes == 5
        and repeat["Contoso Systems"].detail == "5 as respondent"
    )
    assert repeat["Northwind Traders"].detail == "3 as claimant"  # two decided, one open
    assert "Fabrikam Integration" not in repeat
    assert [(h.name, h.disputes) for h in report.hotspots] == [("deal registration DR-1", 4)]
    [late] = report.overdue_now
    assert late.name == "DSP-2026-000300" and "mediation deadline passed 3 days ago" in late.detail
    # An earlier period holds none of it.
    with sessions.read() as session:
        empty = sla_report(session, now - timedelta(days=30), now - timedelta(days=2), now)
    assert (empty.filed, empty.decided, empty.stages, empty.hotspots) == (0, 0, [], [])


async def test_report_page_charts_and_exports_for_compliance_only(stack: Stack) -> None:
    history(stack.sessions)
    app = make_app(stack)
    compliance = await signed_in(app, COMPLIANCE)
    page = await compliance.get("/reports/sla")
    assert page.status_code == 200
    assert page.text.count("<svg") >= 4 and "Deadlines met and breached per stage" in page.text
    assert "50% on time" in page.text and "deal registration DR-1" in page.text
    assert "DSP-2026-000300" in page.text  # overdue now
    # The tables in force are backtested; none of these precedents has facts they can read.
    assert "Rules of engagement, backtested" in page.text
    assert "the decision tables of playbook 2026.2 recommend nothing for any" in page.text
    exported = await compliance.get("/reports/sla.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {"section": "stage", "name": "mediation", "measure": "breaches", "value": "2"} in rows
    assert exported.headers["content-disposition"] == 'attachment; filename="sla-report.csv"'
    bad = await compliance.get("/reports/sla", params={"from": "not-a-date"})
    assert bad.status_code == 422 and "from" in bad.text
    partner = await signed_in(app, OUTSIDER)
    assert (await partner.get("/reports/sla")).status_code == 403
    assert (await partner.get("/reports/sla.json")).status_code == 403
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        body = (await client.get("/api/reports/sla", params={"format": "json"})).json()
        assert body["filed"] == 5 and body["hotspots"][0]["name"] == "deal registration DR-1"
        assert body["backtest"]["playbook_version"] == "2026.2"
    async with api(app, token_for(stack, OUTSIDER)) as client:
        assert (await client.get("/api/reports/sla")).status_code == 403
    for browser in (compliance, partner):
        await browser.close()
