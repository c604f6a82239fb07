"""The board's decided exceptions found beside the precedents, on SQLite and PostgreSQL: by
the words of their clause, scope, partner and reason, by clause, and never by a partner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from accord.channel.exceptions import end_of
from accord.platform.db import SessionFactory, make_engine
from accord.precedents.exceptions import ExceptionQuery, search_exceptions
from models.enums import ExceptionState, PartnerTier, Role
from models.tables import ChannelException, Partner

RoE_4_2 = "RoE 4.2 Exclusive territories are served only by their holder"
RoE_3_4 = "RoE 3.4 A named account is carved out for the partner it is named to"


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    factory = SessionFactory(make_engine(database_url))
    with factory.begin() as session:
        for pid, name in (("northwind", "Northwind Traders"), ("zuerich", "Zürcher Straße AG")):
            session.add(
                Partner(
                    id=pid,
                    name=name,
                    tier=PartnerTier.GOLD,
                    regions=["emea"],
                    calendar="us",
                )
            )
        session.flush()  # the partners before the exceptions that name them
        decided = datetime(2026, 6, 1, 9, tzinfo=UTC)
        for n, (partner, clause, scope, state, reason) in enumerate(
            (
                (
                    "northwind",
                    RoE_4_2,
                    ("territory", "DACH"),
                    ExceptionState.APPROVED,
                    "Migration project the customer asked northwind to finish.",
                ),
                (
                    "zuerich",
                    RoE_3_4,
                    ("account", "ACC-7"),
                    ExceptionState.DENIED,
                    "The holder serves the account well; no cause shown.",
                ),
                (
                    "northwind",
                    RoE_3_4,
                    ("account", "ACC-9"),
                    ExceptionState.EXPIRED,
                    "A one-off renewal during the holder's reorganisation.",
                ),
                ("northwind", RoE_4_2, ("territory", "NORDICS"), ExceptionState.WITHDRAWN, None),
                ("zuerich", RoE_4_2, ("territory", "DACH"), ExceptionState.IN_REVIEW, None),
            )
        ):
            session.add(
                ChannelException(
                    partner_id=partner,
                    clause=clause,
                    scope_kind=scope[0],
                    scope_ref=scope[1],
                    affected_partner_ids=["contoso"],
                    reason="Asked for a good reason, at length enough.",
                    requested_by="ada@partner.example",
                    requested_at=decided - timedelta(days=20),
                    until=date(2026, 12, 31),
                    expires_at=end_of(date(2026, 12, 31), "UTC"),
                    playbook_version="2026.2",
                    state=state,
                    decided_at=decided + timedelta(days=n) if reason else None,
                    decided_by="chair@vendor.example" if reason else None,
                    decision_reason=reason,
                )
            )
    yield factory
    factory.engine.dispose()


def _found(sessions: SessionFactory, role: Role = Role.COMPLIANCE, **query: object) -> list[str]:
    with sessions.read() as session:
        result = search_exceptions(session, ExceptionQuery(**query), role=role)  # type: ignore[arg-type]
    return [f"{h.partner_id}:{h.scope_ref}:{h.state.value}" for h in result.hits]


def test_every_decided_exception_is_listed_newest_decision_first(sessions: SessionFactory) -> None:
    assert _found(sessions) == [
        "northwind:ACC-9:expired",
        "zuerich:ACC-7:denied",
        "northwind:DACH:approved",
    ]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("migration", ["northwind:DACH:approved"]),  # the decision's reason
        ("territor", ["northwind:DACH:approved"]),  # a word's start, in the clause
        ("dach", ["northwind:DACH:approved"]),  # the scope
        ("acc-7", ["zuerich:ACC-7:denied"]),
        ("ZÜRCHER STRASSE", ["zuerich:ACC-7:denied"]),  # the partner's name, casefolded
        ('"named account"', ["northwind:ACC-9:expired", "zuerich:ACC-7:denied"]),
        ('"account named"', []),  # a phrase is in order
        ("northwind -renewal", ["northwind:DACH:approved"]),
        ("nothing-like-this", []),
    ],
)
def test_the_words_are_found_in_clause_scope_partner_and_reason(
    sessions: SessionFactory, q: str, expected: list[str]
) -> None:
    assert _found(sessions, q=q) == expected


def test_the_clause_and_state_narrow_the_list(sessions: SessionFactory) -> None:
    assert _found(sessions, clause="RoE 3.4") == ["northwind:ACC-9:expired", "zuerich:ACC-7:denied"]
    assert _found(sessions, clause=RoE_4_2, q="northwind") == ["northwind:DACH:approved"]
    assert _found(sessions, state=ExceptionState.DENIED) == ["zuerich:ACC-7:denied"]
    with sessions.read() as session:
        undecided = search_exceptions(
            session, ExceptionQuery(state=ExceptionState.IN_REVIEW), role=Role.BOARD
        )
    assert undecided.hits == [] and undecided.notes == ("in_review exceptions are not decided yet",)


@pytest.mark.parametrize("q", ["a\x00b", "line\nbreak", "\ud800"])
def test_a_query_no_field_can_hold_is_refused_naming_it(q: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ExceptionQuery(q=q)
    assert refused.value.errors()[0]["loc"] == ("q",)
    with pytest.raises(ValidationError):
        ExceptionQuery(clause="RoE\x004.2")


def test_a_query_given_no_clause_or_state_is_taken_as_the_form_sends_it() -> None:
    # The precedent search passes its own fields on: an empty clause is None, not left out.
    query = ExceptionQuery.model_validate({"q": "metro", "clause": None, "state": None})
    assert query.clause is None and query.state is None


@pytest.mark.parametrize("q", ['"', "-", "AND OR", "x" * 500, "%_\\'; DROP TABLE"])
def test_odd_queries_are_read_as_best_they_can_be(sessions: SessionFactory, q: str) -> None:
    if len(q) > 200:
        with pytest.raises(ValidationError):
            ExceptionQuery(q=q)
        return
    with sessions.read() as session:
        result = search_exceptions(session, ExceptionQuery(q=q), role=Role.ADMIN)
    assert result.hits == []


def test_a_partner_may_not_search_the_board_s_exceptions(sessions: SessionFactory) -> None:
    with sessions.read() as session, pytest.raises(PermissionError):
        search_exceptions(session, ExceptionQuery(), role=Role.PARTNER)
