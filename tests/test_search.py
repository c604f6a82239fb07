"""Precedent search: the same results contract on SQLite FTS5 and PostgreSQL tsvector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from accord.db import SessionFactory, make_engine
from accord.search import Filters, parse_query, search_precedents
from models.enums import DisputeCategory, PartnerTier
from models.tables import Precedent
from tests.conftest import seed
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


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
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
