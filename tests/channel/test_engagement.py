"""The rules of engagement (issue 20, item 4): the playbook's decision tables evaluated against
a dispute's facts, and the facts read from the channel data on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml
from sqlmodel import select

from accord.channel.facts import establish
from accord.channel.imports import ImportRefused
from accord.platform.db import SessionFactory
from accord.platform.settings import REPO_ROOT
from accord.playbooks.engagement import recommend
from accord.playbooks.library import PlaybookError, PlaybookLibrary, load_playbook
from accord.rules.engagement import departures
from models.enums import (
    ChannelKind,
    DisputeCategory,
    ImportFormat,
    ObjectKind,
    RemedyKind,
    VoteOutcome,
)
from models.payloads import CommissionSplit, ContestedObject, WrittenWarning
from models.payloads.engagement import EngagementFacts, EngagementRequest
from models.tables import Account, ChannelImport, Lead
from tests.channel.test_detection import registrations
from tests.channel.test_imports import _import

LIBRARY = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks")
TABLES = LIBRARY.get("2026.2")
DEAL = DisputeCategory.DEAL_REGISTRATION


def _facts(**given: object) -> EngagementFacts:
    return EngagementFacts(**given)  # type: ignore[arg-type]


# --- the tables, evaluated -------------------------------------------------------------------


def test_the_first_registrant_inside_its_protection_window_wins() -> None:
    found = recommend(
        TABLES, DEAL, _facts(first_registrant="claimant", within_protection=True), purpose="t"
    )
    assert found.outcome is VoteOutcome.UPHOLD
    assert found.remedies == (RemedyKind.COMMISSION_SPLIT,)
    assert found.clause is not None and found.clause.startswith("RoE 3.1")
    # Clause by clause, every table of the category in the playbook's order.
    clauses = [f.clause.split(" ")[1] for f in found.findings]
    assert clauses == ["2.1", "3.4", "4.2", "3.3", "3.1"]
    last = found.findings[-1]
    assert last.applies and "registered first: the claimant" in last.explanation
    assert "within the protection window: yes" in last.explanation
    assert "recommends uphold with commission split" in last.explanation
    named = found.findings[1]
    assert not named.applies
    assert "the account is named to: not known from the channel data" in named.explanation


@pytest.mark.parametrize(
    ("first", "protected", "outcome"),
    [
        ("respondent", True, VoteOutcome.DENY),
        ("respondent", False, VoteOutcome.PARTLY_UPHOLD),
        ("claimant", False, VoteOutcome.PARTLY_UPHOLD),
    ],
)
def test_registration_order_and_the_protection_window_decide_the_rest(
    first: str, protected: bool, outcome: VoteOutcome
) -> None:
    found = recommend(
        TABLES, DEAL, _facts(first_registrant=first, within_protection=protected), purpose="t"
    )
    assert found.outcome is outcome


def test_a_named_account_comes_before_registration_order_and_says_the_later_clause_yields() -> None:
    found = recommend(
        TABLES,
        DEAL,
        _facts(named_account="respondent", first_registrant="claimant", within_protection=True),
        purpose="t",
    )
    assert found.outcome is VoteOutcome.DENY and found.clause.startswith("RoE 3.4")  # type: ignore[union-attr]
    later = found.findings[-1]
    assert later.applies and "(not followed: RoE 3.4 comes first)" in later.explanation


def test_the_customer_s_written_choice_inside_an_exclusive_territory_shares_the_commission() -> (
    None
):
    found = recommend(
        TABLES,
        DisputeCategory.TERRITORY,
        _facts(exclusive_territory="claimant", customer_choice="respondent"),
        purpose="t",
    )
    assert found.outcome is VoteOutcome.PARTLY_UPHOLD
    assert found.remedies == (RemedyKind.COMMISSION_SPLIT,)


def test_nothing_known_recommends_nothing_and_says_why_per_clause() -> None:
    found = recommend(TABLES, DEAL, _facts(), purpose="t")
    assert found.outcome is None and found.tables
    assert all(not f.applies and "not known" in f.explanation for f in found.findings)


def test_a_playbook_from_before_the_tables_recommends_nothing() -> None:
    found = recommend(LIBRARY.get("2026.1"), DEAL, _facts(first_registrant="claimant"), purpose="t")
    assert (found.outcome, found.tables, found.findings) == (None, False, ())


# --- departing from the recommendation ---------------------------------------------------------

SPLIT = CommissionSplit(deal_ref="D-1", shares={"northwind": 60, "contoso": 40})
WARNING = WrittenWarning(partner_id="contoso", text="Register before you sell.")


def test_a_decision_departs_when_its_outcome_or_remedies_differ_from_the_recommendation() -> None:
    upheld = recommend(
        TABLES, DEAL, _facts(first_registrant="claimant", within_protection=True), purpose="t"
    )
    assert departures(upheld, outcome="uphold", remedies=(SPLIT.kind, WARNING.kind)) == ()
    assert departures(upheld, outcome=None, remedies=(SPLIT.kind,)) == ()
    (outcome,) = departures(upheld, outcome="deny", remedies=())
    assert outcome == ("outcome: the rules of engagement recommend uphold (RoE 3.1), this is deny")
    (left_out,) = departures(upheld, outcome=None, remedies=(WARNING.kind,))
    assert left_out.endswith("this leaves out commission split")
    denied = recommend(
        TABLES, DEAL, _facts(first_registrant="respondent", within_protection=True), purpose="t"
    )
    (gives,) = departures(denied, outcome=None, remedies=(SPLIT.kind,))
    assert "recommend deny (RoE 3.1), this settlement gives commission split" in gives
    assert departures(None, outcome="deny", remedies=()) == ()
    assert (
        departures(recommend(TABLES, DEAL, _facts(), purpose="t"), outcome="deny", remedies=())
        == ()
    )


# --- the tables, validated -----------------------------------------------------------------------


def _variant(tmp_path, change) -> str:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((REPO_ROOT / "playbooks" / "2026.2.yaml").read_text())
    change(data["engagement"])
    path = tmp_path / "2026.2.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlaybookError) as refused:
        load_playbook(path)
    return str(refused.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda e: e["tables"][5]["rules"][0].update(remedies=["territory_reassignment"]),
            "engagement.tables[5].rules[0].remedies: territory_reassignment is not allowed for "
            "deal_registration",
        ),
        (
            lambda e: e["tables"][0]["rules"][0].update(remedies=["commission_split"]),
            "engagement.tables[0].rules[0]: Value error, remedies: a deny outcome carries no remedies",
        ),
        (
            lambda e: e["tables"][1]["rules"][0]["when"].update(first_registrant="partner"),
            "engagement.tables[1].rules[0].when.first_registrant",
        ),
        (
            lambda e: e["tables"][1]["rules"][0]["when"].update(sunshine=True),
            "sunshine: Extra inputs are not permitted",
        ),
        (
            lambda e: e["tables"][1].update(clause="RoE 3.1 again"),
            "tables[5].clause: RoE 3.1 is also tables[1]'s",
        ),
        (lambda e: e["pricing_bands"].pop("gold"), "pricing_bands: missing gold"),
        (
            lambda e: e["pricing_bands"]["gold"].update(max_discount=140),
            "engagement.pricing_bands.gold.max_discount: Input should be less than or equal to 100",
        ),
    ],
)
def test_a_wrong_decision_table_is_refused_naming_where(tmp_path, change, expected) -> None:  # type: ignore[no-untyped-def]
    problem = _variant(tmp_path, change)
    assert "2026.2.yaml" in problem and expected in problem, problem


# --- the facts, from the channel data (both databases) ---------------------------------------------


def _request(
    *objects: tuple[ObjectKind, str], claimant: str = "contoso", **more
) -> EngagementRequest:  # type: ignore[no-untyped-def]
    return EngagementRequest(
        number="DSP-2026-000001",
        purpose="triage",
        playbook_version="2026.2",
        category=more.get("category", DEAL),
        claimant_id=claimant,
        respondent_ids=("northwind",) if claimant == "contoso" else ("contoso",),
        contested_objects=tuple(ContestedObject(kind=k, ref=r) for k, r in objects),
        occurred_on=more.get("occurred_on", date(2026, 11, 20)),
    )


NORTHWIND = "DR-1,northwind,ACME Corp.,acme.com,US,,approved,2026-11-02,,2026-11-02T10:00:00Z"
CONTOSO = "DR-2,contoso,Acme Corporation,,US,,submitted,2026-11-03,,2026-11-03T10:00:00Z"
OTHER = "DR-3,northwind,Globex Industries,globex.com,US,,approved,2026-10-01,,2026-10-01T10:00:00Z"


def test_the_respondent_s_earlier_registration_is_found_though_only_the_claimant_s_was_named(
    sessions: SessionFactory,
) -> None:
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(NORTHWIND, CONTOSO, OTHER),
    )
    engagement = TABLES.engagement
    assert engagement is not None
    with sessions.read() as session:
        facts = establish(session, _request((ObjectKind.DEAL_REGISTRATION, "DR-2")), engagement)
    assert (facts.first_registrant, facts.within_protection) == ("respondent", True)
    assert facts.named_account is None and facts.exclusive_territory is None
    assert any(
        "DR-1 of ACME Corp. by northwind (respondent) on 2026-11-02" in e for e in facts.evidence
    )
    assert not any("DR-3" in e for e in facts.evidence)  # another customer
    found = recommend(TABLES, DEAL, facts, purpose="triage")
    assert found.outcome is VoteOutcome.DENY
    # Ninety days on, the first registration no longer protects northwind.
    with sessions.read() as session:
        lapsed = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-2"), occurred_on=date(2027, 2, 15)),
            engagement,
        )
    assert (lapsed.first_registrant, lapsed.within_protection) == ("respondent", False)


def test_a_named_account_and_an_exclusive_territory_are_read_from_the_directory(
    sessions: SessionFactory,
) -> None:
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(
            "DR-9,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-02,,2026-11-02T10:00:00Z"
        ),
    )
    with sessions.begin() as session:
        session.add(Account(code="ACC-1", name="Bayer Werke", partner_id="contoso", country="DE"))
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-9"), (ObjectKind.ACCOUNT, "ACC-1")),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert facts.named_account == "claimant"
    assert facts.exclusive_territory == "claimant"  # DE is in DACH, exclusive to contoso
    assert facts.first_registrant == "respondent"
    found = recommend(TABLES, DEAL, facts, purpose="triage")
    # The named-account carve-out comes before registration order.
    assert found.outcome is VoteOutcome.UPHOLD and found.clause.startswith("RoE 3.4")  # type: ignore[union-attr]


def test_a_lead_routed_against_the_rules_is_found(sessions: SessionFactory) -> None:
    _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, registrations(NORTHWIND))
    with sessions.begin() as session:
        imported = session.exec(select(ChannelImport)).first()  # for the lead rows' import_id
        assert imported is not None
        for ext, partner in (("L-1", "contoso"), ("L-2", "northwind")):
            session.add(
                Lead(
                    external_id=ext,
                    partner_id=partner,
                    customer_name="ACME Corp",
                    customer_key="acme",
                    country="US",
                    status="routed",
                    routed_at=datetime(2026, 11, 10, tzinfo=UTC),
                    modified_at=datetime(2026, 11, 10, tzinfo=UTC),
                    import_id=imported.id,
                )
            )
    with sessions.read() as session:
        wrong = establish(
            session,
            _request(
                (ObjectKind.LEAD, "L-1"),
                claimant="northwind",
                category=DisputeCategory.LEAD_ROUTING,
            ),
            TABLES.engagement,  # type: ignore[arg-type]
        )
        right = establish(
            session,
            _request((ObjectKind.LEAD, "L-2"), category=DisputeCategory.LEAD_ROUTING),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert wrong.lead_routed_by_rules is False
    assert any(
        "routing rules send it to northwind: it registered the customer (DR-1)" in e
        for e in wrong.evidence
    )
    assert right.lead_routed_by_rules is True
    found = recommend(TABLES, DisputeCategory.LEAD_ROUTING, wrong, purpose="t")
    assert found.outcome is VoteOutcome.UPHOLD and found.remedies == (RemedyKind.LEAD_REROUTE,)


def test_contested_objects_missing_from_the_channel_data_leave_the_facts_unknown(
    sessions: SessionFactory,
) -> None:
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-404"), (ObjectKind.ACCOUNT, "NOPE")),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert facts.first_registrant is None and facts.named_account is None
    assert "registration DR-404 is not in the channel data" in facts.evidence
    assert recommend(TABLES, DEAL, facts, purpose="t").outcome is None


CHOICE_HEADER = (
    "external_id,partner_id,customer_name,customer_domain,country,status,registered_at,"
    "modified_at,discount,customer_chose_at"
)


def test_the_customer_s_written_choice_and_discounts_beyond_the_band_are_read(
    sessions: SessionFactory,
) -> None:
    rows = [
        "DR-1,northwind,ACME Corp.,acme.com,US,approved,2026-11-02,2026-11-02T10:00:00Z,12.5,",
        "DR-2,contoso,Acme Corporation,,US,submitted,2026-11-03,2026-11-03T10:00:00Z,35,2026-11-15",
    ]
    done = _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        "\n".join((CHOICE_HEADER, *rows)) + "\n",
    )
    assert done.problem_count == 0, done.problems
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-1"), claimant="northwind"),
            TABLES.engagement,  # type: ignore[arg-type]
        )
    assert facts.customer_choice == "respondent"  # contoso
    assert facts.first_registrant == "claimant"
    assert "the customer confirmed contoso (respondent) in writing on 2026-11-15 (DR-2)" in (
        facts.evidence
    )
    # contoso is gold: its band is 30%, and it gave 35%.
    assert facts.price_in_band is False
    assert "registration DR-2 by contoso (gold): 35% off list, beyond the gold band of 30%" in (
        facts.evidence
    )
    # The customer's written choice comes before registration order.
    found = recommend(TABLES, DEAL, facts, purpose="t")
    assert found.outcome is VoteOutcome.DENY and found.clause.startswith("RoE 3.3")  # type: ignore[union-attr]
    pricing = recommend(TABLES, DisputeCategory.PRICING, facts, purpose="t")
    assert pricing.outcome is VoteOutcome.UPHOLD
    assert pricing.remedies == (RemedyKind.REBATE_ADJUSTMENT, RemedyKind.WRITTEN_WARNING)


@pytest.mark.parametrize(
    ("discount", "problem"),
    [
        ("101", "Input should be less than or equal to 100"),
        ("-1", "Input should be greater than or equal to 0"),
        ("12.345", "at most 2 decimal places"),
        ("ten", "is not a percentage like 12.5 ('ten')"),
        ("12.5%", "is not a percentage like 12.5 ('12.5%')"),
    ],
)
def test_a_discount_that_is_no_percentage_is_refused_by_row_and_field(
    sessions: SessionFactory, discount: str, problem: str
) -> None:
    row = f"DR-1,northwind,ACME Corp.,acme.com,US,approved,2026-11-02,2026-11-02T10:00:00Z,{discount},"
    with pytest.raises(ImportRefused) as refused:
        _import(sessions, ChannelKind.REGISTRATION, ImportFormat.CSV, f"{CHOICE_HEADER}\n{row}\n")
    (found,) = refused.value.problems
    assert (found.row, found.field) == (2, "discount") and problem in found.problem, found
