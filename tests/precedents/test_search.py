"""Precedent search: the same results contract on SQLite FTS5 and PostgreSQL tsvector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from accord.disputes.access import Viewer
from accord.disputes.listing import DisputeFilters, list_disputes
from accord.disputes.search import dispute_snippets
from accord.platform.db import SessionFactory, make_engine
from accord.platform.fulltext import parse_query
from accord.platform.schema import upgrade
from accord.precedents.anonymity import amount_value, load_population, scrub_amounts
from accord.precedents.library import anonymised
from accord.precedents.search import Filters, search_precedents
from models.enums import DisputeCategory, DisputeStage, PartnerTier, Role
from models.payloads import Actor
from models.tables import Dispute, Precedent
from tests.activities.test_activities import dispute_row
from tests.conftest import fresh_postgres_database, seed
from tests.precedent_rows import add_precedent

CASES = [
    # number, category, outcome, claimant (id, name, tier, region), facts, rationale
    (
        "DSP-2025-000001",
        DisputeCategory.DEAL_REGISTRATION,
        "settled",
        ("northwind", "Northwind Traders", PartnerTier.PLATINUM, "NA-East"),
        "Northwind registered the Acme opportunity first; Contoso registered it a week later.",
        "First valid registration wins; the late registrant receives a commission share.",
    ),
    (
        "DSP-2025-000002",
        DisputeCategory.TERRITORY,
        "upheld",
        ("fabrikam", "Fabrikam Integration", PartnerTier.SILVER, "NA-West"),
        "Tailspin sold into the exclusive Pacific territory held by Fabrikam.",
        "Exclusive territories are served only by their holder <script>x()</script>.",
    ),
    (
        "DSP-2025-000003",
        DisputeCategory.DEAL_REGISTRATION,
        "denied",
        ("adatum", "Adatum GmbH", PartnerTier.GOLD, "DACH"),
        "Adatum claimed a registration that had expired before the deal closed.",
        "An expired registration gives no protection; the claim is denied.",
    ),
    (
        "DSP-2025-000004",
        DisputeCategory.PRICING,
        "settled",
        ("northwind", "Northwind Traders", PartnerTier.PLATINUM, "NA-East"),
        "Pricing below the published price list for the gold tier.",
        "Partner pricing follows the price list; a rebate adjustment restores the margin.",
    ),
]


def seeded(database_url: str) -> SessionFactory:
    """The demo directory and CASES, each decided a day before the one above it."""
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    now = datetime.now(UTC)
    with factory.begin() as session:
        for i, (number, category, outcome, claimant, facts, rationale) in enumerate(CASES):
            add_precedent(
                session,
                number,
                category=category,
                outcome=outcome,
                facts=facts,
                rationale=rationale,
                claimant=claimant,
                decided_at=now - timedelta(days=i),
            )
    return factory


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    return seeded(database_url)


def numbers(
    sessions: SessionFactory, query: str, *, public: bool = False, **filters: str
) -> list[str]:
    with sessions.read() as session:
        result = search_precedents(session, query, public=public, filters=Filters(**filters))
    return [h.dispute_number for h in result.hits]


def test_words_phrases_and_exclusions(sessions: SessionFactory) -> None:
    assert set(numbers(sessions, "registration")) == {"DSP-2025-000001", "DSP-2025-000003"}
    assert numbers(sessions, '"expired registration"') == ["DSP-2025-000003"]
    assert numbers(sessions, "registration -expired") == ["DSP-2025-000001"]
    assert numbers(sessions, "price list rebate") == ["DSP-2025-000004"]
    assert numbers(sessions, "registration", category="deal_registration", outcome="denied") == [
        "DSP-2025-000003"
    ]
    assert numbers(sessions, "nothing-like-this") == []


def test_facets_count_the_whole_match(sessions: SessionFactory) -> None:
    with sessions.read() as session:
        result = search_precedents(session, "registration", public=False)
    assert result.total == 2
    assert result.facets["category"] == {"deal_registration": 2}
    assert result.facets["outcome"] == {"settled": 1, "denied": 1}
    assert result.facets["tier"] == {"platinum": 1, "gold": 1}


def test_partners_search_the_anonymised_text_only(sessions: SessionFactory) -> None:
    assert numbers(sessions, "Contoso") != []  # compliance finds parties by name
    assert numbers(sessions, "Contoso", public=True) == []
    assert numbers(sessions, "Northwind", public=True) == []
    with sessions.read() as session:
        result = search_precedents(session, "registration", public=True)
    assert {h.dispute_number for h in result.hits} == {"DSP-2025-000001", "DSP-2025-000003"}
    for hit in result.hits:
        for name in ("Northwind", "Contoso", "Adatum", "northwind", "contoso"):
            assert name not in hit.snippet_html


def test_snippets_highlight_matches_and_stay_inert(sessions: SessionFactory) -> None:
    with sessions.read() as session:
        [hit] = search_precedents(session, "exclusive holder", public=False).hits
    assert "<mark>" in hit.snippet_html
    assert "<script>" not in hit.snippet_html


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced quote',
        "-",
        "AND OR NOT",
        "x" * 5000,
        "'); DROP TABLE precedent; --",
        '"" - "" NEAR(',
        "registration*",
        "col : value ^ { } ( )",
    ],
)
def test_malformed_queries_are_searched_as_best_they_can_be(
    sessions: SessionFactory, query: str
) -> None:
    with sessions.read() as session:
        result = search_precedents(session, query, public=True)
        assert session.exec(select(Precedent)).first() is not None  # nothing was dropped
    parsed = parse_query(query)
    if parsed.empty:
        assert result.hits == [] and result.notes
    assert all("<script>" not in h.snippet_html for h in result.hits)


def test_contacts_emails_phones_and_large_amounts_never_reach_partners(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2025-000009",
            category=DisputeCategory.CHANNEL_VS_DIRECT,
            outcome="upheld",
            facts="Direct sales took the Globex renewal worth $125,000 (USD 125,000; 40k EUR in "
            "services). Carl wrote from carl@contoso.example and +49 30 1234 5678 on 2026-03-02 "
            "about DR-2026-0042; a 900 USD discount was offered.",
            rationale="Escalated by carl@contoso.example; Contoso Systems owes 125.000,00 EUR.",
            remedies=(
                {
                    "kind": "mdf_credit",
                    "partner_id": "northwind",
                    "amount": "50000.00",
                    "currency": "USD",
                },
            ),
            amount=Decimal(125_000),
        )
    with sessions.read() as session:
        row = session.exec(
            select(Precedent).where(Precedent.dispute_number == "DSP-2025-000009")
        ).one()
        view = anonymised(row, load_population(session), Decimal(10_000))
    public = json.dumps(view)
    for secret in ("125,000", "125.000", "125000", "40k", "carl@", "Contoso", "1234 5678", "50000"):
        assert secret not in public, secret
    assert "[an amount between 100,000 and 1,000,000]" in view["facts"]
    assert "[an amount between 10,000 and 100,000]" in view["facts"]  # 40k EUR
    assert "[email]" in view["facts"] and "[phone]" in view["facts"]
    # Small amounts and dates stay: they are not personal and they matter. The parties' own
    # references do not (issue 15): a deal registration's id names the deal.
    assert "900 USD" in view["facts"] and "2026-03-02" in view["facts"]
    assert "DR-2026-0042" not in public and "[reference]" in view["facts"]
    assert view["amount_at_stake"] == "between 100,000 and 1,000,000"
    assert view["remedies"][0]["amount"] == "between 10,000 and 100,000"
    # Search: the scrubbed text is what partners search, so nothing finds it, no snippet shows it.
    for query in ("125,000", "125000", "carl", "contoso.example", "5678", "Contoso"):
        assert "DSP-2025-000009" not in numbers(sessions, query, public=True), query
    with sessions.read() as session:
        hits = search_precedents(session, "renewal services", public=True).hits
    assert [h.dispute_number for h in hits] == ["DSP-2025-000009"]
    for secret in ("125", "carl", "contoso", "5678"):
        assert secret not in hits[0].snippet_html.lower(), secret


def test_amounts_are_read_as_people_write_them() -> None:
    assert amount_value("125,000", None) == 125_000
    assert amount_value("1.250.000,50", None) == Decimal("1250000.50")
    assert amount_value("40", "k") == 40_000
    assert amount_value("2.5", " million") == 2_500_000
    assert amount_value("99.95", None) == Decimal("99.95")
    assert scrub_amounts("€12,000 and 9,000 EUR", Decimal(10_000)) == (
        "[an amount between 10,000 and 100,000] and 9,000 EUR"
    )


def test_remedy_clause_and_sla_facets_count_and_filter(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    breached = (
        {"deadline": "mediation", "result": "breached"},
        {"deadline": "remedy", "result": "met"},
    )
    met = ({"deadline": "mediation", "result": "met"},)
    credit = {"kind": "mdf_credit", "partner_id": "northwind", "amount": "500", "currency": "USD"}
    warning = {"kind": "written_warning", "partner_id": "contoso", "text": "Stay in your lane."}
    with sessions.begin() as session:
        for number, remedies, timeline, clause in (
            ("DSP-2025-000011", (credit, warning), breached, "RoE 8.4 Co-marketing funds"),
            ("DSP-2025-000012", (credit,), met, "RoE 8.4 Co-marketing funds"),
            ("DSP-2025-000013", (), met, "RoE 1.5 The board decides"),
        ):
            add_precedent(
                session,
                number,
                category=DisputeCategory.CO_MARKETING,
                outcome="settled",
                facts="Market development funds spent on a campaign in the wrong region.",
                rationale="Funds follow the agreed activity.",
                clauses=(clause,),
                remedies=remedies,
                timeline=timeline,
            )
    with sessions.read() as session:
        result = search_precedents(session, "campaign", public=True)
    assert result.total == 3
    assert result.facets["remedy"] == {"mdf_credit": 2, "written_warning": 1}
    assert result.facets["clause"] == {"RoE 8.4": 2, "RoE 1.5": 1}
    assert result.facets["sla"] == {"met": 2, "breached": 1}
    assert numbers(sessions, "campaign", remedy="written_warning") == ["DSP-2025-000011"]
    assert numbers(sessions, "campaign", sla="met", clause="RoE 8.4") == ["DSP-2025-000012"]
    # No words, only filters: browse, newest first.
    assert numbers(sessions, "", remedy="mdf_credit") == ["DSP-2025-000012", "DSP-2025-000011"]
    # Unranked (a common word on SQLite), the filters are matched inside the full-text index:
    # the same answers.
    monkeypatch.setattr("accord.precedents.search.sqlite.RANKABLE", 0)
    assert numbers(sessions, "campaign", remedy="written_warning") == ["DSP-2025-000011"]
    assert numbers(sessions, "campaign", sla="met", clause="RoE 8.4") == ["DSP-2025-000012"]
    assert numbers(sessions, "campaign", region="NA-East", category="co_marketing") == [
        "DSP-2025-000013",
        "DSP-2025-000012",
        "DSP-2025-000011",
    ]
    assert numbers(sessions, "campaign", region="NA-West") == []
    monkeypatch.setattr("accord.precedents.search.sqlite.RANKABLE", 20_000)

    # Past the ranking cap, the result says it ranked the newest matches only.
    monkeypatch.setattr("accord.precedents.search.common.CANDIDATES", 2)
    with sessions.read() as session:
        capped = search_precedents(session, "campaign", public=False)
    assert capped.total == 2 and not capped.exact_total and len(capped.hits) == 2
    assert capped.notes[0].startswith("more than 2 matches: the newest 2 are ranked and counted")
    assert [h.dispute_number for h in capped.hits] == ["DSP-2025-000013", "DSP-2025-000012"]
    assert sum(capped.facets["sla"].values()) == 2


def test_disputes_are_searched_by_full_text_within_what_the_viewer_may_see(
    sessions: SessionFactory,
) -> None:
    compliance = Viewer(Actor(id="c", role=Role.COMPLIANCE, name="C"), "c@vendor.example")
    fabrikam = Viewer(
        Actor(id="f", role=Role.PARTNER, name="F", partner_id="fabrikam"), "f@fabrikam.example"
    )

    def found(viewer: Viewer, q: str) -> list[str]:
        with sessions.read() as session:
            rows, total = list_disputes(session, viewer, DisputeFilters(q=q))
        assert total == len(rows)
        return [r.number for r in rows]

    assert set(found(compliance, "registered")) == {"DSP-2025-000001"}
    assert set(found(compliance, "registration -expired")) == set()  # facts only, not rationale
    assert found(compliance, '"exclusive Pacific territory"') == ["DSP-2025-000002"]
    assert found(compliance, "adatum") == ["DSP-2025-000003"]  # the claimant's id
    assert found(compliance, "DSP-2025-00000") == [  # a number's start: by prefix, newest first
        "DSP-2025-000004",
        "DSP-2025-000003",
        "DSP-2025-000002",
        "DSP-2025-000001",
    ]
    assert found(compliance, '"') == []  # nothing searchable: a prefix of no number
    # Fabrikam is party to 000002 only: a word in 000001 finds nothing for it.
    assert found(fabrikam, "registered") == []
    assert found(fabrikam, "Pacific") == ["DSP-2025-000002"]
    assert found(fabrikam, "DSP-2025-00000") == ["DSP-2025-000002"]  # by number: its own only

    def party(viewer: Viewer, q: str, partner: str) -> list[str]:
        with sessions.read() as session:
            rows, total = list_disputes(session, viewer, DisputeFilters(q=q, party=partner))
        assert total == len(rows)
        return sorted(r.number for r in rows)

    # The party filter with words: the matches with that partner among their parties.
    assert party(compliance, "registration", "adatum") == ["DSP-2025-000003"]
    assert party(compliance, "registration", "contoso") == ["DSP-2025-000003"]
    assert party(compliance, "registered", "contoso") == ["DSP-2025-000001"]
    assert party(compliance, "registered", "adatum") == []
    assert party(compliance, "DSP-2025-00000", "northwind") == [
        "DSP-2025-000001",
        "DSP-2025-000004",
    ]
    assert party(fabrikam, "territory", "contoso") == ["DSP-2025-000002"]  # its own, and theirs
    assert party(fabrikam, "registered", "contoso") == []  # contoso's, but not its own
    assert party(fabrikam, "registration", "northwind") == []
    with sessions.read() as session:
        snippets = dispute_snippets(session, ["DSP-2025-000002"], "Pacific")
    assert "<mark>Pacific</mark>" in snippets["DSP-2025-000002"]
    assert found(compliance, "dsp-2025-000002") == ["DSP-2025-000002"]  # any case
    # A number that another dispute's facts mention: that one by its text (ranked first),
    # the numbered one by its number, each once.
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2025-000005",
            category=DisputeCategory.DEAL_REGISTRATION,
            outcome="settled",
            facts="Follows DSP-2025-000001 between the same partners; tracked as DSP-2025-000005.",
            rationale="As before.",
        )
    assert found(compliance, "DSP-2025-000001") == ["DSP-2025-000005", "DSP-2025-000001"]
    assert found(compliance, "DSP-2025-000005") == ["DSP-2025-000005"]  # by both ways, once


def test_common_queries_are_bounded_and_say_how(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At scale a common word is listed newest first (SQLite) and a common query searches the
    newest precedents only; scaled down here so four precedents are 'many'."""
    with sessions.read() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
    monkeypatch.setattr("accord.precedents.search.common.WINDOW", 2)
    monkeypatch.setattr("accord.precedents.search.sqlite.RANKABLE", 0)
    monkeypatch.setattr("accord.precedents.search.postgres.GIN_ROWS", 0)
    with sessions.read() as session:
        common = search_precedents(session, "registration", public=False)
        phrase = search_precedents(session, '"registration wins"', public=False)
    if sqlite:
        # Both registration cases, newest first, unranked; the phrase of common words: the
        # newest two precedents only (000001 is the newest, decided first in CASES order).
        assert [h.dispute_number for h in common.hits] == ["DSP-2025-000003", "DSP-2025-000001"]
        assert common.notes[0].startswith("'registration' is too common to rank by relevance")
        assert [h.dispute_number for h in phrase.hits] == []
        assert any(n.startswith("a common query: the newest 2 precedents") for n in phrase.notes)
    else:
        # The planner's estimate marks the query common: the newest two precedents only.
        assert [h.dispute_number for h in common.hits] == ["DSP-2025-000003"]
        assert common.notes[-1].startswith("a common query: the newest 2 precedents")


def _dispute(number: str, facts: str, filed_at: datetime) -> Dispute:
    return dispute_row(
        number,
        DisputeStage.MEDIATION,
        "1000",
        contested_objects=[],
        summary=facts[:60],
        facts=facts,
        desired_remedy="x",
        occurred_on=filed_at.date(),
        filed_by="x@example.com",
        filed_at=filed_at,
        updated_at=filed_at,
    )


COMPLIANCE = Viewer(Actor(id="c", role=Role.COMPLIANCE, name="C"), "c@vendor.example")


def test_equal_matches_are_listed_newest_filed_first_whatever_order_they_were_written(
    sessions: SessionFactory,
) -> None:
    """Disputes with the same text rank alike: newest filed first, across pages, even when
    written out of filing order or filed within a millisecond."""
    base = datetime(2026, 3, 1, 9, tzinfo=UTC)
    filed = {  # written in this order
        "DSP-2026-000107": base + timedelta(days=7),
        "DSP-2026-000101": base + timedelta(days=1),
        "DSP-2026-000105": base + timedelta(days=5),
        "DSP-2026-000103": base + timedelta(days=3, microseconds=200),
        # filed 100 µs before 000103, written after it
        "DSP-2026-000104": base + timedelta(days=3, microseconds=100),
        "DSP-2026-000102": base + timedelta(days=2),
    }
    with sessions.begin() as session:
        for number, at in filed.items():
            session.add(_dispute(number, "Quokka reseller quoted the quokka deal.", at))
    newest_first = sorted(filed, key=lambda n: filed[n], reverse=True)
    with sessions.read() as session:
        rows, total = list_disputes(session, COMPLIANCE, DisputeFilters(q="quokka"))
    assert total == 6
    assert [r.number for r in rows] == newest_first
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("accord.disputes.listing.PAGE_SIZE", 4)
        with sessions.read() as session:
            first, total = list_disputes(session, COMPLIANCE, DisputeFilters(q="quokka"))
            second, _ = list_disputes(session, COMPLIANCE, DisputeFilters(q="quokka"), page=2)
            open_only, _ = list_disputes(
                session, COMPLIANCE, DisputeFilters(q="quokka", open_only=True), page=2
            )
    assert total == 6
    assert [r.number for r in first + second] == newest_first
    assert [r.number for r in open_only] == newest_first[4:]


def test_the_dispute_index_follows_changed_facts(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        session.add(_dispute("DSP-2026-000201", "The wombat account.", datetime.now(UTC)))
    with sessions.begin() as session:
        row = session.get(Dispute, "DSP-2026-000201")
        assert row is not None
        row.facts = "The numbat account, as corrected."
        session.add(row)

    def found(q: str) -> list[str]:
        with sessions.read() as session:
            rows, total = list_disputes(session, COMPLIANCE, DisputeFilters(q=q))
        assert total == len(rows)
        return [r.number for r in rows]

    assert found("numbat") == ["DSP-2026-000201"]
    assert found("wombat") == ["DSP-2026-000201"]  # still in the summary
    assert found("corrected") == ["DSP-2026-000201"]
    with sessions.read() as session:
        snippets = dispute_snippets(session, ["DSP-2026-000201"], "corrected")
    assert "<mark>corrected</mark>" in snippets["DSP-2026-000201"]


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced quote',
        "AND OR NOT NEAR(",
        "body : x",
        "col : value ^ { } ( ) * -",
        "'); DROP TABLE dispute; --",
        "Straße 東京 Привет عربى",
        "x" * 200,
        '"" -"" -',
        "DSP-",
    ],
)
def test_hostile_dispute_queries_give_results_not_errors(
    sessions: SessionFactory, query: str
) -> None:
    fabrikam = Viewer(
        Actor(id="f", role=Role.PARTNER, name="F", partner_id="fabrikam"), "f@fabrikam.example"
    )
    with sessions.read() as session:
        for viewer in (COMPLIANCE, fabrikam):
            rows, total = list_disputes(session, viewer, DisputeFilters(q=query))
            assert total >= len(rows)
            dispute_snippets(session, [r.number for r in rows], query)
        assert session.get(Dispute, "DSP-2025-000001") is not None


def test_thousands_of_disputes_filed_in_one_instant_are_all_indexed(
    sessions: SessionFactory,
) -> None:
    """A bulk import can give many disputes one filing time: more than share a band of the
    SQLite index's rowids. Each is indexed, and a later one still lists first."""
    at = datetime(2026, 4, 1, 9, tzinfo=UTC)
    with sessions.begin() as session:
        for i in range(1, 1_101):
            session.add(_dispute(f"DSP-2026-{i:06d}", "Bulk numbat import.", at))
    with sessions.begin() as session:
        session.add(_dispute("DSP-2026-009999", "Bulk numbat import.", at + timedelta(seconds=1)))
        session.add(_dispute("DSP-2026-009998", "Bulk numbat import.", at - timedelta(days=1)))
    with sessions.read() as session:
        rows, total = list_disputes(session, COMPLIANCE, DisputeFilters(q="numbat"))
        last, _ = list_disputes(session, COMPLIANCE, DisputeFilters(q="numbat"), page=23)
    assert total == 1_102
    assert rows[0].number == "DSP-2026-009999"
    assert last[-1].number == "DSP-2026-009998"


def test_equal_matches_page_newest_first_and_pages_follow_on(sessions: SessionFactory) -> None:
    """Only a page of the ranked candidates is kept: among equal ranks the newest comes first,
    and the next page starts where the last ended."""
    with sessions.begin() as session:
        for i in range(5):
            add_precedent(
                session,
                f"DSP-2025-00010{i}",
                category=DisputeCategory.OTHER,
                outcome="settled",
                facts="A quarrel over a kiosk.",
                rationale="Kiosks are shared.",
                decided_at=datetime.now(UTC) - timedelta(days=30),
            )
    pages = []
    with sessions.read() as session:
        for offset in (0, 2, 4):
            result = search_precedents(session, "kiosk", public=False, limit=2, offset=offset)
            assert result.total == 5
            pages.append([h.dispute_number for h in result.hits])
    assert pages == [
        ["DSP-2025-000104", "DSP-2025-000103"],
        ["DSP-2025-000102", "DSP-2025-000101"],
        ["DSP-2025-000100"],
    ]


def test_sqlite_reads_search_candidates_from_the_narrow_index(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidates' facet lines and filters, and the newest-window floor, come from the
    index of search rows (0030), not from whole precedent rows: its plan says so."""
    factory = SessionFactory(make_engine(sqlite_url))
    seed(factory)
    with factory.begin() as session:
        add_precedent(
            session,
            "DSP-2025-000001",
            category=DisputeCategory.PRICING,
            outcome="settled",
            facts="Pricing below the published price list.",
            rationale="The price list holds.",
        )
    statements: list[tuple[str, Any]] = []

    def remember(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT") and " precedent p" in statement:
            statements.append((statement, parameters))

    monkeypatch.setattr("accord.precedents.search.common.WINDOW", 0)
    monkeypatch.setattr("accord.precedents.search.sqlite.RANKABLE", 0)
    event.listen(factory.engine, "before_cursor_execute", remember)
    with factory.read() as session:
        for query, filters in (
            ("pricing", Filters()),
            ('"price list"', Filters(outcome="settled", remedy="mdf_credit")),
            ("", Filters(category="pricing", sla="met")),
        ):
            search_precedents(session, query, public=True, filters=filters)
        floor = ("SELECT id FROM precedent ORDER BY id DESC LIMIT 1 OFFSET 0", ())
        connection = session.connection()
        plans = {
            statement: " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", values)
            )
            for statement, values in [*statements, floor]
        }
    event.remove(factory.engine, "before_cursor_execute", remember)
    assert len(plans) == 4
    for statement, plan in plans.items():
        assert "COVERING INDEX ix_precedent_search_rows" in plan, (statement, plan)


@pytest.mark.postgres
def test_postgres_keeps_precedent_text_vectors_in_the_row() -> None:
    """Each candidate is tested and ranked by its vector: stored MAIN (0030), it is read with
    the row rather than fetched twice from TOAST."""
    url, drop = fresh_postgres_database()
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        storage = dict(
            conn.execute(
                text(
                    "SELECT attname, attstorage FROM pg_attribute WHERE attrelid ="
                    " 'precedent'::regclass AND attname IN ('search_tsv', 'public_tsv')"
                )
            ).all()
        )
    engine.dispose()
    drop()
    assert storage == {"search_tsv": "m", "public_tsv": "m"}


def test_snippets_are_the_same_asked_by_rowid_or_by_run(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite asks the index for a page's run of rowids, or for each rowid of a scattered page:
    the same snippets, and only the page's."""

    def snippets() -> list[tuple[str, str]]:
        with sessions.read() as session:
            result = search_precedents(session, "registration", public=False, limit=1, offset=1)
        return [(h.dispute_number, h.snippet_html) for h in result.hits]

    by_run = snippets()
    monkeypatch.setattr("accord.precedents.search.sqlite.SNIPPET_RUN", 0)
    assert snippets() == by_run
    assert len(by_run) == 1 and "<mark>registration</mark>" in by_run[0][1].lower()


@pytest.mark.postgres
def test_postgres_dispute_search_parses_once_and_finds_a_partners_matches_in_the_index() -> None:
    """The words are parsed once per statement, in the FROM list: written into the conditions,
    they were parsed again for every match's rank once the statement was prepared and planned
    generically. A partner's matches are found by dispute_search's own parties (0032), not by
    joining every match to dispute_party."""
    url, drop = fresh_postgres_database()
    upgrade(url)
    factory = seeded(url)
    statements: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "dispute_search" in statement:
            statements.append(statement)

    fabrikam = Viewer(
        Actor(id="f", role=Role.PARTNER, name="F", partner_id="fabrikam"), "f@fabrikam.example"
    )
    event.listen(factory.engine, "before_cursor_execute", remember)
    try:
        for _ in range(7):  # past psycopg's fifth run, when it prepares the statement
            with factory.read() as session:
                rows, total = list_disputes(session, fabrikam, DisputeFilters(q="Pacific"))
            assert ([r.number for r in rows], total) == (["DSP-2025-000002"], 1)
    finally:
        event.remove(factory.engine, "before_cursor_execute", remember)
        factory.engine.dispose()
        drop()
    assert len(statements) == 14  # a count and a page each time
    for statement in statements:
        assert statement.count("websearch_to_tsquery(") == 1, statement
        assert "dispute_search.parties @>" in statement, statement
        assert "dispute_party" not in statement, statement
