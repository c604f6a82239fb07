"""Actions from the web, the API and the CLI apply once per idempotency key and answer within a
bound: a double submit or a retried request gets the first one's answer, and an action the
workflow is still applying when the wait runs out is answered with the dispute as it is now."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from accord.runtime.wiring import PROGRAMMING_ERRORS, activity_methods
from models.enums import DisputeStage
from models.payloads import Deadline, EventRecord, ExtendDeadlineRequest, Recorded
from tests.conftest import CONVERTER, MailCapture, Stack, cli_env, make_settings, seed
from tests.races import runs_while_the_writer_is_held
from tests.web_harness import api, make_app, messages, signed_in, token_for
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from workflows.dispute import DisputeWorkflow

CLAIMANT = "nora@northwind.example"
RESPONDENT = "carl@contoso.example"
NOTE = "Both sides agree on the registration dates; the question is who worked the deal."
WAIT_SECONDS = 0.5
"""The bound the held tests run with: far shorter than the hold."""
PATIENCE = 15.0
"""How long a test waits for an answer before calling it a hang."""


def still_pending(said: str) -> bool:
    """Whether an answer says the action is pending, in either of its true words. A record is a
    local activity (LOCAL_RECORD_PATCH): while one is held, the workflow task that took the
    action is unfinished, so the engine may not have its acceptance yet ('not yet taken up'),
    or has it from the task's heartbeat ('still being applied'). The wording for an accepted
    action is pinned by test_an_api_action_accepted_and_still_being_applied_says_so."""
    return "still being applied" in said or "not yet taken up by the dispute" in said


async def mediating(stack: Stack) -> tuple[str, str]:
    """A dispute in mediation, and its mediator's login."""
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    return number, f"{mediator}@vendor.example"


def notes_recorded(stack: Stack, number: str) -> int:
    return stack.actions(number).count("note_added")


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form that posts to `action`, as a browser sends them."""
    start = html.index(f'action="{action}"')
    form = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


async def within(awaitable: Any, what: str) -> Any:
    """The answer, provided it comes within PATIENCE (a request cut off at the end may still
    answer something, a 500 say: that is a hang too)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        answer = await asyncio.wait_for(awaitable, PATIENCE)
    except TimeoutError:
        answer = None
    took = loop.time() - started
    assert answer is not None and took < PATIENCE, f"{what} did not answer within {PATIENCE} s"
    return answer


# --- the API ------------------------------------------------------------------------------------


async def test_an_api_action_retried_with_the_same_key_applies_once(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    async with api(app, token_for(stack, mediator)) as client:
        url = f"/api/disputes/{number}/add-note"
        key = {"Idempotency-Key": "erp-note-7781"}
        first = await client.post(url, json={"text": NOTE}, headers=key)
        again = await client.post(url, json={"text": NOTE}, headers=key)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        assert notes_recorded(stack, number) == 1
        another = await client.post(url, json={"text": NOTE}, headers={"Idempotency-Key": "n-2"})
        assert another.status_code == 200
    assert [n.text for n in (await stack.state(number)).notes] == [NOTE, NOTE]
    assert notes_recorded(stack, number) == 2


async def test_one_key_from_two_people_or_for_two_actions_is_two_actions(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    key = {"Idempotency-Key": "same-key"}
    async with api(app, token_for(stack, mediator)) as client:
        noted = await client.post(
            f"/api/disputes/{number}/add-note", json={"text": NOTE}, headers=key
        )
        # The API's body: the payload without the actor and the stored text's reference,
        # which the server fills in.
        offer = split_offer(stack, mediator.split("@")[0]).model_dump(
            mode="json", exclude={"actor", "terms_ref"}
        )
        offered = await client.post(
            f"/api/disputes/{number}/propose-settlement", json=offer, headers=key
        )
        assert noted.status_code == offered.status_code == 200, offered.text
        assert offered.json()["reference"] == "offer-1"
    for login in (CLAIMANT, RESPONDENT):
        async with api(app, token_for(stack, login)) as party:
            answer = await party.post(
                f"/api/disputes/{number}/respond-to-offer",
                json={"offer_id": "offer-1", "accept": True},
                headers=key,
            )
            assert answer.status_code == 200, answer.text
    assert stack.actions(number).count("offer_accepted") == 2
    assert (await stack.state(number)).stage is not DisputeStage.MEDIATION


async def test_a_bad_idempotency_key_is_refused_naming_the_header(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    async with api(app, token_for(stack, mediator)) as client:
        for bad in ("k" * 101, "two words", ""):
            response = await client.post(
                f"/api/disputes/{number}/add-note",
                json={"text": NOTE},
                headers={"Idempotency-Key": bad},
            )
            assert response.status_code == 422, (bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in response.json()["errors"]] == ["Idempotency-Key"]
    assert notes_recorded(stack, number) == 0


async def test_an_api_action_that_lost_a_race_is_refused_with_the_rule(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator.split("@")[0])
    )
    async with api(app, token_for(stack, RESPONDENT)) as carl:
        rejected = await carl.post(
            f"/api/disputes/{number}/respond-to-offer",
            json={"offer_id": "offer-1", "accept": False},
            headers={"Idempotency-Key": "carl-1"},
        )
        assert rejected.status_code == 200, rejected.text
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        late = await nora.post(
            f"/api/disputes/{number}/respond-to-offer",
            json={"offer_id": "offer-1", "accept": True},
            headers={"Idempotency-Key": "nora-1"},
        )
        assert late.status_code == 409
        assert late.json()["type"] == "urn:accord:problem:refused"
        assert "offer-1 is not an open settlement offer" in late.json()["detail"]
    assert "offer_accepted" not in stack.actions(number)


# --- the pages ----------------------------------------------------------------------------------


async def test_a_double_submitted_form_records_one_note(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    browser = await signed_in(app, mediator)
    page = await browser.get(f"/disputes/{number}")
    action = f"/disputes/{number}/actions/add-note"
    form = {**form_fields(page.text, action), "text": NOTE, "visibility": "shared"}
    first = await browser.http.post(action, data=form)
    second = await browser.http.post(action, data=form)
    assert first.status_code == second.status_code == 303, second.text
    assert first.headers["location"] == second.headers["location"] == f"/disputes/{number}"
    shown = await browser.get(f"/disputes/{number}")
    assert messages(shown.text) == ["Add note: note recorded"]
    assert notes_recorded(stack, number) == 1
    # The page after it carries a new key: writing the same note again is a second note.
    again = {**form_fields(shown.text, action), "text": NOTE, "visibility": "shared"}
    assert again["idempotency_key"] != form["idempotency_key"]
    assert (await browser.http.post(action, data=again)).status_code == 303
    assert notes_recorded(stack, number) == 2


async def test_a_form_that_lost_a_race_shows_the_rule_and_the_dispute_as_it_is_now(
    stack: Stack,
) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator.split("@")[0])
    )
    nora = await signed_in(app, CLAIMANT)
    page = await nora.get(f"/disputes/{number}")
    action = f"/disputes/{number}/actions/respond-to-offer"
    form = {**form_fields(page.text, action), "offer_id": "offer-1", "accept": "yes"}
    async with api(app, token_for(stack, RESPONDENT)) as carl:
        rejected = await carl.post(
            f"/api/disputes/{number}/respond-to-offer",
            json={"offer_id": "offer-1", "accept": False},
        )
        assert rejected.status_code == 200, rejected.text
    late = await nora.http.post(action, data=form)
    assert late.status_code == 409
    assert any("offer-1 is not an open settlement offer" in m for m in messages(late.text))
    assert "offer-1 (closed)" in late.text  # the dispute as it is now
    assert "offer_accepted" not in stack.actions(number)
    # Every form on the page shown again carries a new key.
    withdraw = f"/disputes/{number}/actions/withdraw"
    assert (
        form_fields(late.text, withdraw)["idempotency_key"]
        != form_fields(page.text, withdraw)["idempotency_key"]
    )


# --- evidence -----------------------------------------------------------------------------------

FILES = [
    ("files", ("registration.csv", b"deal,date\nDR-2026-0042,2026-11-02\n", "text/csv")),
    ("files", ("acme-email.txt", b"We chose Northwind on 2 November.", "text/plain")),
]


async def test_evidence_sent_twice_with_one_key_is_added_once(stack: Stack) -> None:
    app = make_app(stack)
    number, _ = await mediating(stack)
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        url = f"/api/disputes/{number}/evidence"
        key = {"Idempotency-Key": "erp-upload-1"}
        first = await nora.post(url, files=FILES, data={"visibility": "parties"}, headers=key)
        again = await nora.post(url, files=FILES, data={"visibility": "parties"}, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json() and len(first.json()["evidence_ids"]) == 2
    assert stack.actions(number).count("evidence_added") == 2
    carl = await signed_in(app, RESPONDENT)
    action = f"/disputes/{number}/evidence"
    page = await carl.get(f"/disputes/{number}")
    form = {**form_fields(page.text, action), "visibility": "parties"}
    sent = [await carl.http.post(action, data=form, files=FILES[:1]) for _ in range(2)]
    assert [r.status_code for r in sent] == [303, 303], sent[1].text
    assert stack.actions(number).count("evidence_added") == 3


# --- an action the workflow is still applying ---------------------------------------------------


class HeldRecords:
    """The real record_event, held for one audit action until released: an update whose
    handler is still being applied. `extensions`: the real extend_deadline held instead, an
    activity an accepted update waits on (not a local one, so the engine has its acceptance)."""

    def __init__(
        self,
        methods: list[Callable[..., Any]],
        *actions: str,
        extensions: bool = False,
    ) -> None:
        self.real = next(m for m in methods if m.__name__ == "record_event")
        self.real_extend = next(m for m in methods if m.__name__ == "extend_deadline")
        self.actions = actions
        self.extensions = extensions
        self.reached = threading.Event()
        self.release = threading.Event()

    def activities(self, methods: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """The worker's activities with the held one in place of the real one."""
        held = {"record_event": self.record_event, "extend_deadline": self.extend_deadline}
        return [held.get(m.__name__, m) for m in methods]

    def _hold(self) -> None:
        self.reached.set()
        if not self.release.wait(timeout=60):
            raise RuntimeError("the test never released the held activity")

    @activity.defn(name="record_event")
    def record_event(self, record: EventRecord) -> Recorded:
        if not self.extensions and record.action in self.actions:
            self._hold()
        return self.real(record)

    @activity.defn(name="extend_deadline")
    def extend_deadline(self, request: ExtendDeadlineRequest) -> Deadline:
        if self.extensions:
            self._hold()
        return self.real_extend(request)

    async def was_reached(self) -> bool:
        """Whether the held record is (or soon is) being recorded: an action answered as still
        being applied may have been answered before its update even reached the worker, on a
        busy machine."""
        return await asyncio.to_thread(self.reached.wait, PATIENCE)


@contextlib.asynccontextmanager
async def holding(
    env: WorkflowEnvironment,
    url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    *,
    extensions: bool = False,
) -> AsyncIterator[tuple[Stack, HeldRecords]]:
    """A stack whose worker holds the recording of every note and evidence item (or every
    deadline extension), and whose web, API and CLI wait WAIT_SECONDS for an action."""
    mail, port = smtp
    stack = Stack(env, make_settings(url, port, tmp_path, action_wait_seconds=WAIT_SECONDS), mail)
    seed(stack.sessions)
    methods = activity_methods(stack.services)
    hold = HeldRecords(methods, "note_added", "evidence_added", extensions=extensions)
    # A worker registers with its client when built, and the stack has built its own (never
    # started) on this task queue: this one gets a client of its own.
    client = await Client.connect(
        stack.client.service_client.config.target_host, data_converter=CONVERTER
    )
    worker = Worker(
        client,
        task_queue=stack.settings.task_queue,
        workflows=[DisputeWorkflow],
        activities=hold.activities(methods),
        activity_executor=ThreadPoolExecutor(max_workers=8),
        workflow_failure_exception_types=list(PROGRAMMING_ERRORS),
    )
    async with worker:
        try:
            yield stack, hold
        finally:
            hold.release.set()


@pytest.fixture
async def held(
    env: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> AsyncIterator[tuple[Stack, HeldRecords]]:
    async with holding(env, sqlite_url, smtp, tmp_path) as stack_and_hold:
        yield stack_and_hold


@pytest.fixture
async def held_on_dev_server(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[tuple[Stack, HeldRecords]]:
    """The same on a real dev server, whose update long-polls are the production ones."""
    async with holding(dev_server, sqlite_url, smtp, tmp_path) as stack_and_hold:
        yield stack_and_hold


async def test_an_api_action_still_being_applied_answers_202_with_the_dispute_so_far(
    held: tuple[Stack, HeldRecords],
) -> None:
    await api_action_still_being_applied(*held)


async def test_an_api_action_still_being_applied_on_a_dev_server(
    held_on_dev_server: tuple[Stack, HeldRecords],
) -> None:
    await api_action_still_being_applied(*held_on_dev_server)


async def api_action_still_being_applied(stack: Stack, hold: HeldRecords) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    async with api(app, token_for(stack, mediator)) as client:
        url = f"/api/disputes/{number}/add-note"
        key = {"Idempotency-Key": "slow-note-1"}
        pending = await within(client.post(url, json={"text": NOTE}, headers=key), "the API")
        assert await hold.was_reached()
        assert pending.status_code == 202, pending.text
        body = pending.json()
        assert body["idempotency_key"] == "slow-note-1"
        assert body["update_id"].endswith("slow-note-1")
        assert body["state"]["stage"] == "mediation"
        assert still_pending(body["message"]), body["message"]
        # Asked again before it is done: the same update, still pending, not a second note.
        still = await within(client.post(url, json={"text": NOTE}, headers=key), "the API")
        assert still.status_code == 202 and still.json()["update_id"] == body["update_id"]
        hold.release.set()
        done = await within(client.post(url, json={"text": NOTE}, headers=key), "the API")
        assert done.status_code == 200, done.text
        assert done.json()["message"] == "note recorded"
    assert notes_recorded(stack, number) == 1


@pytest.fixture
async def held_extensions(
    env: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> AsyncIterator[tuple[Stack, HeldRecords]]:
    async with holding(env, sqlite_url, smtp, tmp_path, extensions=True) as stack_and_hold:
        yield stack_and_hold


async def test_an_api_action_accepted_and_still_being_applied_says_so(
    held_extensions: tuple[Stack, HeldRecords],
) -> None:
    """An extension waits on an activity after the workflow accepted it: the answer says it is
    being applied, and the same request once it is done gets the result, applied once."""
    stack, hold = held_extensions
    app = make_app(stack)
    number, _ = await mediating(stack)
    async with api(app, token_for(stack, ADMIN)) as admin:
        url = f"/api/disputes/{number}/extend-deadline"
        key = {"Idempotency-Key": "slow-extension-1"}
        body = EXTENSION
        pending = await within(admin.post(url, json=body, headers=key), "the API")
        assert await hold.was_reached()
        assert pending.status_code == 202, pending.text
        assert "accepted and still being applied" in pending.json()["message"], pending.text
        hold.release.set()
        done = await within(admin.post(url, json=body, headers=key), "the API")
        assert done.status_code == 200, done.text
    assert stack.actions(number).count("deadline_extended") == 1


async def test_evidence_still_being_added_answers_202_and_a_retry_finishes_it(
    held: tuple[Stack, HeldRecords],
) -> None:
    stack, hold = held
    app = make_app(stack)
    number, _ = await mediating(stack)
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        url = f"/api/disputes/{number}/evidence"
        key = {"Idempotency-Key": "slow-upload-1"}
        data = {"visibility": "parties"}
        pending = await within(nora.post(url, files=FILES, data=data, headers=key), "the API")
        assert pending.status_code == 202, pending.text
        assert await hold.was_reached() and pending.json()["state"]["stage"] == "mediation"
        hold.release.set()
        done = await within(nora.post(url, files=FILES, data=data, headers=key), "the API")
        assert done.status_code == 201, done.text
        assert len(done.json()["evidence_ids"]) == 2
    assert stack.actions(number).count("evidence_added") == 2


async def test_a_form_still_being_applied_shows_the_dispute_with_a_notice(
    held: tuple[Stack, HeldRecords],
) -> None:
    await form_still_being_applied(*held)


async def test_a_form_still_being_applied_on_a_dev_server(
    held_on_dev_server: tuple[Stack, HeldRecords],
) -> None:
    await form_still_being_applied(*held_on_dev_server)


async def form_still_being_applied(stack: Stack, hold: HeldRecords) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    browser = await signed_in(app, mediator)
    action = f"/disputes/{number}/actions/add-note"
    page = await browser.get(f"/disputes/{number}")
    form = {**form_fields(page.text, action), "text": NOTE, "visibility": "shared"}
    pending = await within(browser.http.post(action, data=form), "the page")
    assert await hold.was_reached()
    assert pending.status_code == 303 and pending.headers["location"] == f"/disputes/{number}"
    shown = await browser.get(f"/disputes/{number}")
    assert shown.status_code == 200
    assert any(still_pending(m) for m in messages(shown.text)), messages(shown.text)
    hold.release.set()
    await stack.wait_for_event(number, "note_added")
    # The same form sent again (the browser's back button) picks up the same action.
    again = await within(browser.http.post(action, data=form), "the page")
    assert again.status_code == 303
    assert messages((await browser.get(f"/disputes/{number}")).text) == ["Add note: note recorded"]
    assert notes_recorded(stack, number) == 1


# --- the CLI ------------------------------------------------------------------------------------


async def accord(stack: Stack, *args: str, **env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        *args,
        env=cli_env(stack, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PATIENCE + 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"accord {args[0]} did not answer") from None
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_cli_action_run_twice_with_one_update_id_applies_once(stack: Stack) -> None:
    number, mediator = await mediating(stack)
    command = ("note", number, "--as", mediator, "--text", NOTE, "--update-id", "script-1")
    first = await accord(stack, *command)
    again = await accord(stack, *command)
    assert first[0] == again[0] == 0, again[1]
    assert "note recorded" in first[1] and again[1] == first[1]
    assert notes_recorded(stack, number) == 1


async def test_a_cli_action_still_being_applied_says_how_to_pick_it_up(
    held: tuple[Stack, HeldRecords],
) -> None:
    stack, hold = held
    number, mediator = await mediating(stack)
    wait = {"ACCORD_ACTION_WAIT_SECONDS": str(WAIT_SECONDS)}
    code, out = await accord(stack, "note", number, "--as", mediator, "--text", NOTE, **wait)
    assert code == 0, out
    assert await hold.was_reached() and still_pending(out), out
    found = re.search(r"--update-id (\S+)", out)
    assert found, out
    hold.release.set()
    command = ("note", number, "--as", mediator, "--text", NOTE, "--update-id", found[1])
    code, out = await accord(stack, *command, **wait)
    assert code == 0 and "note recorded" in out, out
    assert notes_recorded(stack, number) == 1


# --- one key, one request -----------------------------------------------------------------------

OTHER_NOTE = "A second, different note the mediator also wants on the record."
ADMIN = "ada.admin@vendor.example"
EXTENSION = {"business_days": 2, "reason": "The parties asked for time.", "deadline": "mediation"}
"""An admin's extension of the mediation deadline, as the API takes it."""


def key_reused(response: Any) -> bool:
    """A 422 naming the Idempotency-Key: the key was sent before with another request."""
    return response.status_code == 422 and [e["field"] for e in response.json()["errors"]] == [
        "Idempotency-Key"
    ]


async def test_a_key_reused_for_another_note_is_refused_and_records_nothing(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number, mediator = await mediating(stack)
    async with api(app, token_for(stack, mediator)) as client:
        url = f"/api/disputes/{number}/add-note"
        key = {"Idempotency-Key": "reused-key"}
        first = await client.post(url, json={"text": NOTE}, headers=key)
        assert first.status_code == 200, first.text
        other = await client.post(url, json={"text": OTHER_NOTE}, headers=key)
        assert key_reused(other), other.text
        assert "other content" in other.json()["detail"]
        # The first request again still answers as the first time.
        again = await client.post(url, json={"text": NOTE}, headers=key)
        assert again.status_code == 200 and again.json() == first.json()
    assert [n.text for n in (await stack.state(number)).notes] == [NOTE]


async def test_a_key_reused_for_a_longer_extension_is_refused(stack: Stack) -> None:
    app = make_app(stack)
    number, _ = await mediating(stack)
    async with api(app, token_for(stack, ADMIN)) as admin:
        url = f"/api/disputes/{number}/extend-deadline"
        key = {"Idempotency-Key": "extend-1"}
        body = EXTENSION
        first = await admin.post(url, json=body, headers=key)
        assert first.status_code == 200, first.text
        longer = await admin.post(url, json={**body, "business_days": 20}, headers=key)
    assert key_reused(longer), longer.text
    assert stack.actions(number).count("deadline_extended") == 1


async def test_a_key_reused_for_other_files_is_refused_and_attaches_none_of_them(
    stack: Stack,
) -> None:
    app = make_app(stack)
    number, _ = await mediating(stack)
    other_files = [
        ("files", ("b.txt", b"file B", "text/plain")),
        ("files", ("c.txt", b"file C", "text/plain")),
    ]
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        url = f"/api/disputes/{number}/evidence"
        key = {"Idempotency-Key": "upload-k"}
        data = {"visibility": "parties"}
        first = await nora.post(url, files=FILES[:1], data=data, headers=key)
        assert first.status_code == 201, first.text
        other = await nora.post(url, files=other_files, data=data, headers=key)
        assert key_reused(other), other.text
        # Another visibility for the same file is another request too.
        wider = await nora.post(url, files=FILES[:1], data={"visibility": "neutrals"}, headers=key)
        assert key_reused(wider), wider.text
    assert stack.actions(number).count("evidence_added") == 1


async def test_a_form_sent_again_with_other_content_is_refused_on_the_form(stack: Stack) -> None:
    app = make_app(stack)
    number, mediator = await mediating(stack)
    browser = await signed_in(app, mediator)
    action = f"/disputes/{number}/actions/add-note"
    page = await browser.get(f"/disputes/{number}")
    form = {**form_fields(page.text, action), "text": NOTE, "visibility": "shared"}
    assert (await browser.http.post(action, data=form)).status_code == 303
    edited = await browser.http.post(action, data={**form, "text": OTHER_NOTE})
    assert edited.status_code == 422
    assert "this form was already sent with other content; reload the page" in edited.text
    assert OTHER_NOTE in edited.text  # what was typed is kept
    assert notes_recorded(stack, number) == 1


async def test_concurrent_requests_with_one_key_and_two_bodies_apply_one(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    number, mediator = await mediating(stack)
    async with api(app, token_for(stack, mediator)) as client:
        url = f"/api/disputes/{number}/add-note"
        key = {"Idempotency-Key": "burst-2"}
        texts = [NOTE if i % 2 else OTHER_NOTE for i in range(8)]
        answers = await within(
            asyncio.gather(*(client.post(url, json={"text": t}, headers=key) for t in texts)),
            "the API",
        )
    applied = {t for t, a in zip(texts, answers, strict=True) if a.status_code == 200}
    refused = {t for t, a in zip(texts, answers, strict=True) if key_reused(a)}
    assert len(applied) == 1 and refused == set(texts) - applied, [a.text for a in answers]
    assert [n.text for n in (await stack.state(number)).notes] == list(applied)


async def test_a_key_refused_by_the_dispute_is_free_for_the_corrected_request(
    stack: Stack,
) -> None:
    """The ruling is refused inside the handler (the precedent it cites does not exist), after
    the update was accepted: the same ruling again gets the same refusal, the corrected ruling
    under the same key is a new attempt."""
    from models.enums import VoteOutcome
    from tests.workflows.test_citations import all_vote
    from tests.workflows.test_formal_review import in_review, ruling

    app = make_app(stack)
    number = await in_review(stack)
    await all_vote(stack, number, VoteOutcome.UPHOLD)
    body = ruling(stack).model_dump(mode="json", exclude={"actor", "rationale_ref"})
    wrong = {**body, "precedents_cited": ["DSP-2019-000001"]}
    async with api(app, token_for(stack, "c.chair@vendor.example")) as chair:
        url = f"/api/disputes/{number}/issue-ruling"
        key = {"Idempotency-Key": "ruling-1"}
        refused = await chair.post(url, json=wrong, headers=key)
        assert refused.status_code == 409 and "DSP-2019-000001" in refused.text, refused.text
        again = await chair.post(url, json=wrong, headers=key)
        assert again.status_code == 409 and again.json() == refused.json()
        fixed = await chair.post(url, json=body, headers=key)
        assert fixed.status_code == 200, fixed.text
        retried = await chair.post(url, json=body, headers=key)
        assert retried.status_code == 200 and retried.json() == fixed.json()
        # Once applied, the key is the corrected ruling's.
        assert key_reused(await chair.post(url, json=wrong, headers=key))


async def test_a_key_refused_by_the_validator_is_free_for_a_later_request(stack: Stack) -> None:
    from tests.workflows.test_dispute_paths import offered

    app = make_app(stack)
    number = (await stack.file()).number
    mediator = await offered(stack, number)
    async with api(app, token_for(stack, f"{mediator}@vendor.example")) as client:
        url = f"/api/disputes/{number}/add-note"
        key = {"Idempotency-Key": "note-early"}
        early = await client.post(url, json={"text": NOTE}, headers=key)
        assert early.status_code == 409, early.text
        accepted = await client.post(
            f"/api/disputes/{number}/accept-assignment",
            json={"impartiality_declaration": "No ties to either party at all."},
        )
        assert accepted.status_code == 200, accepted.text
        await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
        later = await client.post(url, json={"text": OTHER_NOTE}, headers=key)
    assert later.status_code == 200, later.text
    assert notes_recorded(stack, number) == 1


async def test_a_key_with_slashes_cannot_reach_another_persons_update(stack: Stack) -> None:
    """Actor ids and keys may both hold '/': the contact "<mediator>/x@northwind.example" with
    key "k" and the mediator with key "x@northwind.example/k" are two updates."""
    from accord.directory.demo import DEMO
    from accord.directory.records import ContactRecord, Directory

    number, mediator_login = await mediating(stack)
    contact = f"{mediator_login.split('@')[0]}/x@northwind.example"
    northwind = next(p for p in DEMO.partners if p.id == "northwind")
    odd = ContactRecord(name="Odd Address", email=contact)
    seed(
        stack.sessions,
        Directory(partners=[northwind.model_copy(update={"contacts": [*northwind.contacts, odd]})]),
    )
    app = make_app(stack)
    async with api(app, token_for(stack, contact)) as partner:
        mine = await partner.post(
            f"/api/disputes/{number}/evidence",
            files=[("files", ("partner.txt", b"the partner's file", "text/plain"))],
            data={"visibility": "parties"},
            headers={"Idempotency-Key": "k"},
        )
        assert mine.status_code == 201, mine.text
    async with api(app, token_for(stack, mediator_login)) as mediator:
        theirs = await mediator.post(
            f"/api/disputes/{number}/evidence",
            files=[("files", ("mediator.txt", b"the mediator's own file", "text/plain"))],
            data={"visibility": "neutrals"},
            headers={"Idempotency-Key": "x@northwind.example/k"},
        )
        assert theirs.status_code == 201, theirs.text
    assert theirs.json() != mine.json()
    added = [e.actor_id for e in stack.events(number) if e.action == "evidence_added"]
    assert len(added) == 2, added


def stored_blobs(stack: Stack) -> set[str]:
    from sqlmodel import select

    from models.tables import EvidenceBlob

    with stack.sessions.read() as session:
        return set(session.exec(select(EvidenceBlob.sha256)))


async def test_a_refused_upload_leaves_no_stored_file(stack: Stack) -> None:
    """A party limiting evidence to the other side is refused by the dispute: the bytes stored
    before it was asked are removed, unless another evidence item holds the same bytes."""
    app = make_app(stack)
    number, _ = await mediating(stack)
    before = stored_blobs(stack)
    side = {"visibility": "side", "side_partner_id": "contoso"}
    async with api(app, token_for(stack, CLAIMANT)) as nora:
        url = f"/api/disputes/{number}/evidence"
        refused = await nora.post(
            url,
            files=[("files", ("contoso-only.txt", b"nobody took this", "text/plain"))],
            data=side,
        )
        assert refused.status_code == 409, refused.text
        assert stored_blobs(stack) == before
        kept = await nora.post(url, files=FILES[:1], data={"visibility": "parties"})
        assert kept.status_code == 201, kept.text
        with_it = stored_blobs(stack)
        same_bytes = await nora.post(url, files=FILES[:1], data=side)
        assert same_bytes.status_code == 409, same_bytes.text
    assert stored_blobs(stack) == with_it != before


async def test_an_action_waiting_on_the_database_leaves_the_event_loop_running(
    stack: Stack,
) -> None:
    """The worker shares the web process's event loop: an action waiting for SQLite's writer
    (another thread's transaction holds it) must let workflow tasks and requests run meanwhile."""
    from accord.disputes.operations import OPERATIONS, build_payload
    from models.enums import Action
    from web.idempotency import perform_once

    number, mediator = await mediating(stack)
    actor = stack.actor(mediator)
    op = OPERATIONS[Action.ADD_NOTE]
    payload = build_payload(op, actor, {"text": NOTE})
    loop_ran_while_held, _ = await runs_while_the_writer_is_held(
        stack.sessions,
        within(
            perform_once(
                stack.client, stack.sessions, number, op, payload, key="k-1", wait_seconds=None
            ),
            "the note",
        ),
    )
    assert loop_ran_while_held
    assert notes_recorded(stack, number) == 1
