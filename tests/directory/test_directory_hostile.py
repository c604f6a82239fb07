"""Hostile directory files: each is refused naming the field (a 422 on the web, exit 2 on the
command line), never a database error, and nothing of it is written. Spellings that differ only
in case or look-alike letters cannot dodge screening. Both databases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from accord.directory.records import DirectoryError, resolve_actor
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import PlaybookLibrary
from activities.assignment import AssignmentActivities, PanelActivities
from models.enums import DisputeCategory, DisputeStage
from models.payloads import MediatorRequest, PanelRequest
from models.tables import Account, Dispute, Partner, PartnerContact, Person, Territory
from tests.cli.test_cli import accord
from tests.conftest import Stack, seed
from tests.directory.test_directory_import import import_text
from tests.web_harness import api, make_app, signed_in, token_for

PLAYBOOK = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.1")
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    return factory


def person(**fields: object) -> dict[str, object]:
    return {
        "id": "ravi.mediator",
        "name": "Ravi Rao",
        "email": "ravi.rao@vendor.example",
        "role": "mediator",
        "calendar": "US-NY",
    } | fields


def partner(**fields: object) -> dict[str, object]:
    return {
        "id": "bluesky",
        "name": "Blue Sky",
        "tier": "silver",
        "regions": ["APAC"],
        "calendar": "US-NY",
    } | fields


def people(*records: dict[str, object]) -> str:
    return json.dumps({"people": list(records)})


HOSTILE: dict[str, tuple[str, list[str]]] = {
    "nul_in_a_name": (people(person(name="Ravi\x00Rao")), ["people[0].name", "U+0000"]),
    "nul_in_an_id": (people(person(id="ravi\x00")), ["people[0].id", "U+0000"]),
    "nul_in_a_conflict": (
        people(person(declared_conflicts=["adatum\x00"])),
        ["people[0].declared_conflicts[0]", "U+0000"],
    ),
    "nul_in_a_region": (
        json.dumps({"partners": [partner(regions=["AP\x00AC"])]}),
        ["partners[0].regions[0]", "U+0000"],
    ),
    "a_lone_surrogate": (
        people(person(name="Ravi \ud800")),
        ["people[0].name", "unpaired surrogate"],
    ),
    "a_huge_case_limit": (
        people(person(case_limit=10**12)),
        ["people[0].case_limit", "less than or equal to 500"],
    ),
    "a_negative_case_limit": (
        people(person(case_limit=-5)),
        ["people[0].case_limit", "greater than or equal to 0"],
    ),
    "the_email_of_someone_else": (
        people(person(email="Greta.Hoffmann@vendor.example")),
        ["people[ravi.mediator].email", "is the email of greta.hoffmann"],
    ),
    "one_email_twice_in_the_file": (
        people(
            person(id="a.one", email="same@vendor.example"),
            person(id="a.two", email="SAME@vendor.example"),
        ),
        ["people[a.two].email", "same@vendor.example is also the email of a.one"],
    ),
    "one_contact_under_two_partners": (
        json.dumps(
            {
                "partners": [
                    partner(id=pid, contacts=[{"name": "Sam", "email": "sam@shared.example"}])
                    for pid in ("alpha", "beta")
                ]
            }
        ),
        ["partners[beta].contacts", "sam@shared.example is also a contact of alpha"],
    ),
    "one_crm_id_for_two_partners_in_the_file": (
        json.dumps(
            {"partners": [partner(id=pid, crm_id="0015g00000SAMEAAA") for pid in ("a", "b")]}
        ),
        ["partners[b].crm_id", "0015g00000SAMEAAA is also the CRM id of a"],
    ),
    "a_country_of_a_territory_that_is_no_code": (
        json.dumps({"territories": [{"code": "NEW", "name": "New", "countries": ["Germany"]}]}),
        ["territories[0].countries[0]", "'Germany' is not a two-letter country code"],
    ),
    "a_partner_id_with_a_cyrillic_o": (
        json.dumps({"partners": [partner(id="c\u043entoso")]}),
        ["partners[0].id", "U+043E"],
    ),
    "a_territory_code_differing_only_in_case_from_a_stored_one": (
        json.dumps({"territories": [{"code": "de-by", "name": "Bavaria again"}]}),
        ["territories[de-by].code", "differs only in case from territory DE-BY"],
    ),
    "two_account_codes_differing_only_in_case_in_the_file": (
        json.dumps(
            {"accounts": [{"code": "NEW-1", "name": "New"}, {"code": "new-1", "name": "new"}]}
        ),
        ["accounts[new-1].code", "differs only in case from account NEW-1"],
    ),
}


def counts(sessions: SessionFactory) -> tuple[int, ...]:
    with sessions.read() as session:
        return tuple(
            len(session.exec(select(table)).all())
            for table in (Partner, PartnerContact, Person, Territory, Account)
        )


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_refused_naming_the_field_and_writes_nothing(
    sessions: SessionFactory, case: str
) -> None:
    text, expected = HOSTILE[case]
    before = counts(sessions)
    with pytest.raises(DirectoryError) as refused:
        import_text(sessions, text, PLAYBOOK)
    assert any(all(part in p for part in expected) for p in refused.value.problems), (
        refused.value.problems
    )
    assert counts(sessions) == before


def test_every_problem_of_a_file_is_named_at_once(sessions: SessionFactory) -> None:
    text = people(
        person(email="greta.hoffmann@vendor.example"),
        person(id="zoe", email="zoe@vendor.example", case_limit=-1),
    )
    with pytest.raises(DirectoryError) as refused:
        import_text(sessions, text, PLAYBOOK)
    assert ["people[1].case_limit" in p for p in refused.value.problems] == [True]
    # The database checks wait for a file of the right shape; the shape is named first.
    text = json.dumps(
        {
            "people": [person(email="greta.hoffmann@vendor.example")],
            "territories": [{"code": "de-by", "name": "Bavaria"}],
        }
    )
    with pytest.raises(DirectoryError) as refused:
        import_text(sessions, text, PLAYBOOK)
    assert sorted(p.partition(":")[0] for p in refused.value.problems) == [
        "people[ravi.mediator].email",
        "territories[de-by].code",
    ]


def test_a_persons_email_is_stored_lower_case_so_they_can_sign_in_by_it(
    sessions: SessionFactory,
) -> None:
    import_text(sessions, people(person(email=" Ravi.Rao@Vendor.example")), PLAYBOOK)
    with sessions.read() as session:
        assert session.get(Person, "ravi.mediator").email == "ravi.rao@vendor.example"  # type: ignore[union-attr]
        assert resolve_actor(session, "Ravi.Rao@Vendor.example").id == "ravi.mediator"


# --- functions are compared as stored: trimmed and lower-case -------------------------------


def only_mediator(sessions: SessionFactory, **fields: object) -> None:
    """Every demo mediator inactive; one new vendor mediator, imported as an admin would."""
    with sessions.begin() as session:
        for p in session.exec(select(Person).where(Person.role == "mediator")).all():
            p.active = False
            session.add(p)
    import_text(sessions, people(person(**fields)), PLAYBOOK)


def dispute(sessions: SessionFactory, number: str, claimant: str, respondent: str) -> Dispute:
    d = Dispute(
        number=number,
        category=DisputeCategory.CHANNEL_VS_DIRECT,
        claimant_id=claimant,
        respondent_ids=[respondent],
        party_key="|".join(sorted((claimant, respondent))),
        contested_objects=[],
        summary="Direct undercut",
        facts="Direct sales quoted below the floor.",
        desired_remedy="Rebate",
        amount_at_stake=Decimal("10.00"),
        currency="USD",
        occurred_on=date(2026, 11, 20),
        stage=DisputeStage.TRIAGE,
        playbook_version="2026.1",
        filed_at=NOW,
        updated_at=NOW,
        filed_by=f"x@{claimant}.example",
    )
    with sessions.begin() as session:
        session.add(d)
    return d


@pytest.mark.parametrize("function", ["Sales", "SALES", " sales"])
def test_a_vendor_sales_mediator_spelt_in_capitals_is_still_barred_against_direct_sales(
    sessions: SessionFactory, function: str
) -> None:
    only_mediator(sessions, function=function)
    with sessions.read() as session:
        assert session.get(Person, "ravi.mediator").function == "sales"  # type: ignore[union-attr]
    d = dispute(sessions, "DSP-2026-900001", "direct-sales", "northwind")
    choice = AssignmentActivities(sessions).assign_mediator(
        MediatorRequest(
            number=d.number,
            round=1,
            party_ids=(d.claimant_id, *d.respondent_ids),
            contested_objects=(),
            excluded_person_ids=(),
            at=NOW,
        )
    )
    assert choice.person_id is None, choice.reason


def test_board_members_spelt_Finance_and_Chair_sit_for_finance_and_chair(
    sessions: SessionFactory,
) -> None:
    with sessions.begin() as session:
        for pid in ("board.finance", "board.chair"):
            session.delete(session.get(Person, pid))
    import_text(
        sessions,
        people(
            person(id="felix", email="felix@vendor.example", role="board", function="Finance"),
            person(id="charles", email="charles@vendor.example", role="board", function="Chair"),
        ),
        PLAYBOOK,
    )
    d = dispute(sessions, "DSP-2026-900002", "northwind", "contoso")
    panel = PanelActivities(sessions).draw_panel(
        PanelRequest(
            number=d.number,
            party_ids=("northwind", "contoso"),
            contested_objects=(),
            excluded_person_ids=(),
            functions=("sales", "marketing", "product", "finance", "partner_management"),
            round=1,
            at=NOW,
        )
    )
    assert panel.complete, panel.reason
    assert {m.function: m.person_id for m in panel.members}["finance"] == "felix"
    assert panel.chair is not None and panel.chair.person_id == "charles"


# --- the same through the API, the directory page and the command ----------------------------


async def test_the_api_and_the_page_answer_hostile_directories_with_a_422(
    stack_on_both: Stack,
) -> None:
    app = make_app(stack_on_both)
    statuses: dict[str, int] = {}
    async with api(app, token_for(stack_on_both, "ada.admin@vendor.example")) as client:
        for case in ("nul_in_a_name", "a_huge_case_limit", "the_email_of_someone_else"):
            response = await client.post("/api/directory", json=json.loads(HOSTILE[case][0]))
            statuses[f"api {case}"] = response.status_code
        response = await client.patch(
            "/api/directory/people/kenji.sato", json={"declared_conflicts": ["adatum\x00"]}
        )
        statuses["patch a conflict with a NUL"] = response.status_code
        response = await client.patch("/api/directory/people/kenji%00sato", json={"active": True})
        statuses["patch a person id with a NUL"] = response.status_code
        response = await client.patch("/api/directory/partners/north%00wind", json={})
        statuses["patch a partner id with a NUL"] = response.status_code
    admin = await signed_in(app, "ada.admin@vendor.example")
    for case in ("nul_in_a_name", "the_email_of_someone_else"):
        response = await admin.post(
            "/admin/directory/import",
            {},
            files={"directory": ("d.yaml", HOSTILE[case][0].encode(), "application/yaml")},
        )
        statuses[f"page {case}"] = response.status_code
    assert statuses == {
        "api nul_in_a_name": 422,
        "api a_huge_case_limit": 422,
        "api the_email_of_someone_else": 422,
        "patch a conflict with a NUL": 422,
        # Refused at the boundary, naming the path parameter (models.text), as every route is.
        "patch a person id with a NUL": 422,
        "patch a partner id with a NUL": 422,
        "page nul_in_a_name": 422,
        "page the_email_of_someone_else": 422,
    }
    with stack_on_both.sessions.read() as session:
        assert session.get(Person, "ravi.mediator") is None


async def test_the_command_names_the_problem_of_a_hostile_file_and_exits_2(
    stack_on_both: Stack, tmp_path: Path
) -> None:
    results: dict[str, tuple[int, str]] = {}
    for case in ("nul_in_a_name", "the_email_of_someone_else"):
        path = tmp_path / f"{case}.yaml"
        path.write_text(HOSTILE[case][0])
        results[case] = await accord(stack_on_both, "import-directory", str(path))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("people: [{id: zoe, name: Zo\xeb}]".encode("latin-1"))
    results["latin1"] = await accord(stack_on_both, "import-directory", str(latin1))
    assert {k: code for k, (code, _) in results.items()} == dict.fromkeys(results, 2)
    assert not any("Traceback" in out for _, out in results.values()), results
    assert "people[0].name" in results["nul_in_a_name"][1]
    assert "is the email of greta.hoffmann" in results["the_email_of_someone_else"][1]
    assert "is not UTF-8" in results["latin1"][1]
