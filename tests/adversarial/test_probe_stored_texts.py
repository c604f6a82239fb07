"""Probes of the stored texts (accord.disputes.texts): a text said privately and stored by reference is
read by exactly those who read it when it was inline, on every page, API response and
export, and the timeline still lists what each may see. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.web.test_web_access import CLAIMANT, OUTSIDER, RESPONDENT, Scenario
from tests.web_harness import api, make_app, signed_in, token_for
from workflows.dispute import DisputeWorkflow

ADMIN = "ada.admin@vendor.example"
STORED_CAUCUS = "Stored caucus to Northwind only: our walk-away floor is 41 percent"
STORED_QUESTIONS = "Stored question to Northwind only: send the March pipeline export please"


@pytest.fixture
async def stored(stack_on_both) -> Scenario:  # type: ignore[no-untyped-def]
    """The access matrix's dispute, plus a caucus note and an information request to Northwind
    sent by the mediator through the API (so stored as texts, carried by reference)."""
    built = Scenario(stack_on_both, make_app(stack_on_both))
    await built.build()
    async with api(built.app, token_for(built.stack, built.mediator)) as client:
        note = await client.post(
            f"/api/disputes/{built.number}/add-note",
            json={
                "text": STORED_CAUCUS,
                "visibility": "caucus",
                "caucus_partner_id": "northwind",
            },
        )
        assert note.status_code == 200, note.text
        asked = await client.post(
            f"/api/disputes/{built.number}/request-information",
            json={"party_id": "northwind", "questions": STORED_QUESTIONS},
        )
        assert asked.status_code == 200, asked.text
    state = await built.stack.handle(built.number).query(DisputeWorkflow.get_state)
    assert any(n.text_ref is not None for n in state.notes), "the note was not stored by reference"
    return built


def paths(s: Scenario) -> list[str]:
    n = s.number
    return [
        f"/disputes/{n}",
        f"/disputes/{n}/timeline",
        f"/api/disputes/{n}",
        f"/api/disputes/{n}/timeline",
    ]


async def test_the_other_side_reads_no_stored_caucus_note_or_question_anywhere(
    stored: Scenario,
) -> None:
    problems: list[str] = []
    for login in (RESPONDENT, OUTSIDER):
        browser = await signed_in(stored.app, login)
        async with api(stored.app, token_for(stored.stack, login)) as client:
            for path in paths(stored):
                response = await (
                    client.get(path) if path.startswith("/api") else browser.get(path)
                )
                for secret in (STORED_CAUCUS, STORED_QUESTIONS, "walk-away floor"):
                    if secret in response.text:
                        problems.append(f"{login} {path}: {secret!r}")
        await browser.close()
    assert not problems, "\n".join(problems)
    # And the side it was said to, and the mediator, do read them.
    for login in (CLAIMANT, stored.mediator):
        async with api(stored.app, token_for(stored.stack, login)) as client:
            body = (await client.get(f"/api/disputes/{stored.number}")).text
            assert STORED_CAUCUS in body and STORED_QUESTIONS in body, login


async def test_the_timeline_lists_a_stored_note_to_those_who_may_read_it(
    stored: Scenario,
) -> None:
    """A note entry holds the stored text's reference instead of its body: those who may read
    the note still see that it was added (before, only those who read the raw trail did)."""
    for login, sees in (
        (CLAIMANT, True),
        (stored.mediator, True),
        (ADMIN, True),
        (RESPONDENT, False),
    ):
        async with api(stored.app, token_for(stored.stack, login)) as client:
            entries = (await client.get(f"/api/disputes/{stored.number}/timeline")).json()
        notes = [e for e in entries if e["action"] == "note_added"]
        # Two caucus notes to Northwind: the matrix's inline one and the stored one.
        assert len(notes) == (2 if sees else 0), f"{login}: {notes}"


COMPLIANCE = "carol.compliance@vendor.example"


async def test_compliance_reads_the_stored_texts_in_the_audit_trail_and_its_export(
    stored: Scenario,
) -> None:
    """The trail's entries hold a stored text's id and hash; those who read the raw trail read
    the body with it (the page, the API and the export), as they did when it was inline."""
    n = stored.number
    async with api(stored.app, token_for(stored.stack, COMPLIANCE)) as client:
        for path in (
            f"/api/disputes/{n}/audit",
            f"/api/disputes/{n}/audit/export?format=json",
            f"/api/disputes/{n}/audit/export?format=csv",
        ):
            body = (await client.get(path)).text
            assert STORED_CAUCUS in body and STORED_QUESTIONS in body, path
    browser = await signed_in(stored.app, COMPLIANCE)
    try:
        page = (await browser.get(f"/disputes/{n}/audit")).text
        assert STORED_CAUCUS in page and STORED_QUESTIONS in page
    finally:
        await browser.close()
    # The other side never reads the trail at all.
    async with api(stored.app, token_for(stored.stack, RESPONDENT)) as client:
        assert (await client.get(f"/api/disputes/{n}/audit/export")).status_code in (403, 404)


def _bodies(message: object) -> str:
    parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]  # type: ignore[attr-defined]
    return "\n".join(str(p) for p in parts)


async def test_the_stored_question_is_mailed_to_its_side_only(stored: Scenario) -> None:
    mail = stored.stack.mail
    asked = await mail.wait_for(CLAIMANT, "Information requested")
    assert STORED_QUESTIONS in _bodies(asked)
    await stored.stack.recorded(stored.number)
    for message in mail.messages:
        if message["To"] == CLAIMANT or str(message["To"]).startswith(stored.mediator):
            continue
        text = _bodies(message)
        assert STORED_QUESTIONS not in text and STORED_CAUCUS not in text, message["To"]
