"""The anonymised view partners read and search leaks nothing that names a party: every part of
every contact's name, partner names and their variants, amounts in every form, the parties' own
references, and party labels fewer than k partners share (issue 15, item 3)."""

from __future__ import annotations

import random
import re
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from accord.directory.demo import DEMO
from accord.directory.records import ContactRecord, Directory, PartnerRecord, PersonRecord
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from accord.precedents.anonymity import KnownPartner, Names, Population, scrub_amounts, scrub_text
from accord.precedents.search import Filters, search_precedents
from bench.search import NAMES, precedent_words
from models.enums import DisputeCategory, PartnerTier, Role
from models.tables import Precedent
from tests.conftest import Stack, fresh_postgres_database, seed
from tests.precedent_rows import add_precedent
from tests.web_harness import api, make_app, signed_in, token_for

WOODGROVE = ("woodgrove", "Woodgrove Partners Ltd", PartnerTier.PLATINUM, "UK-IE")
"""The only platinum partner in UK-IE, and the only partner there, in the demo directory."""


def directory() -> Directory:
    """The demo directory, Woodgrove with a second contact whose name has every difficulty."""
    partners = [
        p.model_copy(
            update={
                "contacts": [
                    *p.contacts,
                    ContactRecord(name="Zoë Øvergård-Núñez", email="z.on@woodgrove.example"),
                ]
            }
        )
        if p.id == "woodgrove"
        else p
        for p in DEMO.partners
    ]
    people = [
        *DEMO.people,
        PersonRecord(
            id="ciaran",
            name="Ciarán O'Dwyer",
            email="ciaran@woodgrove.example",
            role=Role.PARTNER,
            organisation="woodgrove",
            calendar="GB",
        ),
    ]
    return DEMO.model_copy(update={"partners": partners, "people": people})


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(database_url))
    seed(factory, directory())
    return factory


def public_words(sessions: SessionFactory, number: str) -> tuple[str, set[str]]:
    with sessions.read() as session:
        row = session.exec(select(Precedent).where(Precedent.dispute_number == number)).one()
    folded = unicodedata.normalize("NFKD", row.public_text).casefold()
    return row.public_text, set(re.findall(r"\w+", folded))


def found(
    sessions: SessionFactory, query: str, *, public: bool = True, **filters: str
) -> list[str]:
    with sessions.read() as session:
        result = search_precedents(session, query, public=public, filters=Filters(**filters))
    return [h.dispute_number for h in result.hits]


def test_every_part_of_every_contacts_name_is_scrubbed_and_unsearchable(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2026-000101",
            category=DisputeCategory.DEAL_REGISTRATION,
            outcome="settled",
            claimant=WOODGROVE,
            facts="Wendy Hale phoned twice; Hale's notes and HALE\u2019s reply were forwarded."
            " Zoe Overgard-Nunez and ØVERGÅRD wrote, Núñez agreed, and Ha\u200ble signed."
            " Ciaran O'Dwyer and Ciarán confirmed the wholesale prices for Halesowen.",
            rationale="Per Dwyer and hale, the registration stands.",
        )
    public, words = public_words(sessions, "DSP-2026-000101")
    leaked = {"wendy", "hale", "zoe", "overgard", "nunez", "ciaran", "dwyer", "o"} & words
    assert not leaked, public
    # Whole words only: a name inside another word is not the name.
    assert {"wholesale", "halesowen", "registration", "confirmed"} <= words, public
    for query in ("Hale", "Núñez", "Nunez", "Overgard", "Øvergård", "Wendy", "Zoë", "Ciarán"):
        assert found(sessions, query) == [], query
    assert found(sessions, "wholesale") == ["DSP-2026-000101"]
    assert found(sessions, "Hale", public=False) == ["DSP-2026-000101"]  # compliance still can


def test_partner_names_their_legal_forms_and_aliases_are_scrubbed(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2026-000102",
            category=DisputeCategory.TERRITORY,
            outcome="upheld",
            claimant=WOODGROVE,
            facts="Woodgrove Partners Limited and WOODGROVE's team met Contoso Systems, Inc. and"
            " Contoso's reseller; Fabrikam and Adatum AG bid too (see woodgrove.example).",
            rationale="The territory stays with the holder.",
        )
    public, words = public_words(sessions, "DSP-2026-000102")
    assert not {"woodgrove", "contoso", "fabrikam", "adatum", "limited", "inc"} & words, public
    for query in ("Woodgrove", "Contoso", "Fabrikam", "Adatum"):
        assert found(sessions, query) == [], query
    assert found(sessions, "reseller") == ["DSP-2026-000102"]


AMOUNTS = [
    ("125,000", "between 100,000 and 1,000,000"),
    ("125000", "between 100,000 and 1,000,000"),
    ("125.000", "between 100,000 and 1,000,000"),
    ("125 000", "between 100,000 and 1,000,000"),
    ("€1,25 Mio", "between 1,000,000 and 10,000,000"),
    ("1.25M", "between 1,000,000 and 10,000,000"),
    ("$125k", "between 100,000 and 1,000,000"),
    ("USD 125,000.00", "between 100,000 and 1,000,000"),
    ("1,25 Mio. EUR", "between 1,000,000 and 10,000,000"),
    ("125.000,00 EUR", "between 100,000 and 1,000,000"),
    ("EUR 2.5 million", "between 1,000,000 and 10,000,000"),
    ("£40k", "between 10,000 and 100,000"),
    ("US$ 300,000", "between 100,000 and 1,000,000"),
    ("12,500 dollars", "between 10,000 and 100,000"),
    ("CHF 1'250'000", "between 1,000,000 and 10,000,000"),
    ("1.5bn", "over 10,000,000"),
]


@pytest.mark.parametrize(("written", "band"), AMOUNTS)
def test_amounts_in_every_common_form_become_a_band(written: str, band: str) -> None:
    scrubbed = scrub_amounts(f"The deal was worth {written} in year one.", Decimal(10_000))
    assert scrubbed == f"The deal was worth [an amount {band}] in year one."


@pytest.mark.parametrize(
    "kept",
    [
        "signed on 2026-03-02",
        "signed on 02.03.2026",
        "signed on 3/4/2026",
        "in 2026 and 1999",
        "the FY2026 plan for Q3 2026",
        "under RoE 3.1 and RoE 12.4",
        "40 seats and 1,500 licences",
        "a 900 USD discount and 9,999 EUR",
        "a 12.5% margin",
        "version 2.1.3",
        "deal DR-2026-0042",
    ],
)
def test_dates_years_clauses_and_small_amounts_are_not_amounts(kept: str) -> None:
    assert scrub_amounts(kept, Decimal(10_000)) == kept


def test_references_of_the_parties_own_objects_are_scrubbed(sessions: SessionFactory) -> None:
    refs = ("NW-REG-7781", "DR-2026-0042", "OPP-00123", "LD-5521", "ACME-001", "PL-EU-2026")
    refs += ("2026-1182", "4500012345", "88812", "0061t00000AbCdEAAZ")
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2026-000103",
            category=DisputeCategory.DEAL_REGISTRATION,
            outcome="upheld",
            objects=({"kind": "deal_registration", "ref": "NW-REG-7781"},),
            facts="Registration nw-reg-7781 (deal DR-2026-0042) covered opportunity OPP-00123 and"
            " lead LD-5521 at account ACME-001 on price list PL-EU-2026; invoice 2026-1182 and PO"
            " 4500012345 followed, then order #88812 and opportunity 0061t00000AbCdEAAZ. Signed"
            " 2026-03-02 under RoE 3.1 in Q3 FY2026.",
            rationale="The first registration wins.",
            remedies=(
                {"kind": "commission_split", "deal_ref": "DR-2026-0042", "shares": {}},
                {"kind": "lead_reroute", "lead_ref": "LD-5521", "to_partner_id": "northwind"},
            ),
        )
    public, _ = public_words(sessions, "DSP-2026-000103")
    for ref in refs:
        assert ref.lower() not in public.lower(), (ref, public)
    for kept in ("2026-03-02", "RoE 3.1", "Q3", "FY2026", "invoice [reference]"):
        assert kept in public, (kept, public)
    for query in ("DR-2026-0042", "4500012345", "OPP-00123", '"2026-1182"', "NW-REG-7781"):
        assert found(sessions, query) == [], query
    assert found(sessions, "DR-2026-0042", public=False) == ["DSP-2026-000103"]


def test_a_party_label_is_generalised_until_k_partners_share_it(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        add_precedent(
            session,
            "DSP-2026-000104",
            category=DisputeCategory.PRICING,
            outcome="settled",
            claimant=WOODGROVE,
            facts="Pricing below the published list.",
            rationale="The price list applies.",
        )
    public, words = public_words(sessions, "DSP-2026-000104")
    # The demo has one partner in UK-IE, and one platinum partner in EMEA; five in EMEA.
    assert "a partner in EMEA" in public, public
    assert not {"platinum", "uk"} & words, public
    # Nor can a partner's filters or facet counts undo the label.
    assert found(sessions, "", tier="platinum", region="UK-IE") == []
    assert found(sessions, "pricing", region="UK-IE") == []
    assert found(sessions, "pricing", region="EMEA") == ["DSP-2026-000104"]
    with sessions.read() as session:
        result = search_precedents(session, "pricing", public=True)
    assert "UK-IE" not in result.facets["region"] and "platinum" not in result.facets["tier"]
    assert result.facets["region"] == {"EMEA": 1}
    assert [(h.tier, h.region) for h in result.hits] == [("", "EMEA")]
    # Staff and compliance still filter by the claimant's own tier and region.
    assert found(sessions, "", public=False, tier="platinum", region="UK-IE") == ["DSP-2026-000104"]


def test_the_benchmark_generators_precedents_leak_no_partner_name_or_reference(
    database_url: str,
) -> None:
    """The search benchmark's generator, its customer names made partners of the directory."""
    partners = [
        PartnerRecord(
            id=name.lower(),
            name=f"{name} Holdings GmbH",
            tier=PartnerTier.GOLD,
            regions=["DACH"],
            calendar="DE-BY",
            email_domains=[f"{name.lower()}.example"],
            contacts=[ContactRecord(name=f"Kim {name}son", email=f"kim@{name.lower()}.example")],
        )
        for name in NAMES
    ]
    sessions = SessionFactory(make_engine(database_url))
    seed(sessions, Directory(partners=[*DEMO.partners, *partners], people=DEMO.people))
    rng = random.Random(15)
    with sessions.begin() as session:
        for i in range(60):
            facts, rationale = precedent_words(i, rng)
            add_precedent(
                session,
                f"DSP-2026-{i + 200:06d}",
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome="settled",
                facts=f"{facts} Kim {NAMES[i % len(NAMES)]}son wrote.",
                rationale=rationale,
            )
    with sessions.read() as session:
        texts = session.exec(select(Precedent.public_text)).all()
    assert len(texts) == 60
    for public in texts:
        lowered = public.lower()
        assert not [n for n in NAMES if n.lower() in lowered], public
        assert "dr-" not in lowered, public
    for name in NAMES:
        assert found(sessions, name) == [], name
    assert found(sessions, "registration") != []


def seed_at_an_older_schema(sessions: SessionFactory, directory: Any, scratch: object) -> None:
    """The directory's rows, as today's import writes them, in a database at an older schema:
    imported into a scratch database at head, then copied column by column where the older
    table has the column (the models know columns the old schema does not have yet)."""
    from sqlalchemy import MetaData, insert

    head_url = f"sqlite:///{scratch}/head.db"
    upgrade(head_url)
    head = SessionFactory(make_engine(head_url))
    seed(head, directory)
    older, newer = MetaData(), MetaData()
    older.reflect(sessions.engine)
    newer.reflect(head.engine)
    with head.read() as source, sessions.begin() as target:
        for name in ("partner", "partner_contact", "person", "territory", "account"):
            table = older.tables[name]
            rows = source.connection().execute(select(newer.tables[name])).mappings().all()
            if rows:
                kept = [{k: v for k, v in r.items() if k in table.c} for r in rows]
                target.connection().execute(insert(table), kept)
    head.engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_precedents_stored_before_are_anonymised_again_on_upgrade(
    backend: str, tmp_path: object
) -> None:
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path}/old.db", (lambda: None)
    else:
        url, drop = fresh_postgres_database()
    try:
        upgrade(url, "0021")
        sessions = SessionFactory(make_engine(url))
        seed_at_an_older_schema(sessions, directory(), tmp_path)
        with sessions.begin() as session:
            add_precedent(
                session,
                "DSP-2026-000105",
                category=DisputeCategory.DEAL_REGISTRATION,
                outcome="settled",
                claimant=WOODGROVE,
                facts="Wendy Hale registered DR-2026-0042 worth 125000.",
                rationale="The first registration wins.",
            )
            # As the anonymisation before this change wrote it, leaks and all.
            session.execute(
                text(
                    "UPDATE precedent SET public_text = :leaky,"
                    " facet_values = 'tier=platinum\nregion=UK-IE'"
                ),
                {"leaky": "a platinum partner in UK-IE\n[contact] Hale registered DR-2026-0042"},
            )
        assert found(sessions, "Hale") == ["DSP-2026-000105"]  # the leak, before the upgrade
        upgrade(url)
        public, words = public_words(sessions, "DSP-2026-000105")
        assert not {"hale", "wendy", "platinum", "125000"} & words, public
        assert "dr-2026-0042" not in public.lower() and "a partner in EMEA" in public
        for query in ("Hale", "DR-2026-0042", "125000", "platinum"):
            assert found(sessions, query) == [], query
        assert found(sessions, "registered") == ["DSP-2026-000105"]
        assert found(sessions, "", region="EMEA") == ["DSP-2026-000105"]
    finally:
        drop()


def demo_population(k: int) -> Population:
    return Population(
        tuple(
            KnownPartner(p.id, p.name, p.tier.value, tuple(p.regions), tuple(p.email_domains))
            for p in DEMO.partners
        ),
        k,
    )


@pytest.mark.parametrize(
    ("k", "tier", "region", "label"),
    [
        (1, "platinum", "UK-IE", "a platinum partner in UK-IE"),
        (
            2,
            "platinum",
            "UK-IE",
            "a partner in EMEA",
        ),  # one platinum in EMEA (Direct Sales: GLOBAL)
        (2, "gold", "UK-IE", "a gold partner in EMEA"),  # Adatum and Wingtip
        (3, "platinum", "UK-IE", "a partner in EMEA"),
        (2, "gold", "NA-East", "a partner in NA"),  # with Tailspin: LATAM took NA-West's silver
        (3, "gold", "NA-East", "a partner in AMER"),  # Lamna alone in LATAM
        (5, "silver", "LATAM", "a partner"),  # "in AMER" would be Lamna's alone
        (6, "silver", "LATAM", "a partner"),
        (3, "gold", "Atlantis", "a gold partner"),  # no wider region known: tier alone
        (50, "gold", "DACH", "a partner"),  # more than the directory holds: nothing but "partner"
    ],
)
def test_the_generalisation_ladder(k: int, tier: str, region: str, label: str) -> None:
    assert demo_population(k).label(tier, region) == label


def test_nasty_texts_are_scrubbed_without_error() -> None:
    population = demo_population(3)
    names = population.names(
        [{"partner_id": "woodgrove", "name": "Woodgrove Partners Ltd", "tier": "platinum",
          "region": "UK-IE", "contacts": ["wendy.hale@woodgrove.example"]}]
    )  # fmt: skip
    # NUL and zero-width characters cannot hide a name, and never reach the index.
    scrubbed = scrub_text("Wen\x00dy Ha\u200ble and H\u00adale, \x00wholesale", names)
    assert scrubbed == "[contact] and [contact], wholesale"
    # Huge: a megabyte of text with names, amounts and references all through it.
    chunk = "Wendy Hale of Woodgrove sent DR-2026-0042 for 125000 EUR on 2026-03-02; ÅÉÎ. "
    huge = scrub_text(chunk * 13_000, names, ["DR-2026-0042"])
    assert len(huge) > 500_000
    assert not re.search(r"(?i)wendy|hale|woodgrove|DR-2026|125000", huge)
    assert huge.count("2026-03-02") == 13_000
    # Deeply nested brackets and a name in every alphabet's case folding.
    assert scrub_text("((((" * 5_000 + "HALE" + "))))" * 5_000, names).count("[contact]") == 1
    assert (
        scrub_text("HALE\u2019S and Hale\u2019s", names) == "[contact]\u2019S and [contact]\u2019s"
    )


def test_names_that_are_also_words_and_words_after_names_are_not_over_scrubbed() -> None:
    population = Population(
        (
            *demo_population(3).partners,
            KnownPartner("direct-sales", "Vendor Direct Sales", "platinum", ("GLOBAL",), (),
                         ("Dana Price",)),
        ),
        3,
    )  # fmt: skip
    direct = {"partner_id": "direct-sales", "name": "Vendor Direct Sales", "tier": "platinum",
              "region": "GLOBAL", "contacts": ["dana.price@vendor.example"]}  # fmt: skip
    contoso = {"partner_id": "contoso", "name": "Contoso Systems", "tier": "gold",
               "region": "NA-East", "contacts": []}  # fmt: skip
    names = population.names([contoso, direct])
    assert scrub_text("Dana Price moved the price list; Price agreed.", names) == (
        "[contact] moved the price list; [contact] agreed."
    )
    # A name over a line break is still the name; a word after it that is also a legal form
    # elsewhere ("as", "co") stays; an unknown vendor word is not a partner.
    assert scrub_text("Contoso\nSystems as the respondent co-sold", names) == (
        "a partner in AMER as the respondent co-sold"
    )
    assert scrub_text("Contoso Systems GmbH and Contoso, Inc. met the vendor", names) == (
        "a partner in AMER and a partner in AMER met the vendor"
    )


async def test_a_partner_reads_and_searches_only_the_anonymised_precedent_on_the_web(
    stack: Stack,
) -> None:
    """As a partner sees it: the library page, the precedent's page and the API."""
    with stack.sessions.begin() as session:
        row = add_precedent(
            session,
            "DSP-2026-000106",
            category=DisputeCategory.DEAL_REGISTRATION,
            outcome="settled",
            claimant=WOODGROVE,
            facts="Wendy Hale of Woodgrove registered DR-2026-0042, worth 125000, first.",
            rationale="The first registration wins; Hale's evidence was clear.",
            amount=Decimal(125_000),
        )
        pid = row.id
    app = make_app(stack)
    partner = await signed_in(app, "fay@fabrikam.example")
    library = (await partner.get("/precedents", params={"q": "registered"})).text
    page = (await partner.get(f"/precedents/{pid}")).text
    for text_ in (library, page):
        assert "a partner in EMEA" in text_
        for secret in ("Hale", "Wendy", "Woodgrove", "DR-2026-0042", "125000", "UK-IE"):
            assert secret not in text_, secret
    assert "Precedents <small>(0)" in (await partner.get("/search", params={"q": "Hale"})).text
    async with api(app, token_for(stack, "fay@fabrikam.example")) as client:
        found = (await client.get("/api/precedents", params={"q": "registered"})).json()
        assert found["total"] == 1 and found["facets"]["region"] == {"EMEA": 1}
        assert "platinum" not in found["facets"]["tier"]
        for query in ({"q": "Hale"}, {"q": "DR-2026-0042"}, {"region": "UK-IE"}):
            assert (await client.get("/api/precedents", params=query)).json()["total"] == 0
    compliance = await signed_in(app, "carol.compliance@vendor.example")
    assert "Wendy Hale" in (await compliance.get(f"/precedents/{pid}")).text


NO_NAMES = (Names(None, {}),)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("call +49 30 1234 5678 today", "call [phone] today"),
        ("call +1 (555) 123-4567 today", "call [phone] today"),
        ("call 0049 30 12345678 today", "call [phone] today"),
        ("met 2026-03-02 10:00 sharp", "met 2026-03-02 10:00 sharp"),
        ("met 02.03.2026 14:30 sharp", "met 02.03.2026 14:30 sharp"),
        ("the registered partner 2026 plan", "the registered partner 2026 plan"),
        ("accounted for 12 leads in 2026", "accounted for 12 leads in 2026"),
        ("order 2026-03-02 and quote 3.1", "order 2026-03-02 and quote 3.1"),
        ("PO4500012345 and INV-2026-1182", "[reference] and [reference]"),
        ("Office365 and Windows11 seats", "Office365 and Windows11 seats"),
        ("NW-REG-7781 and DR-7", "[reference] and [reference]"),
        ("mail ops@contoso.example now", "mail [email] now"),
    ],
)
def test_phones_references_and_what_only_looks_like_them(written: str, shown: str) -> None:
    assert scrub_text(written, NO_NAMES) == shown


def test_a_name_part_that_is_a_function_word_keeps_the_grammar() -> None:
    party = {"partner_id": "contoso", "name": "Contoso Systems", "tier": "gold",
             "region": "NA-East", "contacts": []}  # fmt: skip
    population = Population(
        (*demo_population(3).partners,
         KnownPartner("contoso", "Contoso Systems", "gold", ("NA-East",), (), ("An Nguyen",))),
        3,
    )  # fmt: skip
    names = population.names([party])
    assert scrub_text("An Nguyen made an offer; Nguyen's an expert.", names) == (
        "[contact] made an offer; [contact]'s an expert."
    )
