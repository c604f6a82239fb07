"""Admins maintain the directory from a file: on the command line, the directory page or the
API; a bad file names each problem and imports nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from accord.directory.demo import DEMO
from accord.directory.records import (
    DirectoryError,
    check_references,
    import_directory,
    parse_directory,
)
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT
from accord.playbooks.library import Playbook, PlaybookLibrary
from models.tables import Partner, PartnerContact, Person
from tests.cli.test_cli import accord
from tests.conftest import Stack, seed
from tests.web_harness import api, make_app, messages, signed_in, token_for

NEW_PARTNER = """
partners:
  - id: bluesky
    name: Blue Sky Resellers
    tier: silver
    regions: [APAC]
    calendar: AU-NSW
    email_domains: [bluesky.example]
    contacts: [{name: Bea Lim, email: bea@bluesky.example}]
people:
  - {id: ravi.mediator, name: Ravi Rao, email: ravi.rao@vendor.example, role: mediator, calendar: AU-NSW}
territories:
  - {code: AU-NSW-ENT, name: NSW enterprise, partner_id: bluesky, exclusive: true}
"""

BROKEN = """
partners:
  - id: broken
    name: Broken Partner
    tier: diamond
    regions: [EU]
    calendar: FR
territories:
  - {code: NOWHERE, name: Nowhere, partner_id: ghost}
"""


# Every declared conflict below names something real, in the file or already in the demo
# directory, except the last four; and neither calendar is one the playbook knows.
UNKNOWN_REFERENCES = """
partners:
  - {id: bluesky, name: Blue Sky Resellers, tier: silver, regions: [APAC], calendar: ATLANTIS}
people:
  - id: ravi.mediator
    name: Ravi Rao
    email: ravi.rao@vendor.example
    role: mediator
    calendar: MARS
    declared_conflicts: [adatum, bluesky, account:ACME-001, territory:AU-NSW-ENT, account:NEW-1,
                         ghost, account:NOPE, territory:NOWHERE, deal_registration:DR-1]
territories:
  - {code: AU-NSW-ENT, name: NSW enterprise, partner_id: bluesky, exclusive: true}
accounts:
  - {code: NEW-1, name: New account, partner_id: bluesky}
"""

UNKNOWN_REFERENCE_PROBLEMS = [
    "partners[bluesky].calendar: 'ATLANTIS' is not a calendar of playbook 2026.2",
    "people[ravi.mediator].calendar: 'MARS' is not a calendar of playbook 2026.2",
    "people[ravi.mediator].declared_conflicts: no partner 'ghost'",
    "people[ravi.mediator].declared_conflicts: no account 'NOPE'",
    "people[ravi.mediator].declared_conflicts: no territory 'NOWHERE'",
    "people[ravi.mediator].declared_conflicts: 'deal_registration:DR-1' is not a partner id,"
    " account:<code> or territory:<code>",
]


def partner_ids(stack: Stack) -> set[str]:
    with stack.sessions.read() as session:
        return set(session.exec(select(Partner.id)).all())


async def test_the_command_imports_a_directory_file_and_names_each_problem(
    stack: Stack, tmp_path: Path
) -> None:
    good = tmp_path / "directory.yaml"
    good.write_text(NEW_PARTNER)
    code, out = await accord(stack, "import-directory", str(good))
    assert code == 0, out
    assert "imported 1 partners, 1 people, 1 territories, 0 accounts" in out
    code, out = await accord(stack, "import-directory", str(good))  # again: changes nothing
    assert code == 0, out
    with stack.sessions.read() as session:
        assert session.exec(
            select(PartnerContact).where(PartnerContact.partner_id == "bluesky")
        ).one()
        assert session.get(Person, "ravi.mediator") is not None
    bad = tmp_path / "broken.yaml"
    bad.write_text(BROKEN)
    code, out = await accord(stack, "import-directory", str(bad))
    assert code == 2
    assert "partners[0].tier: Input should be 'registered', 'silver', 'gold' or 'platinum'" in out
    assert "broken" not in partner_ids(stack)
    code, out = await accord(stack, "import-directory", str(tmp_path / "missing.yaml"))
    assert code == 2 and "No such file" in out


async def test_an_admin_imports_from_the_directory_page_all_or_nothing(stack: Stack) -> None:
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    half_bad = NEW_PARTNER + "accounts:\n  - {code: ACME-X, name: Acme X, partner_id: ghost}\n"
    response = await admin.post(
        "/admin/directory/import",
        {},
        files={"directory": ("directory.yaml", half_bad.encode(), "application/yaml")},
    )
    assert response.status_code == 422
    assert "no partner &#39;ghost&#39;" in response.text
    assert "bluesky" not in partner_ids(stack)  # nothing of the file was imported
    response = await admin.post(
        "/admin/directory/import",
        {},
        files={"directory": ("directory.yaml", NEW_PARTNER.encode(), "application/yaml")},
    )
    assert response.status_code == 303
    page = await admin.get("/admin/directory")
    assert "imported 1 partners" in " ".join(messages(page.text))
    assert "Blue Sky Resellers" in page.text
    async with api(app, token_for(stack, "nora@northwind.example")) as partner:
        response = await partner.post("/api/directory", json={"partners": []})
        assert response.status_code == 403
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        response = await client.post(
            "/api/directory",
            json={
                "people": [
                    {
                        "id": "x",
                        "name": "X",
                        "email": "x@vendor.example",
                        "role": "wizard",
                        "calendar": "FR",
                    }
                ]
            },
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"].startswith("people")


async def test_an_admin_edits_a_partner_and_a_person_with_each_field_checked(
    stack: Stack,
) -> None:
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    response = await admin.post(
        "/admin/partners/contoso",
        {
            "tier": "platinum",
            "calendar": "US-CA",
            "email_domains": "contoso.example, Contoso.EU",
            "active": "on",
        },
    )
    assert response.status_code == 303
    with stack.sessions.read() as session:
        contoso = session.get(Partner, "contoso")
        assert contoso is not None
        assert (contoso.tier.value, contoso.calendar, contoso.email_domains, contoso.active) == (
            "platinum",
            "US-CA",
            ["contoso.example", "contoso.eu"],
            True,
        )
    bad = await admin.post(
        "/admin/partners/contoso",
        {"tier": "diamond", "calendar": "MARS", "email_domains": "not a domain"},
    )
    assert bad.status_code == 422
    assert "<strong>tier</strong>" in bad.text
    assert "<strong>email_domains</strong>" in bad.text
    bad_calendar = await admin.post("/admin/partners/contoso", {"calendar": "MARS"})
    assert bad_calendar.status_code == 422 and "not a calendar of the playbook" in bad_calendar.text
    bad_person = await admin.post("/admin/people/kenji.sato", {"case_limit": "lots"})
    assert bad_person.status_code == 422 and "case_limit" in bad_person.text
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        response = await client.patch("/api/directory/people/kenji.sato", json={"case_limit": 3})
        assert response.json()["case_limit"] == 3
        response = await client.patch("/api/directory/partners/ghost", json={"active": False})
        assert response.status_code == 404
    async with api(app, token_for(stack, "carol.compliance@vendor.example")) as client:
        response = await client.patch("/api/directory/partners/contoso", json={"active": False})
        assert response.status_code == 403


def test_declared_conflicts_and_calendars_must_name_what_exists(database_url: str) -> None:
    sessions = SessionFactory(make_engine(database_url))
    playbook = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.2")
    with sessions.begin() as session:
        check_references(session, DEMO, playbook)  # the demo directory is consistent
    seed(sessions)
    with sessions.read() as session, pytest.raises(DirectoryError) as refused:
        check_references(session, parse_directory(UNKNOWN_REFERENCES), playbook)
    problems = refused.value.problems
    for expected in UNKNOWN_REFERENCE_PROBLEMS:
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == len(UNKNOWN_REFERENCE_PROBLEMS), problems
    assert "(US-NY, US-CA, DE-BY" in problems[0]  # says which calendars there are


async def test_an_import_naming_unknown_conflicts_or_calendars_writes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    bad = tmp_path / "unknown.yaml"
    bad.write_text(UNKNOWN_REFERENCES)
    code, out = await accord(stack, "import-directory", str(bad))
    assert code == 2, out
    for expected in UNKNOWN_REFERENCE_PROBLEMS:
        assert f"error: {bad}: {expected}" in out, out
    assert "bluesky" not in partner_ids(stack)
    with stack.sessions.read() as session:
        assert session.get(Person, "ravi.mediator") is None
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    response = await admin.post(
        "/admin/directory/import",
        {},
        files={"directory": ("directory.yaml", UNKNOWN_REFERENCES.encode(), "application/yaml")},
    )
    assert response.status_code == 422
    assert "<strong>people[ravi.mediator].declared_conflicts</strong>" in response.text
    assert "no partner &#39;ghost&#39;" in response.text
    assert "&#39;MARS&#39; is not a calendar of playbook 2026.2" in response.text
    assert "bluesky" not in partner_ids(stack)


async def test_an_admin_may_declare_only_conflicts_the_directory_knows(stack: Stack) -> None:
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    bad = await admin.post(
        "/admin/people/kenji.sato", {"case_limit": "4", "declared_conflicts": "adatum, ghost"}
    )
    assert bad.status_code == 422
    assert "<strong>declared_conflicts</strong>" in bad.text
    assert "no partner &#39;ghost&#39;" in bad.text
    with stack.sessions.read() as session:
        kenji = session.get(Person, "kenji.sato")
        assert kenji is not None and (kenji.case_limit, kenji.declared_conflicts) == (6, [])
    good = await admin.post(
        "/admin/people/kenji.sato",
        {"case_limit": "4", "declared_conflicts": "adatum, territory:DE-BY, account:ACME-001"},
    )
    assert good.status_code == 303
    with stack.sessions.read() as session:
        kenji = session.get(Person, "kenji.sato")
        assert kenji is not None
        assert kenji.declared_conflicts == ["adatum", "territory:DE-BY", "account:ACME-001"]
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        response = await client.patch(
            "/api/directory/people/kenji.sato",
            json={"declared_conflicts": ["account:NOPE", "lead:L-1"]},
        )
        assert response.status_code == 422
        errors = response.json()["errors"]
        assert [e["field"] for e in errors] == ["declared_conflicts", "declared_conflicts"]
        assert "no account 'NOPE'" in errors[0]["message"]
        assert "'lead:L-1' is not a partner id" in errors[1]["message"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "accounts: [{code: X-1, name: X, partner_id: northwind, owner_person_id: ''}]",
            "accounts[0].owner_person_id: String should have at least 1 character",
        ),
        (
            f"territories: [{{code: {'T' * 65}, name: T, partner_id: northwind}}]",
            "territories[0].code: String should have at most 64 characters",
        ),
    ],
)
def test_an_empty_or_overlong_id_is_named_never_a_database_error(
    database_url: str, text: str, problem: str
) -> None:
    sessions = SessionFactory(make_engine(database_url))
    playbook = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.1")
    seed(sessions)
    with pytest.raises(DirectoryError) as refused:
        import_text(sessions, text, playbook)
    assert refused.value.problems == [problem]


def import_text(sessions: SessionFactory, text: str, playbook: Playbook) -> None:
    """As the command and the directory page import: parse, check, import in one transaction."""
    directory = parse_directory(text)
    with sessions.begin() as session:
        check_references(session, directory, playbook)
        import_directory(session, directory)
