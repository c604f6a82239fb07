"""Who may be neutral: the pure screening rules, case by case."""

from __future__ import annotations

from accord.rules.eligibility import Candidate, Stakes, conflict_of_interest
from models.enums import ObjectKind
from models.payloads import ContestedObject

BAVARIA = (ContestedObject(kind=ObjectKind.TERRITORY, ref="DE-BY"),)


def candidate(**fields: object) -> Candidate:
    values: dict[str, object] = {
        "person_id": "rita.neutral",
        "name": "Rita Neutral",
        "organisation": "vendor",
        "function": None,
        "declared_conflicts": frozenset(),
        "active": True,
        "case_limit": 5,
        "open_cases": 0,
        "last_assigned_at": None,
    }
    values.update(fields)
    return Candidate(**values)  # type: ignore[arg-type]


def test_a_declared_conflict_with_the_holder_of_a_contested_exclusive_territory_bars_them() -> None:
    # Adatum holds Bavaria exclusively but is not a party (Litware v Northwind over Bavaria).
    stakes = Stakes(exclusive_holders={"adatum": frozenset({"territory:DE-BY"})})
    why = conflict_of_interest(
        candidate(declared_conflicts=frozenset({"adatum"})),
        party_ids=("litware", "northwind"),
        contested_objects=BAVARIA,
        stakes=stakes,
    )
    assert why == (
        "Rita Neutral declared a conflict with adatum, which holds the contested exclusive "
        "territory:DE-BY"
    )
    # A conflict declared with someone without a stake here bars nobody.
    assert (
        conflict_of_interest(
            candidate(declared_conflicts=frozenset({"fabrikam"})),
            party_ids=("litware", "northwind"),
            contested_objects=BAVARIA,
            stakes=stakes,
        )
        is None
    )


def test_the_sales_function_is_recognised_however_an_older_row_spells_it() -> None:
    # Imports store functions lower-case; rows from before that may not be.
    stakes = Stakes(direct_sales_parties=frozenset({"direct-sales"}))
    for spelling in ("Sales", " SALES ", "sales"):
        why = conflict_of_interest(
            candidate(function=spelling),
            party_ids=("northwind", "direct-sales"),
            contested_objects=(),
            stakes=stakes,
        )
        assert why is not None and "vendor's sales function" in why, spelling
