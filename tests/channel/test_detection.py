"""Overlap detection after imports (issue 20, item 2) on SQLite and PostgreSQL: each kind
found, one alert per pair however often it is found, a dismissed alert never raised again, and
two dismissals at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from accord.channel import alerts
from accord.channel.alerts import AlertRefused, Dismissal
from accord.channel.imports import import_file
from accord.disputes.conversion import STALE_CLAIM, Conversion, _claim, _give_back, submission
from accord.platform.db import SessionFactory
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import PlaybookLibrary
from models.enums import AlertKind, AlertState, ChannelKind, ImportFormat, Role
from models.payloads import Actor
from models.tables import ConflictAlert
from tests.channel.test_imports import _import

HEADER = "external_id,partner_id,customer_name,customer_domain,country,territory_code,status,registered_at,expires_at,modified_at"


def registrations(*lines: str) -> str:
    return "\n".join((HEADER, *lines)) + "\n"


NORTHWIND = "DR-1,northwind,ACME Corp.,acme.com,US,,approved,2026-11-02,,2026-11-02T10:00:00Z"
CONTOSO = "DR-2,contoso,Acme Corporation,,US,,submitted,2026-11-03,,2026-11-03T10:00:00Z"


def _alerts(sessions: SessionFactory) -> list[ConflictAlert]:
    with sessions.read() as session:
        return list(session.exec(select(ConflictAlert).order_by(col(ConflictAlert.id))))


def test_one_customer_registered_by_two_partners_raises_one_alert_with_its_evidence(
    sessions: SessionFactory,
) -> None:
    done = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, CONTOSO)
    )
    assert done.alerts_raised == 1
    (alert,) = _alerts(sessions)
    assert alert.kind is AlertKind.SAME_CUSTOMER and alert.state is AlertState.OPEN
    assert alert.pair_key == "registration:DR-1|registration:DR-2"
    assert alert.partner_ids == ["contoso", "northwind"]
    assert alert.score >= 0.85 and alert.reasons
    first, second = alert.evidence["objects"]
    assert (first["partner"], first["customer"], first["registered_at"]) == (
        "northwind",
        "ACME Corp.",
        "2026-11-02T00:00:00+00:00",
    )
    assert second["status"] == "submitted"
    assert alert.import_id == done.id


def test_found_again_an_open_alert_is_brought_up_to_date_and_a_dismissed_one_stays(
    sessions: SessionFactory,
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, CONTOSO))
    again = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, CONTOSO)
    )
    assert (again.unchanged, again.alerts_raised) == (2, 0)
    later = CONTOSO.replace("2026-11-03T10:00:00Z", "2026-11-04T10:00:00Z").replace(
        "submitted", "approved"
    )
    refreshed = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, later)
    )
    assert (refreshed.alerts_raised, refreshed.alerts_refreshed) == (0, 1)
    (alert,) = _alerts(sessions)
    assert alert.evidence["objects"][1]["status"] == "approved"
    assert alert.id is not None
    alerts.dismiss(
        sessions,
        alert.id,
        by="ada.admin",
        dismissal=Dismissal(reason="Different divisions of Acme; agreed in the QBR"),
        now=datetime.now(UTC),
    )
    latest = later.replace("2026-11-04T10:00:00Z", "2026-11-05T10:00:00Z")
    after = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, latest)
    )
    assert (after.alerts_raised, after.alerts_refreshed) == (0, 0)
    (still,) = _alerts(sessions)
    assert still.state is AlertState.DISMISSED and still.decided_by == "ada.admin"
    assert still.evidence["objects"][1]["modified_at"] == "2026-11-04T10:00:00+00:00"  # as decided


def test_a_registration_in_another_partner_s_exclusive_territory_raises_an_alert(
    sessions: SessionFactory,
) -> None:
    lines = [
        "DR-3,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02",  # by country
        "DR-4,northwind,Initech,initech.at,,DACH,approved,2026-11-02,,2026-11-02",  # by code
        "DR-5,contoso,Umbrella,umbrella.de,DE,,approved,2026-11-02,,2026-11-02",  # its own
        "DR-6,northwind,Hooli,hooli.ch,CH,,rejected,2026-11-02,,2026-11-02",  # not live
        "DR-7,northwind,Vandelay,vandelay.de,DE,,approved,2026-10-01,2026-11-01,2026-11-02",  # expired
    ]
    done = _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(*lines))
    found = {a.pair_key: a for a in _alerts(sessions)}
    assert set(found) == {"registration:DR-3|territory:DACH", "registration:DR-4|territory:DACH"}
    assert done.alerts_raised == 2
    by_country = found["registration:DR-3|territory:DACH"]
    assert by_country.kind is AlertKind.EXCLUSIVE_TERRITORY
    assert (
        "its country DE is in it" in by_country.reasons[0]
        and "exclusive to contoso" in by_country.reasons[0]
    )
    assert by_country.evidence["territory"]["exclusive_to"] == "contoso"


def test_direct_sales_on_a_partner_s_registered_customer_is_its_own_kind(
    sessions: SessionFactory,
) -> None:
    direct = "DR-8,direct,Acme Inc,acme.com,US,,submitted,2026-11-04,,2026-11-04"
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, direct))
    (alert,) = _alerts(sessions)
    assert alert.kind is AlertKind.DIRECT_ON_REGISTERED_ACCOUNT
    assert alert.reasons[0] == "direct sales pursues what northwind registered"


def test_the_queue_filters_and_a_second_dismissal_is_told_the_first(
    sessions: SessionFactory,
) -> None:
    lines = [
        NORTHWIND,
        CONTOSO,
        "DR-3,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02",
    ]
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(*lines))
    with sessions.read() as session:
        every, total = alerts.listed(session)
        territory, _ = alerts.listed(session, kind=AlertKind.EXCLUSIVE_TERRITORY)
        contoso, _ = alerts.listed(session, partner_id="contoso")
        nobody, _ = alerts.listed(session, partner_id="fabrikam")
    assert total == 2 and [a.kind for a in territory] == [AlertKind.EXCLUSIVE_TERRITORY]
    assert len(contoso) == 2 and nobody == []
    target = every[0].id
    assert target is not None
    outcomes: list[Any] = []
    start = threading.Barrier(2)

    def one(who: str) -> None:
        start.wait()
        try:
            outcomes.append(
                alerts.dismiss(
                    sessions,
                    target,
                    by=who,
                    dismissal=Dismissal(reason=f"{who} says no conflict"),
                    now=datetime.now(UTC),
                )
            )
        except AlertRefused as refused:
            outcomes.append(str(refused))

    threads = [threading.Thread(target=one, args=(who,)) for who in ("ada.admin", "alex.admin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [o for o in outcomes if isinstance(o, str)]
    assert len(refused) == 1 and "dismissed already" in refused[0], outcomes
    with sessions.read() as session:
        open_ones, _ = alerts.listed(session)
        dismissed, _ = alerts.listed(session, state=AlertState.DISMISSED)
    assert len(open_ones) == 1 and len(dismissed) == 1


@pytest.mark.parametrize("reason", ["", "no", "\x00bad reason", "x" * 2001])
def test_a_dismissal_without_a_fit_reason_is_refused(reason: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Dismissal(reason=reason)


GLOBEX_1 = (
    "B-3,northwind,Globex Industries,globex.com,US,,approved,2026-11-02,,2026-11-02T10:00:00Z"
)
GLOBEX_2 = (
    "B-4,contoso,Globex Industries Inc,globex.com,US,,submitted,2026-11-03,,2026-11-03T10:00:00Z"
)


def _later(line: str) -> str:
    return line.replace("T10:00:00Z", "T11:00:00Z").replace("submitted", "approved")


def test_each_alert_found_again_gets_its_own_pair_s_evidence(sessions: SessionFactory) -> None:
    """Adversarial probe: refreshing open alerts wrote the last alert read back (another
    pair's) instead of the one found, so one alert showed Globex's evidence under Acme's pair,
    and an open alert beside a dismissed one was never brought up to date."""
    lines = (NORTHWIND, CONTOSO, GLOBEX_1, GLOBEX_2)
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(*lines))
    again = _import(
        sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(*map(_later, lines))
    )
    assert (again.alerts_raised, again.alerts_refreshed) == (0, 2)
    for alert in _alerts(sessions):
        shown = [o["object"] for o in alert.evidence["objects"]]
        assert shown == alert.pair_key.split("|"), (alert.pair_key, shown, alert.reasons)
        assert all(o["status"] == "approved" for o in alert.evidence["objects"])
    globex = next(a for a in _alerts(sessions) if "B-3" in a.pair_key)
    assert globex.id is not None
    alerts.dismiss(
        sessions,
        globex.id,
        by="ada.admin",
        dismissal=Dismissal(reason="one group"),
        now=datetime.now(UTC),
    )
    latest = [line.replace("T10:00:00Z", "T12:00:00Z") for line in lines]
    latest[1] = latest[1].replace("Acme Corporation", "Acme Corporation Ltd")
    third = _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(*latest))
    assert (third.alerts_raised, third.alerts_refreshed) == (0, 1)
    acme = next(a for a in _alerts(sessions) if "DR-1" in a.pair_key)
    assert acme.evidence["objects"][1]["customer"] == "Acme Corporation Ltd"


def test_an_alert_is_claimed_for_a_dispute_once_on_both_databases(sessions: SessionFactory) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND, CONTOSO))
    (alert,) = _alerts(sessions)
    assert alert.id is not None
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    ada, alex = Actor(id="ada.admin", role=Role.ADMIN), Actor(id="alex.admin", role=Role.ADMIN)
    _claim(sessions, alert.id, ada, now)
    with pytest.raises(AlertRefused, match=r"being made a dispute by ada\.admin right now"):
        _claim(sessions, alert.id, alex, now)
    with pytest.raises(AlertRefused, match="converted already"):
        alerts.dismiss(
            sessions, alert.id, by="alex.admin", dismissal=Dismissal(reason="not one"), now=now
        )
    _claim(sessions, alert.id, ada, now)  # the same manager again: finishes its own
    _claim(sessions, alert.id, alex, now + STALE_CLAIM + timedelta(seconds=1))
    _give_back(sessions, alert.id, alex, now, "the filing was refused")
    (back,) = _alerts(sessions)
    assert back.state is AlertState.OPEN and back.decided_by is None
    with sessions.read() as session:
        trail = [(e.actor, e.action) for e in alerts.history(session, alert.id)]
    assert trail == [
        ("ada.admin", "claimed"),
        ("ada.admin", "claimed"),
        ("alex.admin", "claimed"),
        ("alex.admin", "given_back"),
    ]


ADA = Actor(id="ada.admin", role=Role.ADMIN)
ENGAGEMENT = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.2").engagement
PRICED = (
    "external_id,partner_id,customer_name,customer_domain,country,status,registered_at,"
    "modified_at,discount"
)


def test_a_discount_beyond_the_partner_s_band_raises_an_alert(sessions: SessionFactory) -> None:
    rows = [
        "DR-7,contoso,Globex Industries,globex.com,US,approved,2026-11-02,2026-11-02T10:00:00Z,35",
        "DR-8,northwind,Initech,initech.com,US,approved,2026-11-02,2026-11-02T10:00:00Z,30",
    ]
    done = import_file(
        sessions,
        kind=ChannelKind.REGISTRATION,
        fmt=ImportFormat.CSV,
        file_name="priced.csv",
        data="\n".join((PRICED, *rows)).encode() + b"\n",
        started_by="ada",
        engagement=ENGAGEMENT,
    )
    assert done.alerts_raised == 1  # both are gold (band 30%): only DR-7 is beyond it
    (alert,) = _alerts(sessions)
    assert alert.kind is AlertKind.PRICE_OUTSIDE_BAND and alert.partner_ids == ["contoso"]
    assert alert.reasons == [
        "registration:DR-7 by contoso (gold) gives 35% off list, beyond the gold band of 30%"
    ]
    assert alert.evidence["band"] == {"tier": "gold", "max_discount": "30"}
    # Without the rules (an import that was not given them), no pricing alert is raised.
    assert (
        _import(
            sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND)
        ).alerts_raised
        == 0
    )
    # Made a dispute: filed by the partner it harmed, against contoso, under pricing.
    filed = submission(alert, Conversion(claimant_id="northwind"), ADA, "ada@vendor.example")
    assert (filed.category.value, filed.respondent_ids) == ("pricing", ["contoso"])
    with pytest.raises(AlertRefused, match="the partner the alert is about"):
        submission(alert, Conversion(claimant_id="contoso"), ADA, "ada@vendor.example")


def test_a_lead_routed_against_the_rules_raises_an_alert_once(sessions: SessionFactory) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND))
    leads = (
        "external_id,partner_id,customer_name,country,status,routed_at,modified_at\n"
        "L-1,contoso,ACME Corporation,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
        "L-2,northwind,ACME Corp,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
        "L-3,,ACME Corp,US,new,,2026-11-10T10:00:00Z\n"
    )
    for _ in range(2):
        done = import_file(
            sessions,
            kind=ChannelKind.LEAD,
            fmt=ImportFormat.CSV,
            file_name="leads.csv",
            data=leads.encode(),
            started_by="ada",
            engagement=ENGAGEMENT,
        )
    alert = next(a for a in _alerts(sessions) if a.kind is AlertKind.LEAD_AGAINST_ROUTING)
    assert [a.kind for a in _alerts(sessions)].count(AlertKind.LEAD_AGAINST_ROUTING) == 1
    assert alert.partner_ids == ["contoso", "northwind"]
    assert alert.reasons == [
        "lead L-1 went to contoso; the routing rules send it to northwind: it registered the "
        "customer (DR-1)"
    ]
    assert done.unchanged == 3  # the second import changed nothing, and raised nothing
    filed = submission(alert, Conversion(claimant_id="northwind"), ADA, "ada@vendor.example")
    assert filed.category.value == "lead_routing"
    assert [(o.kind.value, o.ref) for o in filed.contested_objects] == [("lead", "L-1")]


def _leads_then(sessions: SessionFactory, kind: ChannelKind, data: str) -> Any:
    """Leads routed to contoso imported first (nothing sends them to contoso: the vendor should
    have kept them), then `data` of `kind`, which sends one to northwind: its import looks at
    those leads again."""
    leads = (
        "external_id,partner_id,customer_name,customer_domain,country,status,routed_at,modified_at\n"
        "L-1,contoso,ACME Corporation,acme.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
        "L-2,contoso,Globex,globex.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
    )
    first = import_file(
        sessions,
        kind=ChannelKind.LEAD,
        fmt=ImportFormat.CSV,
        file_name="leads.csv",
        data=leads.encode(),
        started_by="ada",
        engagement=ENGAGEMENT,
    )
    assert first.alerts_raised == 2
    assert {a.pair_key for a in _alerts(sessions)} == {
        "lead:L-1|route:vendor",
        "lead:L-2|route:vendor",
    }
    return import_file(
        sessions,
        kind=kind,
        fmt=ImportFormat.CSV,
        file_name="later.csv",
        data=data.encode(),
        started_by="ada",
        engagement=ENGAGEMENT,
    )


def test_a_registration_imported_after_the_leads_it_should_have_routed_raises_the_alert(
    sessions: SessionFactory,
) -> None:
    # Northwind registered Acme on 2 November; the CRM export carrying it came after the leads.
    done = _leads_then(sessions, ChannelKind.REGISTRATION, registrations(NORTHWIND))
    keys = {a.pair_key for a in _alerts(sessions) if a.kind is AlertKind.LEAD_AGAINST_ROUTING}
    assert "lead:L-1|route:northwind" in keys and "lead:L-2|route:northwind" not in keys, keys
    assert done.alerts_raised == 1


def test_an_account_named_after_the_leads_were_routed_raises_the_alert(
    sessions: SessionFactory,
) -> None:
    accounts = (
        "external_id,name,partner_id,domain,country,modified_at\n"
        "GLOBEX-1,Globex,northwind,globex.com,US,2026-11-01T10:00:00Z\n"
    )
    _leads_then(sessions, ChannelKind.ACCOUNT, accounts)
    keys = {a.pair_key for a in _alerts(sessions) if a.kind is AlertKind.LEAD_AGAINST_ROUTING}
    assert "lead:L-2|route:northwind" in keys and "lead:L-1|route:northwind" not in keys, keys
