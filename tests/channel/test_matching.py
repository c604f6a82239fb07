"""Same-customer matching (issue 20, item 3) on the labelled set, its blocking, and names."""

from __future__ import annotations

import pytest

from accord.channel import matching
from accord.channel.matching import Customer, blocking_keys, compare
from accord.channel.names import customer_key, domain
from bench.matching import quality, scored
from tests.channel import labelled_pairs


def test_the_labelled_set_is_what_its_generator_writes_and_large_enough() -> None:
    rows = labelled_pairs.read()
    assert len(rows) >= 2_000
    assert [tuple(r.values()) for r in rows] == [
        tuple(str(v) for v in p) for p in labelled_pairs.pairs()
    ]
    variations = {r["variation"] for r in rows}
    for kind in ("legal form", "abbreviation", "typo", "subsidiary", "transliteration"):
        assert kind in variations
    assert "generic words only in common" in variations


def test_same_customer_matching_meets_its_goal_on_the_labelled_set() -> None:
    precision, recall = quality(scored(labelled_pairs.read()), matching.SAME)
    assert precision >= 0.95 and recall >= 0.90, (precision, recall)


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (Customer("ACME Corp.", "acme.com"), Customer("Acme Corporation", None), True),
        (Customer("Kessler Optics GmbH", "kessler.de"), Customer("Кесслер Оптикс", None), True),
        (Customer("IBM", "ibm.com"), Customer("International Business Machines", "ibm.com"), True),
        (
            Customer("National Foods Group", "natfoods.com"),
            Customer("National Media Group", "natmedia.com"),
            False,
        ),
        (
            Customer("Kessler Logistics", "kessler.com"),
            Customer("Kestler Logistics", "kestler.com"),
            False,
        ),
        (Customer("Jo's shop", "gmail.com"), Customer("Max's garage", "gmail.com"), False),
        (Customer("", None), Customer("", None), False),
        (
            Customer("Sadexka Logistics", None, "12 Main Street, Springfield"),
            Customer("Rosdexka Logistics", None, "345 Main Street, Springfield"),
            False,
        ),
        (
            Customer("Orion Pharma", None, "Industriestr. 5, Berlin"),
            Customer("Vega Motors", None, "Industriestr. 5, Berlin"),
            False,
        ),
    ],
    ids=[
        "legal form",
        "script",
        "initials on one domain",
        "generic",
        "near miss",
        "webmail",
        "empty",
        "one street",
        "one address, two companies",
    ],
)
def test_compare_says_same_or_not_with_its_reasons(
    one: Customer, other: Customer, same: bool
) -> None:
    found = compare(one, other)
    assert found.same is same, found
    assert 0.0 <= found.score <= 1.0
    if same:
        assert found.reasons


def test_blocking_keys_leave_out_generic_words_and_webmail() -> None:
    keys = blocking_keys(Customer("Global Systems Group", "gmail.com"))
    assert keys == {"i:gsg"}
    assert "w:kessler" in blocking_keys(Customer("Kessler Logistics GmbH"))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ACME Corp.", "acme"),
        ("Müller GmbH & Co. KG", "muller"),
        ("The Acme Company Ltd", "acme"),
        ("  ", ""),
        ("Inc.", "inc"),
        ("\u200bAcme\u00a0Inc", "acme"),
        ("x" * 500, "x" * 200),
    ],
)
def test_customer_keys(name: str, key: str) -> None:
    assert customer_key(name) == key


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://www.Acme.com:8443/about?x=1", "acme.com"),
        ("Jo.Doe@Sub.Acme.co.uk", "sub.acme.co.uk"),
        ("  ", None),
        ("acme.com.", "acme.com"),
    ],
)
def test_domains(value: str, host: str | None) -> None:
    assert domain(value) == host
