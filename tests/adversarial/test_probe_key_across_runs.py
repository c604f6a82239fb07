"""Probe: an action sent through the API under an Idempotency-Key, and sent again with the same
key after the dispute continued as new (a client retrying after a lost answer). It is applied
once, and the retry is answered as the first time: not with a refusal that tells the client
the action failed (it would send it again under a new key, and the dispute would hold it
twice). SQLite; the dev server suggests continuing as new early (tests/test_continue_as_new)."""

from __future__ import annotations

from models.enums import DisputeStage
from models.payloads import AcceptAssignment, AddNote
from tests.conftest import Stack
from tests.web_harness import api, make_app, token_for
from tests.workflows.test_continue_as_new import run_id
from workflows.dispute import DisputeWorkflow


async def test_a_key_sent_again_after_continue_as_new_is_answered_as_the_first_time(
    eager_stack: Stack,
) -> None:
    stack = eager_stack  # the dev server suggests continuing as new early
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    login = f"{state.candidate_mediator_id}@vendor.example"
    mediator = stack.actor(login)
    handle = stack.handle(number)
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=mediator, impartiality_declaration="No ties to either party."),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    app = make_app(stack)
    note = {"text": "Sent under a key, its answer lost on the way.", "visibility": "shared"}
    headers = {"Idempotency-Key": "lost-answer-1"}
    async with api(app, token_for(stack, login)) as client:
        first = await client.post(f"/api/disputes/{number}/add-note", json=note, headers=headers)
        assert first.status_code == 200, first.text
        first_run = await run_id(stack, number)
        sent = 1
        while await run_id(stack, number) == first_run:
            assert sent < 80, "the dispute never continued as new"
            await handle.execute_update(
                DisputeWorkflow.add_note, AddNote(actor=mediator, text=f"Note {sent}.")
            )
            sent += 1
        await stack.wait_for(number, lambda s: len(s.notes) == sent)
        again = await client.post(f"/api/disputes/{number}/add-note", json=note, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        # The key still holds its request: another body under it is refused, nothing done.
        other = await client.post(
            f"/api/disputes/{number}/add-note",
            json={"text": "Something else entirely.", "visibility": "shared"},
            headers=headers,
        )
        assert other.status_code == 422, other.text
    assert len((await stack.state(number)).notes) == sent
