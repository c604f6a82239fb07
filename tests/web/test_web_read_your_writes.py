"""What a person sees right after acting includes what their action did: the page a form lands
on, the API read and the `accord show` that follow an action show the records the workflow had
made or begun by the time it answered, although they read the read model, not the engine.

The race is made to happen every time: the record that starts mediation is held after the
workflow has answered the acceptance, and let go a moment later."""

from __future__ import annotations

import asyncio

from models.enums import DisputeStage
from tests.cli.test_cli import accord
from tests.conftest import Stack
from tests.races import Gate
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import DECLARATION, offered

HOLD_SECONDS = 1.0
"""How long the record that starts mediation is held: well within the action's wait."""


async def _let_go(gate: Gate) -> None:
    await gate.reached()
    await asyncio.sleep(HOLD_SECONDS)
    gate.release()


async def _offered(race: Stack) -> tuple[str, str]:
    """A dispute offered to a mediator, with the offer recorded: its number and the mediator."""
    number = (await race.file()).number
    mediator = await offered(race, number)
    await race.wait_for_event(number, "mediator_offered")
    return number, mediator


def _hold_mediation_start(gates: dict[str, Gate]) -> asyncio.Task[None]:
    gate = gates["record_event"]
    gate.hold(lambda record: record.action == f"stage_{DisputeStage.MEDIATION.value}")
    return asyncio.create_task(_let_go(gate))


async def test_the_page_a_mediator_lands_on_after_accepting_shows_mediation(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number, mediator = await _offered(race)
    browser = await signed_in(make_app(race), f"{mediator}@vendor.example")
    released = _hold_mediation_start(gates)
    try:
        page = await browser.post(
            f"/disputes/{number}/actions/accept-assignment",
            {"impartiality_declaration": DECLARATION},
            follow_redirects=True,
        )
        assert released.done(), "the page was answered while mediation's start was held"
    finally:
        gates["record_event"].release()
        await released
        await browser.close()
    assert page.status_code == 200, page.text
    assert "mediation has begun" in page.text
    # The mediator's next actions are on the page they landed on, not after a reload.
    assert 'id="action-add-note"' in page.text, page.text
    assert 'id="action-accept-assignment"' not in page.text


async def test_an_api_read_right_after_an_action_shows_what_it_did(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number, mediator = await _offered(race)
    app = make_app(race)
    released = _hold_mediation_start(gates)
    async with api(app, token_for(race, f"{mediator}@vendor.example")) as client:
        try:
            answer = await client.post(
                f"/api/disputes/{number}/accept-assignment",
                json={"impartiality_declaration": DECLARATION},
            )
            assert released.done(), "the action was answered while mediation's start was held"
        finally:
            gates["record_event"].release()
            await released
        assert answer.status_code == 200, answer.text
        assert answer.json()["stage"] == DisputeStage.MEDIATION.value
        shown = await client.get(f"/api/disputes/{number}")
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["state"]["stage"] == DisputeStage.MEDIATION.value, detail
    assert detail["record"]["stage"] == DisputeStage.MEDIATION.value, detail
    assert "add-note" in detail["actions"], detail


async def test_accord_show_right_after_accord_accept_shows_mediation(
    race: Stack, gates: dict[str, Gate]
) -> None:
    number, mediator = await _offered(race)
    released = _hold_mediation_start(gates)
    try:
        code, said = await accord(
            race, "accept", number, "--as", mediator, "--declaration", DECLARATION
        )
        assert released.done(), "the command answered while mediation's start was held"
    finally:
        gates["record_event"].release()
        await released
    assert code == 0 and "mediation has begun" in said, said
    code, shown = await accord(race, "show", number)
    assert code == 0, shown
    assert shown.splitlines()[0].split()[:2] == [number, "mediation"], shown
