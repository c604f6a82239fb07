"""Every page of a dispute, read with the worker stopped: the live state (stage, deadlines,
offers, notes, requests, the actions on offer) comes from the read model the activities keep
(`accord.disputes.live`), never from the workflow, so nothing waits on the engine and nothing is lost
when it is down. Each role still sees only what it may. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from models.enums import NoteVisibility
from models.payloads import AddNote, DeclareImpasse, RequestInformation, RespondToOffer
from tests.conftest import MailCapture, Stack, cli_env, make_settings, seed
from tests.races import Gate
from tests.web.test_web_idempotency import form_fields
from tests.web_harness import api, make_app, messages, signed_in, token_for
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from workflows.dispute import DisputeWorkflow

CLAIMANT = "nora@northwind.example"
RESPONDENT = "carl@contoso.example"
OUTSIDER = "fay@fabrikam.example"
COMPLIANCE = "carol.compliance@vendor.example"
ADMIN = "ada.admin@vendor.example"
SHARED = "Both sides agree the registration dates are the question."
CAUCUS = "Private to Northwind: the floor is a 60/40 split."
QUESTIONS = "Please send the portal export of DR-2026-0042 with its timestamps."
TERMS = "Northwind keeps the registration; Contoso receives 30% of the commission."


class Stopped:
    """A dispute in mediation with a shared note, a caucus note with Northwind, a request to
    Contoso and an offer Contoso accepted; the worker stopped once the read model has it."""

    def __init__(self, stack: Stack, number: str, mediator: str) -> None:
        self.stack = stack
        self.number = number
        self.mediator = f"{mediator}@vendor.example"
        self.app = make_app(stack)


@pytest.fixture
async def stopped(
    env: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> Stopped:
    mail, port = smtp
    stack = Stack(env, make_settings(database_url, port, tmp_path), mail)
    seed(stack.sessions)
    async with stack.worker:
        number = (await stack.file()).number
        mediator = await in_mediation(stack, number)
        handle = stack.handle(number)
        actor = stack.actor(mediator)
        await handle.execute_update(DisputeWorkflow.add_note, AddNote(actor=actor, text=SHARED))
        await handle.execute_update(
            DisputeWorkflow.add_note,
            AddNote(
                actor=actor,
                text=CAUCUS,
                visibility=NoteVisibility.CAUCUS,
                caucus_partner_id="northwind",
            ),
        )
        await handle.execute_update(
            DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
        )
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(RESPONDENT), offer_id="offer-1", accept=True),
        )
        await handle.execute_update(
            DisputeWorkflow.request_information,
            RequestInformation(actor=actor, party_id="contoso", questions=QUESTIONS),
        )
        await stack.live_matches(number)
    # The worker is stopped: from here nothing answers a query.
    return Stopped(stack, number, mediator)


READERS = {
    # login: (sees the caucus note, sees the request to Contoso, offered a response to the offer)
    CLAIMANT: (True, False, True),
    RESPONDENT: (False, True, False),
    COMPLIANCE: (True, True, False),
    ADMIN: (True, True, False),
}


async def test_every_page_shows_the_live_state_with_the_worker_stopped(stopped: Stopped) -> None:
    number = stopped.number
    readers = {**READERS, stopped.mediator: (True, True, False)}
    for login, (caucus, request, respond) in readers.items():
        browser = await signed_in(stopped.app, login)
        page = await browser.get(f"/disputes/{number}")
        assert page.status_code == 200, (login, page.text[:300])
        html = page.text
        assert "did not answer" not in html, login
        assert 'class="stage awaiting_party"' in html, login
        assert SHARED in html and TERMS in html, login
        assert "Mediation clock paused" in html, login
        assert (CAUCUS in html) is caucus, login
        assert (QUESTIONS in html) is request, login
        assert (f"/disputes/{number}/actions/respond-to-offer" in html) is respond, login
        timeline = await browser.get(f"/disputes/{number}/timeline")
        assert timeline.status_code == 200 and "offer-1" in timeline.text, login
        await browser.close()

        async with api(stopped.app, token_for(stopped.stack, login)) as client:
            answer = await client.get(f"/api/disputes/{number}")
            assert answer.status_code == 200, (login, answer.text[:300])
            body = answer.json()
            state = body["state"]
            assert state is not None, login
            assert state["stage"] == "awaiting_party" and state["clock_paused"], login
            notes = [n["text"] for n in state["notes"]]
            assert SHARED in notes and (CAUCUS in notes) is caucus, login
            assert [o["responses"] for o in state["offers"]] == [{"contoso": True}], login
            assert bool(state["information_requests"]) is request, login
            assert ("respond-to-offer" in body["actions"]) is respond, login

    mediator = await signed_in(stopped.app, stopped.mediator)
    inbox = await mediator.get("/inbox")
    assert inbox.status_code == 200 and number in inbox.text
    page = await mediator.get(f"/disputes/{number}")
    assert f"/disputes/{number}/actions/add-note" in page.text
    await mediator.close()

    outsider = await signed_in(stopped.app, OUTSIDER)
    assert (await outsider.get(f"/disputes/{number}")).status_code == 404
    await outsider.close()


async def test_accord_show_reads_the_live_state_with_the_worker_stopped(stopped: Stopped) -> None:
    env = cli_env(stopped.stack)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        "show",
        stopped.number,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    shown = json.loads(out)
    assert shown["stage"] == "awaiting_party"
    assert [n["text"] for n in shown["notes"]] == [SHARED, CAUCUS]
    assert shown["offers"][0]["terms"] == TERMS
    assert shown["information_requests"][0]["questions"] == QUESTIONS
    assert "settlement_proposed" in [h["action"] for h in shown["history"]]
    lines = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        "show",
        stopped.number,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    text, err = await asyncio.wait_for(lines.communicate(), 60)
    assert lines.returncode == 0, err.decode()
    assert "awaiting" in text.decode().lower()


async def test_an_action_offered_from_a_stale_read_model_is_refused_by_the_workflow(
    race: Stack, gates: dict[str, Gate]
) -> None:
    """The read model is a moment behind the workflow while a record is being written: the
    claimant is still offered an answer to an offer the impasse has just closed. The workflow
    refuses it, clearly, and records nothing; once the record lands, the page catches up."""
    number = (await race.file()).number
    mediator = await in_mediation(race, number)
    handle = race.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(race, mediator))
    await race.live_matches(number)
    app = make_app(race)
    nora = await signed_in(app, CLAIMANT)
    action = f"/disputes/{number}/actions/respond-to-offer"

    gates["record_event"].hold(lambda record: record.action == "impasse_declared")
    impasse = await handle.start_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=race.actor(mediator), reason="Neither side will move."),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await gates["record_event"].reached()
    stale = await nora.get(f"/disputes/{number}")
    assert 'class="stage mediation"' in stale.text  # the read model has not seen the impasse
    form = {**form_fields(stale.text, action), "offer_id": "offer-1", "accept": "yes"}
    refused = await nora.http.post(action, data=form)
    assert refused.status_code == 409, refused.text[:500]
    assert "Nothing was recorded" in " ".join(messages(refused.text))
    assert (
        "respond to an offer is not possible while the dispute is in formal review" in refused.text
    )

    gates["record_event"].release()
    await impasse.result()
    await race.live_matches(number)
    assert "offer_accepted" not in race.actions(number)
    now = await nora.get(f"/disputes/{number}")
    assert action not in now.text
    await nora.close()
