"""The channel-health view (issue 20, item 6): overlap hotspots, alerts by kind and outcome over
time, time from detection to decision and the share of conflicts caught before a dispute was
filed, computed from conflict_alert and dispute on SQLite and PostgreSQL; the page with its SVG
charts, the CSV and JSON exports and the API, for compliance and admins only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from accord.platform.db import SessionFactory, make_engine
from accord.reports.health import channel_health
from models.enums import AlertKind, AlertState, DisputeCategory, DisputeStage
from models.tables import ConflictAlert, Dispute
from tests.conftest import Stack, seed
from tests.web.test_web_access import ADMIN, BOARD, COMPLIANCE, OUTSIDER
from tests.web_harness import Browser, api, make_app, signed_in, token_for

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
MEDIATOR = "maria.lopez@vendor.example"
SC, ET, DIRECT = (
    AlertKind.SAME_CUSTOMER,
    AlertKind.EXCLUSIVE_TERRITORY,
    AlertKind.DIRECT_ON_REGISTERED_ACCOUNT,
)
OPEN, DISMISSED, CONVERTED = AlertState.OPEN, AlertState.DISMISSED, AlertState.CONVERTED


def _snapshot(ref: str, partner: str, account: str | None, territory: str | None) -> dict[str, Any]:
    return {
        "object": f"registration:{ref}",
        "partner": partner,
        "customer": "Acme Corporation",
        "account": account,
        "territory": territory,
    }


def _alert(
    number: int,
    kind: AlertKind,
    partners: tuple[str, str],
    detected_at: datetime,
    state: AlertState,
    *,
    hours: float = 0,
    dispute: str | None = None,
    accounts: tuple[str | None, str | None] = (None, None),
    territory: str | None = None,
) -> ConflictAlert:
    objects = [
        _snapshot(f"DR-{number}a", partners[0], accounts[0], territory),
        _snapshot(f"DR-{number}b", partners[1], accounts[1], None),
    ]
    evidence: dict[str, Any] = {"objects": objects}
    if kind is ET:
        evidence = {
            "objects": objects[:1],
            "territory": {"code": territory, "exclusive_to": partners[0]},
        }
    return ConflictAlert(
        kind=kind,
        pair_key=f"registration:DR-{number}a|registration:DR-{number}b",
        partner_ids=sorted(partners),
        score=1.0,
        reasons=["test"],
        evidence=evidence,
        state=state,
        detected_at=detected_at,
        updated_at=detected_at,
        decided_by=None if state is OPEN else "ada.admin",
        decided_at=None if state is OPEN else detected_at + timedelta(hours=hours),
        dispute_number=dispute,
    )


def _dispute(number: str, category: DisputeCategory, filed_at: datetime) -> Dispute:
    return Dispute(
        number=number,
        category=category,
        claimant_id="northwind",
        respondent_ids=["contoso"],
        party_key="contoso|northwind",
        contested_objects=[],
        summary="A channel conflict",
        facts="Facts.",
        desired_remedy="x",
        amount_at_stake=Decimal(10),
        currency="USD",
        occurred_on=filed_at.date(),
        stage=DisputeStage.MEDIATION,
        playbook_version="2026.1",
        filed_by="nora@northwind.example",
        filed_at=filed_at,
        updated_at=filed_at,
    )


def history(sessions: SessionFactory, now: datetime) -> None:
    """Seven alerts detected in the 90 days before `now` (of each kind and state; two made into
    one dispute), two before them, and disputes filed from alerts and without one."""

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    with sessions.begin() as session:
        for d in (
            _dispute("DSP-2026-000001", DisputeCategory.DEAL_REGISTRATION, ago(80)),
            _dispute("DSP-2026-000002", DisputeCategory.TERRITORY, ago(39)),
            # From an alert detected before the period: counted neither way.
            _dispute("DSP-2026-000003", DisputeCategory.DEAL_REGISTRATION, ago(86)),
            # Filed without an alert: two of the kinds detection looks for, one it does not.
            _dispute("DSP-2026-000004", DisputeCategory.DEAL_REGISTRATION, ago(60)),
            _dispute("DSP-2026-000005", DisputeCategory.CHANNEL_VS_DIRECT, ago(20)),
            _dispute("DSP-2026-000006", DisputeCategory.PRICING, ago(18)),
            # Before the period.
            _dispute("DSP-2026-000007", DisputeCategory.TERRITORY, ago(121)),
        ):
            session.add(d)
        session.flush()
        for alert in (
            _alert(
                1,
                SC,
                ("northwind", "contoso"),
                ago(89),
                DISMISSED,
                hours=10,
                accounts=("ACME-001", "ACME-001"),
                territory="US-NY-METRO",
            ),
            _alert(
                2,
                SC,
                ("northwind", "contoso"),
                ago(81),
                CONVERTED,
                hours=30,
                dispute="DSP-2026-000001",
                accounts=("ACME-001", None),
            ),
            _alert(3, SC, ("fabrikam", "northwind"), ago(56), OPEN, accounts=("GLOBEX-7", None)),
            _alert(
                4,
                ET,
                ("adatum", "litware"),
                ago(41),
                CONVERTED,
                hours=50,
                dispute="DSP-2026-000002",
                territory="DE-BY",
            ),
            _alert(5, ET, ("adatum", "litware"), ago(5), OPEN, territory="DE-BY"),
            _alert(
                6,
                DIRECT,
                ("direct-sales", "northwind"),
                ago(29),
                DISMISSED,
                hours=2,
                accounts=(None, "ACME-001"),
            ),
            _alert(
                7,
                SC,
                ("litware", "adatum"),
                ago(41),
                CONVERTED,
                hours=70,
                dispute="DSP-2026-000002",
                accounts=("INITECH-3", None),
                territory="DE-BY",
            ),
            # Before the period: in no figure, though one led to a dispute filed in it.
            _alert(
                8,
                SC,
                ("northwind", "contoso"),
                ago(107),
                CONVERTED,
                hours=48,
                dispute="DSP-2026-000003",
                accounts=("ACME-001", "ACME-001"),
            ),
            _alert(9, ET, ("adatum", "litware"), ago(150), OPEN, territory="DE-BY"),
        ):
            session.add(alert)


def test_channel_health_figures(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    history(sessions, NOW)
    with sessions.read() as session:
        report = channel_health(session, NOW - timedelta(days=90), NOW, NOW)
    assert report.detected == 7
    assert [(k.kind, k.detected, k.open, k.dismissed, k.converted) for k in report.kinds] == [
        (SC, 4, 1, 1, 2),
        (ET, 2, 1, 0, 1),
        (DIRECT, 1, 0, 1, 0),
    ]
    # Two alerts made into DSP-2026-000002 are one conflict caught; 000003 came from an alert
    # detected before the period; 000006 is a pricing dispute, which no alert could catch.
    c = report.caught
    assert (c.converted, c.filed_without_alert, c.other_categories) == (2, 2, 1)
    assert c.share == 0.5
    # Waits of 2, 10, 30, 50 and 70 hours: the 90th percentile by nearest rank is 70 (62 by
    # linear interpolation).
    resolution = {r.kind: (r.decided, r.median_hours, r.p90_hours) for r in report.resolution}
    assert resolution == {
        None: (5, 30.0, 70.0),
        SC: (3, 30.0, 70.0),
        ET: (1, 50.0, 50.0),
        DIRECT: (1, 2.0, 2.0),
    }
    assert report.resolution[0].kind is None  # every kind together first
    # 84 days from the first detection to the last: per week, Monday to Sunday, empty ones too.
    assert report.unit == "week"
    assert [i.label for i in report.over_time] == [f"2026-W{w}" for w in range(14, 27)]
    assert [i.total for i in report.over_time] == [1, 1, 0, 0, 0, 1, 0, 2, 0, 1, 0, 0, 1]
    assert report.over_time[0].start == date(2026, 3, 30)
    week_21 = report.over_time[7]
    assert week_21.label == "2026-W21"
    assert week_21.counts[SC] == {OPEN: 0, DISMISSED: 0, CONVERTED: 1}
    assert week_21.counts[ET] == {OPEN: 0, DISMISSED: 0, CONVERTED: 1}
    assert week_21.by_state(CONVERTED) == 2 and week_21.by_kind(DIRECT) == 0
    # Hotspots: each alert once per code it names, most alerts first.
    assert [(h.name, h.alerts, h.open) for h in report.accounts] == [
        ("ACME-001", 3, 0),
        ("GLOBEX-7", 1, 1),
        ("INITECH-3", 1, 0),
    ]
    assert [(h.name, h.alerts, h.open) for h in report.territories] == [
        ("DE-BY", 3, 1),
        ("US-NY-METRO", 1, 0),
    ]
    assert [(h.key, h.name, h.alerts, h.open) for h in report.pairs] == [
        ("adatum|litware", "Adatum GmbH / Litware AG", 3, 1),
        ("contoso|northwind", "Contoso Systems / Northwind Traders", 2, 0),
        ("direct-sales|northwind", "Vendor Direct Sales / Northwind Traders", 1, 0),
        ("fabrikam|northwind", "Fabrikam Integration / Northwind Traders", 1, 1),
    ]
    # Open 14 days or more: alert 3 (56 days); alert 5 is 5 days old, alert 9 before the period.
    assert report.stale_total == 1
    [stale] = report.stale
    assert (stale.kind, stale.partners, stale.days_open) == (
        SC,
        "Fabrikam Integration / Northwind Traders",
        56,
    )
    rows = report.rows()
    assert {
        "section": "caught_before_filing",
        "name": "disputes",
        "measure": "share",
        "value": 0.5,
    } in rows
    assert {"section": "resolution", "name": "all", "measure": "p90_hours", "value": 70.0} in rows
    assert {
        "section": "per_week",
        "name": "2026-W21",
        "measure": "same_customer:converted",
        "value": 1,
    } in rows
    assert {
        "section": "hotspot_territory",
        "name": "DE-BY",
        "measure": "alerts",
        "value": 3,
    } in rows


def test_a_longer_period_counts_per_month_and_an_empty_one_holds_nothing(
    database_url: str,
) -> None:
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions)
    history(sessions, NOW)
    with sessions.read() as session:
        year = channel_health(session, NOW - timedelta(days=365), NOW, NOW)
        empty = channel_health(
            session, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC), NOW
        )
    assert year.detected == 9 and year.unit == "month"
    # From alert 9 (31 January) to alert 5 (25 June), February empty.
    assert [(i.label, i.total) for i in year.over_time] == [
        ("2026-01", 1),
        ("2026-02", 0),
        ("2026-03", 1),
        ("2026-04", 2),
        ("2026-05", 3),
        ("2026-06", 2),
    ]
    # Over the year, 000003 is caught (alert 8 is in it), and 000007 filed without an alert.
    assert (year.caught.converted, year.caught.filed_without_alert) == (3, 3)
    assert year.stale_total == 2  # alerts 3 and 9
    assert empty.detected == 0 and empty.kinds == [] and empty.over_time == []
    assert (empty.caught.converted, empty.caught.filed_without_alert) == (0, 0)
    assert empty.caught.share is None
    assert [(r.kind, r.decided, r.median_hours) for r in empty.resolution] == [(None, 0, None)]
    assert (empty.accounts, empty.territories, empty.pairs, empty.stale) == ([], [], [], [])
    assert empty.rows()[0] == {
        "section": "period",
        "name": "alerts",
        "measure": "detected",
        "value": 0,
    }


async def test_channel_health_page_charts_and_exports_for_compliance_and_admins(
    stack: Stack,
) -> None:
    history(stack.sessions, datetime.now(UTC))
    app = make_app(stack)
    compliance = await signed_in(app, COMPLIANCE)
    page = await compliance.get("/reports/channel-health")  # the last 90 days
    assert page.status_code == 200, page.text
    assert '<a href="/reports/channel-health">Channel health</a>' in page.text
    assert page.text.count("<svg") == 8
    for title in (
        "Alerts detected per week, by their outcome now",
        "Alerts detected per week, by kind",
        "Alerts of each kind by their outcome now",
        "Median hours from detection to decision",
        "Conflicts caught before a dispute was filed",
        "Alerts per account",
        "Alerts per territory",
        "Alerts per pair of partners",
    ):
        assert f"<title>{title}" in page.text, title
    assert "50% caught</text>" in page.text and "<strong>50%</strong>" in page.text
    assert "1 dispute of other categories" in page.text
    assert "Adatum GmbH / Litware AG" in page.text and "ACME-001" in page.text
    assert "still open after 14 days" in page.text
    exported = await compliance.get("/reports/channel-health.csv")
    assert exported.headers["content-disposition"] == 'attachment; filename="channel-health.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {
        "section": "caught_before_filing",
        "name": "disputes",
        "measure": "share",
        "value": "0.5",
    } in rows
    assert {
        "section": "kind",
        "name": "same_customer",
        "measure": "converted",
        "value": "2",
    } in rows
    body = (await compliance.get("/reports/channel-health.json")).json()
    assert body["detected"] == 7 and body["caught"]["share"] == 0.5
    assert body["pairs"][0]["name"] == "Adatum GmbH / Litware AG"
    # An earlier period holds nothing, and says so.
    empty = await compliance.get(
        "/reports/channel-health", params={"from": "2020-01-01", "to": "2020-01-31"}
    )
    assert empty.status_code == 200 and "<svg" not in empty.text
    assert "No alert was detected in the period." in empty.text
    admin = await signed_in(app, ADMIN)
    assert (await admin.get("/reports/channel-health")).status_code == 200
    async with api(app, token_for(stack, ADMIN)) as client:
        answer = await client.get("/api/reports/channel-health")
        assert answer.status_code == 200 and answer.json()["caught"]["converted"] == 2
        answer = await client.get("/api/reports/channel-health", params={"format": "csv"})
        assert "caught_before_filing,disputes,share,0.5" in answer.text
    for browser in (compliance, admin):
        await browser.close()


async def test_channel_health_is_refused_to_partners_mediators_and_the_board(
    stack: Stack,
) -> None:
    app = make_app(stack)
    for login in (OUTSIDER, MEDIATOR, BOARD):
        browser = await signed_in(app, login)
        assert '<a href="/reports/channel-health">' not in (await browser.get("/")).text
        for path in (
            "/reports/channel-health",
            "/reports/channel-health.csv",
            "/reports/channel-health.json",
        ):
            assert (await browser.get(path)).status_code == 403, (login, path)
        await browser.close()
        async with api(app, token_for(stack, login)) as client:
            assert (await client.get("/api/reports/channel-health")).status_code == 403, login
    anonymous = Browser(app)
    refused = await anonymous.get("/reports/channel-health.csv")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    await anonymous.close()
    async with api(app) as client:
        assert (await client.get("/api/reports/channel-health")).status_code == 401


async def test_hostile_periods_are_a_422_naming_the_field_never_a_500(stack: Stack) -> None:
    app = make_app(stack)
    compliance = await signed_in(app, COMPLIANCE)
    hostile = (
        ({"from": "2026-01-01\x00"}, "from"),
        ({"to": "\x00"}, "to"),
        ({"from": "99999-01-01"}, "from"),
        ({"to": "9" * 400}, "to"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "2026-06-01", "to": "2026-05-31"}, "to"),
    )
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        for params, field in hostile:
            for path in ("/reports/channel-health", "/reports/channel-health.csv"):
                answer = await compliance.get(path, params=params)
                assert answer.status_code == 422, (path, params, answer.status_code)
                assert field in answer.text, (path, params)
            answer = await client.get("/api/reports/channel-health", params=params)
            assert answer.status_code == 422, (params, answer.status_code)
            assert answer.json()["errors"][0]["field"] == field, answer.json()
        wide = {"from": "0001-01-01", "to": "9999-12-31"}
        assert (await client.get("/api/reports/channel-health", params=wide)).status_code == 200
        answer = await client.get("/api/reports/channel-health", params={"format": "xml"})
        assert answer.status_code == 422
    assert (await compliance.get("/reports/channel-health", params=wide)).status_code == 200
    assert (await compliance.get("/reports/channel-health.xml")).status_code == 404
    await compliance.close()
