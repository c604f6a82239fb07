"""Probes of the README's "Who reads what" table against the real pages and API (not
accord.disputes.access alone): a seated panel member asks for the dispute's caucus note by every route
a person or a script has, after the mediation it was written in failed into review."""

from __future__ import annotations

from typing import Any

from models.enums import NoteVisibility
from models.payloads import AddNote, DeclareImpasse
from tests.conftest import Stack
from tests.web.test_web_access import CAUCUS_TEXT
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import contoso_asked, in_mediation
from workflows.dispute import DisputeWorkflow

PANELIST = "b.sales@vendor.example"
COMPLIANCE = "carol.compliance@vendor.example"


async def test_a_seated_panel_member_reads_no_caucus_note_by_any_route(stack: Stack) -> None:
    app = make_app(stack)
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.add_note,
        AddNote(
            actor=stack.actor(mediator),
            text=CAUCUS_TEXT,
            visibility=NoteVisibility.CAUCUS,
            caucus_partner_id="northwind",
        ),
    )
    await stack.handle(number).execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=stack.actor(mediator), reason="Neither side will move."),
    )
    await stack.wait_for(number, lambda s: s.review is not None)
    secret = CAUCUS_TEXT.split(":")[1].strip()
    seen: dict[str, str] = {}
    browser = await signed_in(app, PANELIST)
    try:
        for path in (
            f"/disputes/{number}",
            f"/disputes/{number}/timeline",
            "/review",
            "/inbox",
            f"/search?q={secret.split()[2]}",
        ):
            page = await browser.get(path)
            seen[f"page {path}"] = f"{page.status_code} {page.text}"
    finally:
        await browser.close()
    async with api(app, token_for(stack, PANELIST)) as client:
        for path in (
            f"/api/disputes/{number}",
            f"/api/disputes/{number}/timeline",
            "/api/tasks",
            f"/api/disputes/{number}/audit",
        ):
            answer = await client.get(path)
            seen[f"api {path}"] = f"{answer.status_code} {answer.text}"
    assert seen[f"page /disputes/{number}"].startswith("200"), "the panel reads the case"
    leaked = [where for where, text in seen.items() if secret in text]
    assert not leaked, leaked
    # Compliance reads it (the table's other half), on the same routes.
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        detail = await client.get(f"/api/disputes/{number}")
        assert secret in detail.text


async def test_a_party_reads_no_task_of_the_other_side(stack: Stack) -> None:
    """The table: information requests, "own side's"; the brief: a partner never sees the other
    side's tasks. The request itself was filtered out of the other side's view, the task it
    opened for Contoso was not: Northwind's /api/disputes/N listed `answer_information` for
    `contoso` with its due date. (The deadline stays: deadlines are the case summary's.)"""

    app = make_app(stack)
    number, _ = await contoso_asked(stack, "Send the form.")
    await stack.wait_for(number, lambda s: s.clock_paused)

    async def state_for(login: str) -> dict[str, Any]:
        async with api(app, token_for(stack, login)) as client:
            answer = await client.get(f"/api/disputes/{number}")
            assert answer.status_code == 200, answer.text
            return answer.json()["state"]  # type: ignore[no-any-return]

    northwind = await state_for("nora@northwind.example")
    assert not [t for t in northwind["open_tasks"] if t["assignee"] == "contoso"], northwind
    assert northwind["information_requests"] == []
    assert [t["kind"] for t in northwind["open_tasks"]] == ["mediate"]  # the mediator's: shared
    contoso = await state_for("carl@contoso.example")
    assert [t["kind"] for t in contoso["open_tasks"] if t["assignee"] == "contoso"] == [
        "answer_information"
    ]
