"""Probe of the volume limits (accord.disputes.texts): what the dispute refused was not said, so it
takes no place under a limit. A party whose actions were refused (the stage or its role did not
allow them) still has its places for what it may say. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlmodel import select

from models.tables import DisputeText
from tests.conftest import Stack
from tests.web_harness import api, make_app, token_for
from tests.workflows.test_history_size import in_mediation

CLAIMANT = "nora@northwind.example"


async def test_refused_actions_take_no_place_under_the_sender_s_limit(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    stack.settings.texts_per_sender = 2
    number, mediator = await in_mediation(stack)
    app = make_app(stack)
    async with api(app, token_for(stack, mediator)) as med:
        asked = await med.post(
            f"/api/disputes/{number}/request-information",
            json={"party_id": "northwind", "questions": "Send the March pipeline export."},
        )
        assert asked.status_code == 200, asked.text
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        # Notes are the mediator's: refused, twice, with different texts.
        for n in (1, 2):
            refused = await nora.post(
                f"/api/disputes/{number}/add-note", json={"text": f"Not mine to write {n}."}
            )
            assert refused.status_code == 409, refused.text
        # An answer to a request that does not exist: refused too.
        wrong = await nora.post(
            f"/api/disputes/{number}/answer-information",
            json={"request_id": "info-99", "answer": "An answer to nothing."},
        )
        assert wrong.status_code == 409, wrong.text
        # What she may say still has both its places.
        answered = await nora.post(
            f"/api/disputes/{number}/answer-information",
            json={"request_id": "info-1", "answer": "Attached: the March pipeline export."},
        )
        assert answered.status_code == 200, answered.text
        # The same refused note again: refused for what it is, not for a limit.
        again = await nora.post(
            f"/api/disputes/{number}/add-note", json={"text": "Not mine to write 1."}
        )
        assert again.status_code == 409, again.text
    state = await stack.state(number)
    assert state.information_requests[0].answered_at is not None
    with stack.sessions.read() as session:
        # The refused texts stay stored (append-only), set aside.
        hers = session.exec(
            select(DisputeText).where(DisputeText.author == stack.actor(CLAIMANT).id)
        ).all()
        assert sorted(t.kind for t in hers) == ["answer", "answer", "note", "note"]
