"""Adversarial probes of the consumers of approved exceptions: the `exception` fact RoE 2.1's
table reads, and detection keeping back what an exception allows. An exception lifts one
protection of the partners it affected when the board approved it; it must not be anybody
else's defence, nor silence an alert raised for anybody else."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from accord.channel.facts import establish
from accord.platform.db import SessionFactory
from accord.playbooks.engagement import recommend
from models.enums import (
    AlertKind,
    ChannelKind,
    DisputeCategory,
    ExceptionState,
    ImportFormat,
    ObjectKind,
    PartnerTier,
    VoteOutcome,
)
from models.payloads import ContestedObject
from models.payloads.engagement import EngagementFacts, EngagementRequest, Recommendation
from models.tables import Account, Partner, Territory
from tests.channel.test_detection import registrations
from tests.channel.test_engagement import TABLES
from tests.channel.test_exceptions_honoured import (
    RoE_3_4,
    _detect,
    _exception,
    _in_force,
    _kinds,
)
from tests.channel.test_imports import _import

DEAL = DisputeCategory.DEAL_REGISTRATION
TERRITORY = DisputeCategory.TERRITORY
# fabrikam registered Bayer first; northwind a day later, in DACH (contoso's exclusive).
FABRIKAM_FIRST = (
    "DR-8,fabrikam,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-01,,2026-11-01T10:00:00Z"
)
NORTHWIND_LATER = (
    "DR-9,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
)
LEADS = (
    "external_id,partner_id,customer_name,customer_domain,country,status,routed_at,modified_at\n"
)


def _fabrikam(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        session.add(
            Partner(
                id="fabrikam",
                name="Fabrikam Inc",
                tier=PartnerTier.GOLD,
                regions=["emea"],
                calendar="us",
            )
        )
        session.add(
            Territory(
                code="NORDICS",
                name="Nordics",
                partner_id="fabrikam",
                exclusive=True,
                countries=["SE", "NO", "DK", "FI"],
            )
        )


def _dispute(
    sessions: SessionFactory,
    claimant: str,
    respondent: str,
    *objects: tuple[ObjectKind, str],
    category: DisputeCategory = DEAL,
    occurred_on: date = date(2026, 11, 20),
) -> tuple[EngagementFacts, Recommendation]:
    request = EngagementRequest(
        number="DSP-2026-000009",
        purpose="triage",
        playbook_version="2026.2",
        category=category,
        claimant_id=claimant,
        respondent_ids=(respondent,),
        contested_objects=tuple(ContestedObject(kind=k, ref=r) for k, r in objects),
        occurred_on=occurred_on,
    )
    with sessions.read() as session:
        facts = establish(session, request, TABLES.engagement)  # type: ignore[arg-type]
    return facts, recommend(TABLES, category, facts, purpose="triage")


# --- the `exception` fact ----------------------------------------------------------------------


def test_probe_an_exception_is_no_defence_against_a_partner_it_never_affected(
    sessions: SessionFactory,
) -> None:
    _fabrikam(sessions)
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(FABRIKAM_FIRST, NORTHWIND_LATER),
    )
    _, plain = _dispute(sessions, "fabrikam", "northwind", (ObjectKind.DEAL_REGISTRATION, "DR-8"))
    assert plain.outcome is VoteOutcome.UPHOLD  # fabrikam registered first (RoE 3.1)
    with sessions.begin() as session:
        _exception(session, "northwind")  # RoE 4.2 at DACH, affected: contoso only
    facts, found = _dispute(
        sessions, "fabrikam", "northwind", (ObjectKind.DEAL_REGISTRATION, "DR-8")
    )
    # The exception lifted contoso's exclusivity; fabrikam was never asked, never affected.
    assert facts.exception is None, facts.evidence
    assert found.outcome is plain.outcome and found.clause == plain.clause


def test_probe_an_exception_of_a_partner_not_in_the_dispute_changes_nothing(
    sessions: SessionFactory,
) -> None:
    _fabrikam(sessions)
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(
            FABRIKAM_FIRST,
            "DR-10,contoso,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-03,,2026-11-03T10:00:00Z",
            NORTHWIND_LATER,
        ),
    )
    _, plain = _dispute(sessions, "fabrikam", "contoso", (ObjectKind.DEAL_REGISTRATION, "DR-8"))
    with sessions.begin() as session:
        _exception(session, "northwind")
        _exception(session, "northwind", scope=("account", "ACC-X"))
    facts, found = _dispute(sessions, "fabrikam", "contoso", (ObjectKind.DEAL_REGISTRATION, "DR-8"))
    assert facts.exception is None
    assert (found.outcome, found.clause) == (plain.outcome, plain.clause)
    assert not any("EXC-" in e for e in facts.evidence)


@pytest.mark.parametrize(
    ("until", "counted"),
    [(date(2026, 11, 20), True), (date(2026, 11, 19), False)],
    ids=["last-day-is-the-conflict", "ended-the-day-before"],
)
def test_probe_an_expired_exception_counts_only_for_a_conflict_inside_it(
    sessions: SessionFactory, until: date, counted: bool
) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND_LATER))
    with sessions.begin() as session:
        _exception(session, "northwind", state=ExceptionState.EXPIRED, until=until)
    facts, _ = _dispute(
        sessions, "contoso", "northwind", (ObjectKind.DEAL_REGISTRATION, "DR-9"), category=TERRITORY
    )
    assert (facts.exception == "respondent") is counted


def test_probe_an_exception_to_a_clause_the_category_does_not_consult_excepts_nothing(
    sessions: SessionFactory,
) -> None:
    """RoE 3.4 (named account) is not among the territory category's tables."""
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND_LATER))
    with sessions.begin() as session:
        session.add(Account(code="ACC-1", name="Bayer Werke", partner_id="contoso", country="DE"))
        _exception(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    facts, found = _dispute(
        sessions,
        "contoso",
        "northwind",
        (ObjectKind.DEAL_REGISTRATION, "DR-9"),
        (ObjectKind.ACCOUNT, "ACC-1"),
        category=TERRITORY,
    )
    assert facts.exception is None
    assert found.clause is not None and not found.clause.startswith("RoE 2.1")


# --- detection -------------------------------------------------------------------------------


def test_probe_a_territory_exception_silences_only_its_partner_in_its_territory(
    sessions: SessionFactory,
) -> None:
    _fabrikam(sessions)
    with sessions.begin() as session:
        _in_force(session, "northwind")  # RoE 4.2, territory DACH
    done = _detect(
        sessions,
        ChannelKind.REGISTRATION,
        registrations(
            # northwind in DACH: excepted
            "DR-1,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z",
            # northwind in NORDICS (fabrikam's): another territory, not excepted
            "DR-2,northwind,Volvo,volvo.se,SE,,approved,2026-11-02,,2026-11-02T10:00:00Z",
            # fabrikam in DACH: another partner, not excepted
            "DR-3,fabrikam,Siemens,siemens.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z",
        ),
    )
    assert sorted(_kinds(sessions)) == [
        (AlertKind.EXCLUSIVE_TERRITORY, "registration:DR-2|territory:NORDICS"),
        (AlertKind.EXCLUSIVE_TERRITORY, "registration:DR-3|territory:DACH"),
    ], done


def test_probe_a_territory_exception_does_not_pass_to_the_territory_s_next_holder(
    sessions: SessionFactory,
) -> None:
    _fabrikam(sessions)
    with sessions.begin() as session:
        _in_force(session, "northwind")  # affected: contoso, DACH's holder then
        dach = session.get(Territory, "DACH")
        assert dach is not None
        dach.partner_id = "fabrikam"  # a later territory import hands DACH to fabrikam
        session.add(dach)
    line = "DR-1,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
    _detect(sessions, ChannelKind.REGISTRATION, registrations(line))
    assert _kinds(sessions) == [(AlertKind.EXCLUSIVE_TERRITORY, "registration:DR-1|territory:DACH")]


def _accounts(session: Session) -> None:
    session.add(
        Account(
            code="ACC-1", name="ACME Corp", domain="acme.com", partner_id="contoso", country="US"
        )
    )
    session.add(
        Account(
            code="ACC-2", name="Initech", domain="initech.com", partner_id="contoso", country="US"
        )
    )


def test_probe_a_lead_alert_is_kept_back_only_for_the_excepted_account(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        _accounts(session)
        _in_force(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
    leads = LEADS + (
        "L-1,northwind,ACME Corp,acme.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
        "L-2,northwind,Initech,initech.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
    )
    _detect(sessions, ChannelKind.LEAD, leads)
    assert _kinds(sessions) == [(AlertKind.LEAD_AGAINST_ROUTING, "lead:L-2|route:contoso")]


def test_probe_a_named_account_exception_does_not_pass_to_the_account_s_next_holder(
    sessions: SessionFactory,
) -> None:
    _fabrikam(sessions)
    with sessions.begin() as session:
        _accounts(session)
        _in_force(session, "northwind", clause=RoE_3_4, scope=("account", "ACC-1"))
        account = session.get(Account, "ACC-1")
        assert account is not None
        account.partner_id = "fabrikam"  # a later accounts import names ACC-1 to fabrikam
        session.add(account)
    leads = LEADS + "L-1,northwind,ACME Corp,acme.com,US,routed,2026-11-10,2026-11-10T10:00:00Z\n"
    _detect(sessions, ChannelKind.LEAD, leads)
    assert _kinds(sessions) == [(AlertKind.LEAD_AGAINST_ROUTING, "lead:L-1|route:fabrikam")]


def test_probe_an_exception_approved_after_detection_s_moment_or_ended_keeps_the_alert(
    sessions: SessionFactory,
) -> None:
    """In force at detection only: one whose last day has passed (still `approved`, the
    workflow's expiry not recorded yet) keeps nothing back."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        _exception(
            session,
            "northwind",
            decided=now - timedelta(days=40),
            until=(now - timedelta(days=2)).date(),
        )
    line = "DR-1,northwind,Globex,globex.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
    assert _detect(sessions, ChannelKind.REGISTRATION, registrations(line)).alerts_raised == 1
