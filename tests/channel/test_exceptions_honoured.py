"""Approved exceptions to the rules of engagement, honoured (issue 20, item 5): the
`exception` fact RoE 2.1's table reads, and the overlaps detection no longer raises while one is
in force, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from accord.channel.exceptions import end_of
from accord.channel.facts import ChannelReader, establish
from accord.channel.imports import import_file
from accord.platform.db import SessionFactory
from accord.playbooks.engagement import recommend
from models.enums import (
    AlertKind,
    ChannelKind,
    DisputeCategory,
    ExceptionState,
    ImportFormat,
    ObjectKind,
    VoteOutcome,
)
from models.payloads.engagement import EngagementFacts, Recommendation
from models.tables import Account, ChannelException, ChannelImport
from tests.channel.test_detection import ENGAGEMENT, _alerts, _later, registrations
from tests.channel.test_engagement import TABLES, _request
from tests.channel.test_imports import _import

TERRITORY = DisputeCategory.TERRITORY
RoE_4_2 = "RoE 4.2 Exclusive territories are served only by their holder"
RoE_3_4 = "RoE 3.4 A named account is carved out for the partner it is named to"
BAYER = "DR-9,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
"""northwind's registration of a customer in DACH, contoso's exclusive territory."""


def _exception(
    session: Session,
    partner_id: str,
    *,
    clause: str = RoE_4_2,
    scope: tuple[str, str] = ("territory", "DACH"),
    state: ExceptionState = ExceptionState.APPROVED,
    decided: datetime = datetime(2026, 11, 1, 9, tzinfo=UTC),
    until: date = date(2026, 12, 31),
) -> ChannelException:
    row = ChannelException(
        partner_id=partner_id,
        clause=clause,
        scope_kind=scope[0],
        scope_ref=scope[1],
        affected_partner_ids=["contoso"],
        reason="The customer asked for northwind's team by name.",
        requested_by="ada@northwind.example",
        requested_at=decided - timedelta(days=14),
        until=until,
        expires_at=end_of(until, "UTC"),
        playbook_version="2026.2",
        state=state,
        decided_by="chair@vendor.example" if state is not ExceptionState.WITHDRAWN else None,
        decided_at=decided if state is not ExceptionState.WITHDRAWN else None,
        decision_reason="Granted for the migration project.",
    )
    session.add(row)
    session.flush()
    return row


def _territory_dispute(
    sessions: SessionFactory, claimant: str = "contoso"
) -> tuple[EngagementFacts, Recommendation]:
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-9"), claimant=claimant, category=TERRITORY),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    return facts, recommend(TABLES, TERRITORY, facts, purpose="triage")


def test_the_respondent_s_exception_for_the_territory_denies_the_claim(
    sessions: SessionFactory,
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        number = f"EXC-{_exception(session, 'northwind').id}"
    facts, found = _territory_dispute(sessions)
    assert facts.exception == "respondent"
    assert facts.exclusive_territory == "claimant"
    assert found.outcome is VoteOutcome.DENY
    assert found.clause is not None and found.clause.startswith("RoE 2.1")
    assert (
        f"exception {number} to RoE 4.2 for northwind (respondent) at territory DACH, "
        "approved 2026-11-01, until 2026-12-31"
    ) in facts.evidence


def test_the_claimant_s_exception_upholds_its_claim_against_the_holder(
    sessions: SessionFactory,
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        _exception(session, "northwind")
    facts, found = _territory_dispute(sessions, claimant="northwind")
    assert facts.exception == "claimant"
    assert found.outcome is VoteOutcome.UPHOLD
    assert found.clause is not None and found.clause.startswith("RoE 2.1")


def test_an_account_exception_covers_the_registration_s_account(sessions: SessionFactory) -> None:
    line = "DR-9,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(line))
    with sessions.begin() as session:
        session.add(Account(code="ACC-1", name="Bayer Werke", partner_id="contoso", country="DE"))
        _exception(session, "northwind", scope=("account", "ACC-1"))
    with sessions.read() as session:
        facts = establish(
            session,
            _request(
                (ObjectKind.DEAL_REGISTRATION, "DR-9"),
                (ObjectKind.ACCOUNT, "ACC-1"),
                category=TERRITORY,
            ),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert facts.exception == "respondent"


@pytest.mark.parametrize(
    "given",
    [
        # Ran out before the conflict (2026-11-20).
        {"state": ExceptionState.EXPIRED, "until": date(2026, 11, 19)},
        {"state": ExceptionState.DENIED},
        {"state": ExceptionState.WITHDRAWN},
        {"state": ExceptionState.IN_REVIEW},
        {"scope": ("account", "ACC-OTHER")},
        {"decided": datetime(2026, 11, 21, 9, tzinfo=UTC)},  # approved after the conflict
    ],
    ids=["expired", "denied", "withdrawn", "undecided", "another-account", "later"],
)
def test_an_exception_not_in_force_there_on_the_day_is_not_counted(
    sessions: SessionFactory, given: dict[str, object]
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        _exception(session, "northwind", **given)  # type: ignore[arg-type]
    facts, found = _territory_dispute(sessions)
    assert facts.exception is None
    assert not any("exception EXC-" in e for e in facts.evidence)
    assert found.outcome is VoteOutcome.UPHOLD
    assert found.clause is not None and found.clause.startswith("RoE 4.2")


def test_an_exception_since_expired_still_decides_a_conflict_of_its_time(
    sessions: SessionFactory,
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        _exception(session, "northwind", state=ExceptionState.EXPIRED, until=date(2026, 11, 20))
    facts, _found = _territory_dispute(sessions)
    assert facts.exception == "respondent"


def test_a_third_partner_s_or_another_clause_s_exception_is_no_party_s(
    sessions: SessionFactory,
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        _exception(session, "direct")  # not a party
        # RoE 3.4 is not among the territory category's tables.
        _exception(session, "northwind", clause=RoE_3_4, scope=("territory", "DACH"))
    facts, _found = _territory_dispute(sessions)
    assert facts.exception is None


def test_a_shared_reader_reads_the_exceptions_once(sessions: SessionFactory) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(BAYER))
    with sessions.begin() as session:
        _exception(session, "northwind")
    with sessions.read() as session:
        reader = ChannelReader(session)
        request = _request((ObjectKind.DEAL_REGISTRATION, "DR-9"), category=TERRITORY)
        reader.prefetch([request])
        first = reader.exceptions()
        for _ in range(3):
            assert establish(reader, request, TABLES.engagement).exception == "respondent"  # type: ignore[arg-type]
        assert reader.exceptions() is first


def test_a_lead_dispute_over_an_excepted_named_account_reads_the_lead_s_account(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        session.add(
            Account(
                code="ACC-1",
                name="ACME Corp",
                domain="acme.com",
                partner_id="contoso",
                country="US",
            )
        )
        _exception(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    leads = (
        "external_id,partner_id,customer_name,customer_domain,country,status,routed_at,"
        "modified_at\n"
        "L-1,northwind,ACME Corp,acme.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
    )
    _import(sessions, ChannelKind.LEAD, ImportFormat.CSV, leads)
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.LEAD, "L-1"), category=DisputeCategory.LEAD_ROUTING),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert facts.lead_routed_by_rules is False  # the account is named to contoso
    assert facts.exception == "respondent"
    found = recommend(TABLES, DisputeCategory.LEAD_ROUTING, facts, purpose="triage")
    assert found.outcome is VoteOutcome.DENY
    assert found.clause is not None and found.clause.startswith("RoE 2.1")


# --- detection -------------------------------------------------------------------------------

ACCOUNT_HEADER = (
    "external_id,partner_id,customer_name,customer_domain,country,account_code,status,"
    "registered_at,modified_at"
)


def _detect(sessions: SessionFactory, kind: ChannelKind, data: str) -> ChannelImport:
    return import_file(
        sessions,
        kind=kind,
        fmt=ImportFormat.CSV,
        file_name="file",
        data=data.encode(),
        started_by="ada",
        engagement=ENGAGEMENT,
    )


def _in_force(session: Session, partner_id: str, **given: object) -> ChannelException:
    """An exception approved yesterday, until a month from today (detection reads the clock)."""
    today = datetime.now(UTC).date()
    return _exception(
        session,
        partner_id,
        decided=datetime.now(UTC) - timedelta(days=1),
        until=today + timedelta(days=30),
        **given,  # type: ignore[arg-type]
    )


def _kinds(sessions: SessionFactory) -> list[tuple[AlertKind, str]]:
    return [(a.kind, a.pair_key) for a in _alerts(sessions)]


def test_a_registration_in_an_excepted_territory_raises_no_alert_until_the_exception_ends(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        granted = _in_force(session, "northwind").id
        # For another account of DACH only: it excepts no registration without that account.
        _in_force(session, "northwind", scope=("account", "ACC-OTHER"))
    first = "DR-3,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
    done = _detect(sessions, ChannelKind.REGISTRATION, registrations(first))
    assert done.alerts_raised == 0 and _kinds(sessions) == []
    # The exception ends: the next import that finds the same registration raises the alert.
    with sessions.begin() as session:
        row = session.get(ChannelException, granted)
        assert row is not None
        row.state = ExceptionState.EXPIRED
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        session.add(row)
    done = _detect(sessions, ChannelKind.REGISTRATION, registrations(_later(first)))
    assert done.alerts_raised == 1
    assert _kinds(sessions) == [(AlertKind.EXCLUSIVE_TERRITORY, "registration:DR-3|territory:DACH")]


@pytest.mark.parametrize(
    "given",
    [
        {"state": ExceptionState.DENIED},
        {"state": ExceptionState.WITHDRAWN},
        {"clause": RoE_3_4},  # lifts a named account, not a territory
    ],
    ids=["denied", "withdrawn", "another-clause"],
)
def test_an_exception_that_does_not_except_the_territory_keeps_the_alert(
    sessions: SessionFactory, given: dict[str, object]
) -> None:
    with sessions.begin() as session:
        _in_force(session, "northwind", **given)
    line = "DR-3,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
    assert _detect(sessions, ChannelKind.REGISTRATION, registrations(line)).alerts_raised == 1


def _named_account(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        session.add(
            Account(
                code="ACC-1",
                name="ACME Corp",
                domain="acme.com",
                partner_id="contoso",
                country="US",
            )
        )


def test_an_excepted_named_account_pursued_by_both_raises_no_same_customer_alert(
    sessions: SessionFactory,
) -> None:
    _named_account(sessions)
    rows = "\n".join(
        (
            ACCOUNT_HEADER,
            "DR-1,northwind,ACME Corp.,acme.com,US,ACC-1,approved,2026-11-02,2026-11-02T10:00:00Z",
            "DR-2,contoso,Acme Corporation,acme.com,US,ACC-1,submitted,2026-11-03,"
            "2026-11-03T10:00:00Z",
        )
    )
    with sessions.begin() as session:
        _in_force(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    assert _detect(sessions, ChannelKind.REGISTRATION, rows + "\n").alerts_raised == 0
    assert _kinds(sessions) == []


def test_the_same_customer_without_the_excepted_account_still_raises_its_alert(
    sessions: SessionFactory,
) -> None:
    _named_account(sessions)
    with sessions.begin() as session:
        _in_force(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    done = _detect(
        sessions,
        ChannelKind.REGISTRATION,
        registrations(
            "DR-1,northwind,ACME Corp.,acme.com,US,,approved,2026-11-02,,2026-11-02T10:00:00Z",
            "DR-2,contoso,Acme Corporation,,US,,submitted,2026-11-03,,2026-11-03T10:00:00Z",
        ),
    )
    assert done.alerts_raised == 1  # neither names the account: nothing ties them to it


def test_a_lead_of_an_excepted_named_account_routed_to_its_partner_raises_no_alert(
    sessions: SessionFactory,
) -> None:
    _named_account(sessions)
    leads = (
        "external_id,partner_id,customer_name,customer_domain,country,status,routed_at,"
        "modified_at\n"
        "L-1,northwind,ACME Corp,acme.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
    )
    with sessions.begin() as session:
        granted = _in_force(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    assert _detect(sessions, ChannelKind.LEAD, leads).alerts_raised == 0
    with sessions.begin() as session:
        granted.state = ExceptionState.EXPIRED
        session.add(granted)
    done = _detect(sessions, ChannelKind.LEAD, leads.replace("T10:00", "T11:00"))
    assert done.alerts_raised == 1
    (alert,) = _alerts(sessions)
    assert alert.kind is AlertKind.LEAD_AGAINST_ROUTING
    assert "its account ACC-1 is named to it" in alert.reasons[0]
