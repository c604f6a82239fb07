"""Probe of issue 15's defences, as an adversary would try them: what the anonymised view still
shows (invisible characters inside a name, amounts written as ranges, per year or in Indian
grouping, a contested object written with spaces), read with the scrubber alone (pure, fast);
what a mediator merely offered the dispute can do in it."""

from __future__ import annotations

import pytest

from accord.precedents.anonymity import KnownPartner, Names, Population, scrub_text
from models.enums import InboundState
from tests.conftest import Stack
from tests.web.test_web_access_ended import email_of
from tests.web_harness import api, make_app, token_for
from tests.workflows.test_dispute_paths import offered

OBJECTS = ("DR-2026-0042",)


def party_names() -> tuple[Names, Names]:
    population = Population(
        (
            KnownPartner(
                "contoso", "Contoso Ltd", "gold", ("UK-IE",), ("contoso.example",), ("Carl Hale",)
            ),
            KnownPartner("northwind", "Northwind Traders", "gold", ("UK-IE",), (), ("Nora Quinn",)),
            KnownPartner("fabrikam", "Fabrikam", "gold", ("UK-IE",), (), ()),
        ),
        k=3,
    )
    parties = [
        {
            "partner_id": "contoso",
            "name": "Contoso Ltd",
            "tier": "gold",
            "region": "UK-IE",
            "contacts": ["carl.hale@contoso.example"],
        },
        {
            "partner_id": "northwind",
            "name": "Northwind Traders",
            "tier": "gold",
            "region": "UK-IE",
            "contacts": [],
        },
    ]
    return population.names(parties)


def shown(text: str) -> str:
    return scrub_text(text, party_names(), OBJECTS)


@pytest.mark.parametrize(
    "written",
    [
        "Ha\u034fle said so",  # combining grapheme joiner: invisible, not a combining mark
        "Ha\u2063le said so",  # invisible separator
        "Ha\u2064le said so",  # invisible plus
        "Ha\u202ele said so",  # a bidi override
        "Ha\ufe0fle said so",  # a variation selector
        "Ha\U000e0041le said so",  # a tag character
    ],
)
def test_an_invisible_character_inside_a_surname_does_not_save_it(written: str) -> None:
    assert "le said" not in shown(written), shown(written)


@pytest.mark.parametrize(
    "written",
    [
        "a budget of 100,000-125,000 was agreed",
        "a credit of -125,000 was booked",
        "worth 125,000/yr to Contoso",
        "worth 125.000/Jahr",
        "INR 1,25,000 was paid",
        "\u20b912,50,000 owed",
        "Rs. 12,50,000 owed",
        "12.5 lakh rupees",
        "2 crore",
        "125\u2009000 euros",  # a thin space between the thousands
        "125\u2009000",
        "125 TEUR budget",  # thousands of euros, as DACH partners write them
        "125 kEUR budget",
    ],
)
def test_an_amount_over_the_threshold_is_banded_in_these_forms_too(written: str) -> None:
    out = shown(written)
    assert "[an amount" in out, out
    for figure in ("125", "12,50", "12.5", "1,25", "2 crore"):
        assert figure not in out, out


@pytest.mark.parametrize(
    "written", ["+44\u00a020\u00a07946\u00a00958", "+44\u202f20\u202f7946\u202f0958"]
)
def test_a_phone_number_with_no_break_spaces_is_scrubbed(written: str) -> None:
    assert shown(f"call {written} today") == "call [phone] today"


def test_a_small_amount_with_a_scale_is_banded_by_its_real_size() -> None:
    # "0.125m" is 125,000: read as "0125" millions it was shown as over ten million.
    assert shown("0.125m") == "[an amount between 100,000 and 1,000,000]"


@pytest.mark.parametrize("written", ["DR 2026 0042", "DR_2026_0042", "dr-2026-0042", "DR2026-0042"])
def test_the_contested_object_written_with_other_separators_is_scrubbed(written: str) -> None:
    out = shown(f"see {written} in the CRM")
    assert "0042" not in out, out


@pytest.mark.xfail(
    strict=True,
    reason="homoglyphs (Cyrillic a/H for Latin) are not folded: needs a confusables table",
)
def test_a_surname_written_with_cyrillic_homoglyphs_is_scrubbed() -> None:
    out = shown("C\u0430rl H\u0430le said so")
    assert "rl" not in out and "le said" not in out, out


# --- access: a mediator only offered the dispute ----------------------------------------------


async def test_an_offered_mediator_cannot_write_into_the_dispute_by_mail_or_api(
    stack: Stack,
) -> None:
    """Offered, not accepted: they read the case summary to decide, and act only on the offer
    (accept or recuse). A message or a file from them would be put before both sides' neutrals
    by someone who declared no impartiality, and could never be read back by them."""
    from tests.intake_harness import Intake, mail

    app = make_app(stack)
    number = (await stack.file()).number
    candidate = await offered(stack, number)
    await stack.wait_for_event(number, "mediator_offered")
    address = email_of(stack, candidate)
    notice = await stack.mail.wait_for(address, "asked to mediate")
    problems: list[str] = []
    before = stack.actions(number)
    async with api(app, token_for(stack, address)) as client:
        response = await client.post(
            f"/api/disputes/{number}/evidence",
            files={"files": ("from-the-candidate.txt", b"before I accepted", "text/plain")},
            data={"visibility": "neutrals", "description": "early"},
        )
    if response.status_code < 400:
        problems.append(f"api evidence from the offered mediator: {response.status_code}")
    intake = Intake(stack)
    try:
        row = await intake.deliver(
            mail(
                address,
                f"Re: {notice['Subject']}",
                "Off the record: I have worked with Contoso's CEO for years.",
                headers={"In-Reply-To": str(notice["Message-ID"])},
            )
        )
    finally:
        intake.controller.stop()
    if row.state is InboundState.THREADED or "message_received" in stack.actions(number):
        problems.append(f"mail from the offered mediator threaded: {row.state} {row.reason}")
    added = [a for a in stack.actions(number)[len(before) :] if a != "mediator_offered"]
    if added:
        problems.append(f"recorded in the dispute: {added}")
    assert not problems, "\n".join(problems)


# --- k-anonymity: a label is safe when k partners are SHOWN as it --------------------------------


def test_a_vaguer_label_left_to_one_partner_does_not_name_it() -> None:
    """One platinum partner in UK-IE among three gold ones: "a partner in UK-IE" fits four, but
    if the gold ones are shown as "a gold partner in UK-IE", the vaguer label is only ever the
    platinum one's, and names it."""
    partners = (
        KnownPartner("contoso", "Contoso", "platinum", ("UK-IE",)),
        *(KnownPartner(f"gold{i}", f"Gold {i}", "gold", ("UK-IE",)) for i in range(3)),
        *(KnownPartner(f"dach{i}", f"Dach {i}", "platinum", ("DACH",)) for i in range(3)),
    )
    population = Population(partners, k=3)
    shown: dict[str, set[str]] = {}
    for partner in partners:
        shown.setdefault(population.label(partner.tier, partner.regions[0]), set()).add(partner.id)
    small = {label: who for label, who in shown.items() if len(who) < 3}
    assert not small, f"labels shown for fewer than k partners: {small}"


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_no_label_of_the_demo_directory_is_shown_for_fewer_than_k_partners(k: int) -> None:
    from tests.precedents.test_anonymity import demo_population

    population = demo_population(k)
    shown: dict[str, set[str]] = {}
    for partner in population.partners:
        for region in partner.regions:
            shown.setdefault(population.label(partner.tier, region), set()).add(partner.id)
    assert all(len(who) >= k for who in shown.values()), shown


def test_another_partners_contact_written_surname_first_is_scrubbed() -> None:
    """Not a party's contact (only full names of those are scrubbed): "Quinn, Nora", as lists
    and signatures write it, is the same person as "Nora Quinn"."""
    population = Population(
        (
            KnownPartner("contoso", "Contoso Ltd", "gold", ("UK-IE",), (), ()),
            KnownPartner("fabrikam", "Fabrikam", "gold", ("UK-IE",), (), ()),
            KnownPartner("northwind", "Northwind Traders", "gold", ("UK-IE",), (), ("Nora Quinn",)),
        ),
        k=3,
    )
    parties = [
        {"partner_id": "contoso", "name": "Contoso Ltd", "tier": "gold", "region": "UK-IE"},
        {"partner_id": "fabrikam", "name": "Fabrikam", "tier": "gold", "region": "UK-IE"},
    ]
    names = population.names(parties)
    for written in ("Nora Quinn", "Nora\nQuinn", "Quinn, Nora", "QUINN,  Nora"):
        out = scrub_text(f"cc {written} on the thread", names)
        assert "Quinn" not in out.title() and "Nora" not in out.title(), out


def test_a_long_run_of_word_characters_and_dots_is_scrubbed_in_one_pass() -> None:
    """Facts of "ab.cdab.cd..." (no "@" anywhere): the address pattern was tried from every
    character inside the run and read it to its end each time, quadratic: 20 KB (the limit of
    a filing's facts) took 2 s, on every partner's view of the precedent, and 100 KB about a
    minute. Seen running that long before the fix; a single pass now."""
    text = "ab.cd" * 20_000
    assert shown(text) == text


@pytest.mark.parametrize("written", ["0" * 60 + "m", "1234567890" * 6 + "x", "4711" * 15 + "-A"])
def test_a_long_digit_run_before_a_letter_is_scrubbed_in_one_pass(written: str) -> None:
    """The telephone pattern's digit groups, their separators optional, split a run of digits
    every possible way before failing on the letter after it: exponential (20 digits: 0.08 s,
    60: never finished). A partner's facts with one such run wedged every view of the
    precedent. Seen hanging before the fix."""
    assert shown(f"see {written} here") == f"see {written} here"
