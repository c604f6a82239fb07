"""The intake's own loops and answers (issue 14, items 3 and 6): a message that kills or hangs
its processor goes to the failed state after N claims; replies are sent by the relay, not by
the intake; a sender over a volume limit is answered once a day, not once a message; every
answer says what happened in plain words, never an engine's text; and a reply the sender's
server refused is shown to the admins next to the message, to be sent again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import text, update
from sqlmodel import col
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from accord.application import build_services
from accord.disputes.operations import Refused
from accord.platform.settings import Settings
from accord.runtime.embedded import run_intake, wait_for_port
from intake.processor import IntakeProcessor, refusal_in_words
from models.enums import InboundState, OutboxState
from models.payloads import Withdraw
from models.tables import InboundMessage
from tests.conftest import MailCapture, Stack, make_settings, seed
from tests.intake.test_intake_faults import replies_to, row_of, store
from tests.intake_harness import CLAIMANT, RESPONDENT, Intake, mail
from tests.processes import free_port
from tests.web_harness import make_app, signed_in
from tests.workflows.test_dispute_paths import in_mediation
from workflows.dispute import DisputeWorkflow


@pytest.fixture
async def idle_stack(
    env: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> Stack:
    """Database, SMTP and Temporal, and no worker: so no relay sends anything but the ones
    a test starts."""
    mail_capture, port = smtp
    idle = Stack(env, make_settings(database_url, port, tmp_path), mail_capture)
    seed(idle.sessions)
    return idle


def lapse(stack: Stack, inbound_id: int) -> None:
    """What a processor killed (or hung) mid-message leaves: its claim, running out."""
    with stack.sessions.begin() as session:
        session.execute(
            update(InboundMessage)
            .where(col(InboundMessage.id) == inbound_id)
            .values(claimed_until=datetime.now(UTC) - timedelta(seconds=1))
        )


# --- crash loops ------------------------------------------------------------------------------


async def test_a_message_that_kills_its_processor_fails_after_n_claims(
    intake_on_both: Intake,
) -> None:
    """Each claim counts as an attempt when it is taken: a processor that dies with the
    message (kill -9, out of memory, hung past its claim) never gets to count it, so counting
    at the end retried the message forever."""
    stack = intake_on_both.stack
    stack.settings.intake_max_attempts = 3
    inbound_id = await store(
        intake_on_both, mail("nobody@nowhere.example", "Hello", "Hi.").as_bytes()
    )
    for attempt in range(1, 4):
        # A fresh processor each time: the one before died holding the message.
        dying = IntakeProcessor(stack.services, stack.client)
        assert await asyncio.to_thread(dying.claim, inbound_id) is not None, attempt
        assert row_of(stack, inbound_id).attempts == attempt
        lapse(stack, inbound_id)
    survivor = IntakeProcessor(stack.services, stack.client)
    try:
        state = await survivor.process(inbound_id)
    finally:
        survivor.close()
    row = row_of(stack, inbound_id)
    assert state is InboundState.FAILED
    assert row.state is InboundState.FAILED
    assert row.attempts == 3
    assert "taken 3 times" in (row.reason or ""), row.reason
    assert row.claim_token is None and row.claimed_until is None
    # Nothing takes it again by itself ...
    assert inbound_id not in await asyncio.to_thread(survivor.pending)
    # ... until an admin processes it again: a fresh set of attempts, then its outcome.
    await asyncio.to_thread(survivor.reopen, inbound_id, "ada.admin")
    assert row_of(stack, inbound_id).attempts == 0
    await survivor.process(inbound_id)
    row = row_of(stack, inbound_id)
    assert row.state is InboundState.QUARANTINED, row.reason
    assert row.attempts == 1


async def test_a_processed_message_counts_one_attempt_and_a_stop_gives_it_back(
    intake_on_both: Intake,
) -> None:
    stack = intake_on_both.stack
    processor = intake_on_both.processor
    inbound_id = await store(
        intake_on_both, mail("nobody@nowhere.example", "Hello", "Hi.").as_bytes()
    )
    token = await asyncio.to_thread(processor.claim, inbound_id)
    assert token is not None
    # A processor stopping gives the message up unprocessed: not the message's fault.
    await asyncio.to_thread(processor.release, inbound_id, token)
    assert row_of(stack, inbound_id).attempts == 0
    await processor.process(inbound_id)
    row = row_of(stack, inbound_id)
    assert row.state is InboundState.QUARANTINED
    assert row.attempts == 1


async def test_a_message_left_claimed_by_a_dead_processor_is_taken_when_its_claim_lapses(
    intake_on_both: Intake,
) -> None:
    """A processor started after another one died looks when the dead one's claim runs out,
    not at its next idle look (up to 30 s later): CI saw a restarted intake leave a message
    for 30 s because its first look came while the dead process's claim still held."""
    stack = intake_on_both.stack
    stack.settings.intake_claim_seconds = 2.0
    stack.settings.intake_retry_seconds = 30.0
    inbound_id = await store(
        intake_on_both, mail("nobody@nowhere.example", "Hello", "Hi.").as_bytes()
    )
    dead = IntakeProcessor(stack.services, stack.client)
    assert await asyncio.to_thread(dead.claim, inbound_id) is not None
    dead.close()  # killed holding the message: its claim runs for two more seconds
    survivor = IntakeProcessor(stack.services, stack.client)
    stop, wake = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(survivor.run(stop, wake))
    try:
        for _ in range(200):  # 10 s: well past the claim, well short of the idle look
            if row_of(stack, inbound_id).state is not InboundState.RECEIVED:
                break
            await asyncio.sleep(0.05)
        assert row_of(stack, inbound_id).state is InboundState.QUARANTINED
    finally:
        stop.set()
        await running


# --- sending is the relay's job ---------------------------------------------------------------


def own_settings(stack: Stack, **changes: object) -> Settings:
    """The settings of a separate `accord intake` process: same database, SMTP and Temporal,
    and a relay interval so long that only a nudge sends anything."""
    target = stack.client.service_client.config.target_host
    return stack.settings.model_copy(
        update={"temporal_address": target, "outbox_relay_interval_seconds": 3600.0, **changes}
    )


async def test_the_intake_only_enqueues_its_replies(idle_stack: Stack) -> None:
    """An intake without a relay leaves the reply in the outbox: it sends nothing itself, so a
    slow or refusing SMTP server never holds up the messages behind it, and every send is
    claimed, leased and retried by a relay."""
    stack = idle_stack
    processor = IntakeProcessor(build_services(own_settings(stack)), stack.client)
    try:
        inbound_id, _ = await asyncio.to_thread(
            processor.store,
            mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso").as_bytes(),
            source="smtp",
        )
        assert await processor.process(inbound_id) is InboundState.ANSWERED
        [reply] = replies_to(stack, CLAIMANT)
        assert reply.state is OutboxState.PENDING and reply.attempts == 0
        assert stack.mail.subjects(CLAIMANT) == []
        # A relay sends it.
        assert await processor.services.outbox.relay_once() == 1
    finally:
        processor.close()
    await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our deal")
    [reply] = replies_to(stack, CLAIMANT)
    assert reply.state is OutboxState.SENT and reply.attempts == 1


async def test_accord_intake_alone_sends_its_replies_with_its_own_relay(
    idle_stack: Stack,
) -> None:
    """`accord intake` in a process of its own (no worker, no web app there): its relay is
    woken by each reply it queues, so the answer goes out without waiting for another
    process's relay (whose interval here is an hour)."""
    stack = idle_stack
    settings = own_settings(stack, intake_smtp_port=free_port(), intake_imap_host=None)
    stop = asyncio.Event()
    running = asyncio.create_task(run_intake(settings, stop))
    try:
        await wait_for_port("127.0.0.1", settings.intake_smtp_port, 30, "the intake")
        await aiosmtplib.send(
            mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso"),
            hostname="127.0.0.1",
            port=settings.intake_smtp_port,
        )
        await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our deal")
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)


# --- mail loops -------------------------------------------------------------------------------


async def test_a_sender_over_a_volume_limit_is_answered_once_a_day_not_once_a_message(
    intake_on_both: Intake,
) -> None:
    """Two mail robots (or a partner's auto-forward without Auto-Submitted) answering each
    other: an answer to every message over the limit would keep the loop going. The first is
    answered; the rest of the day's are recorded, not answered; auto-submitted mail never."""
    stack = intake_on_both.stack
    stack.settings.texts_per_sender = 1
    number = (await stack.file()).number

    def reply(n: int, **headers: str) -> EmailMessage:
        return mail(RESPONDENT, f"Re: [{number}] the registration", f"Answer {n}.", headers=headers)

    first = await intake_on_both.deliver(reply(1))
    assert first.state is InboundState.THREADED, first.reason
    told = await intake_on_both.deliver(reply(2))
    assert told.state is InboundState.ANSWERED, told.reason
    assert "the most one person may send in one dispute (1)" in (told.reason or "")
    for n in (3, 4, 5):
        again = await intake_on_both.deliver(reply(n))
        assert again.state is InboundState.IGNORED, again.reason
        assert "the most one person may send in one dispute (1)" in (again.reason or "")
        assert "told about this limit today already" in (again.reason or ""), again.reason
    machine = await intake_on_both.deliver(reply(6, **{"Auto-Submitted": "auto-replied"}))
    assert machine.state is InboundState.IGNORED
    await stack.mail_settled()
    [answer] = replies_to(stack, RESPONDENT)
    assert "the most one person may send in one dispute (1)" in answer.text_body
    answers = [s for s in stack.mail.subjects(RESPONDENT) if "Re: Re:" in s]
    assert answers == [f"[{number}] Re: Re: [{number}] the registration"]


# --- plain words to the sender ----------------------------------------------------------------

ADMIN = "ada.admin@vendor.example"
ENGINE_WORDS = (
    "RPCError",
    "rpc",
    "psycopg",
    "sqlalchemy",
    "sqlite3",
    "Traceback",
    "ApplicationError",
    "WorkflowUpdate",
    "workflow",
    "validation error for",
    "Temporal",
    "hunter2",
    "_",
)


def assert_plain(text: str) -> None:
    for word in ENGINE_WORDS:
        assert word.lower() not in text.lower(), (word, text)


async def test_a_reply_to_an_ended_dispute_is_answered_in_plain_words(
    intake_on_both: Intake,
) -> None:
    stack = intake_on_both.stack
    number = (await stack.file()).number
    await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor(CLAIMANT), reason="Resolved directly with Contoso."),
    )
    await stack.handle(number).result()
    row = await intake_on_both.deliver(
        mail(RESPONDENT, f"Re: [{number}] the registration", "One more thing.")
    )
    assert row.state is InboundState.ANSWERED, row.reason
    await stack.mail_settled()
    [answer] = replies_to(stack, RESPONDENT)
    said = answer.text_body.split("\n-- \n")[0]
    assert "is closed" in said or "no longer open" in said, said
    assert_plain(said)


async def test_a_refusal_by_the_dispute_is_put_in_plain_words(intake_on_both: Intake) -> None:
    """The dispute's own rule ("add_message in stage filed is for partner, not admin") is not
    sent word for word: the sender reads what happened in words."""
    stack = intake_on_both.stack
    number = (await stack.file()).number
    row = await intake_on_both.deliver(
        mail(ADMIN, f"Re: [{number}] the registration", "A note from the admins.")
    )
    assert row.state is InboundState.ANSWERED, row.reason
    await stack.mail_settled()
    [answer] = replies_to(stack, ADMIN)
    said = answer.text_body.split("\n-- \n")[0]
    assert "takes messages by email only from partners" in said, said
    assert_plain(said)


async def test_temporal_away_fails_the_message_in_plain_words_and_tells_the_sender_nothing_raw(
    intake_on_both: Intake,
) -> None:
    stack = intake_on_both.stack
    stack.settings.intake_max_attempts = 1
    number = (await stack.file()).number
    dead = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=stack.client.data_converter
    )
    processor = IntakeProcessor(stack.services, dead)
    try:
        inbound_id = await store(
            intake_on_both,
            mail(RESPONDENT, f"Re: [{number}] the registration", "Our answer.").as_bytes(),
        )
        assert await processor.process(inbound_id) is InboundState.FAILED
    finally:
        processor.close()
    row = row_of(stack, inbound_id)
    assert row.reason and row.last_error
    assert "the dispute engine" in row.last_error, row.last_error
    for said in (row.reason, row.last_error):
        assert_plain(said.replace("(Temporal)", ""))
    # Nothing goes to the sender for a fault of ours: the message waits for an admin.
    await stack.mail_settled()
    assert replies_to(stack, RESPONDENT) == []


async def test_a_database_fault_fails_the_message_in_plain_words(intake_on_both: Intake) -> None:
    stack = intake_on_both.stack
    stack.settings.intake_max_attempts = 1
    number = (await stack.file()).number
    inbound_id = await store(
        intake_on_both,
        mail(RESPONDENT, f"Re: [{number}] the registration", "Our answer.").as_bytes(),
    )
    with stack.sessions.begin() as session:
        session.execute(text("ALTER TABLE dispute_text RENAME TO dispute_text_away"))
    try:
        assert await intake_on_both.processor.process(inbound_id) is InboundState.FAILED
    finally:
        with stack.sessions.begin() as session:
            session.execute(text("ALTER TABLE dispute_text_away RENAME TO dispute_text"))
    row = row_of(stack, inbound_id)
    assert row.reason and row.last_error
    assert "the database refused or did not answer" in row.last_error, row.last_error
    for said in (row.reason, row.last_error):
        assert "dispute_text" not in said and "psycopg" not in said.lower(), said
        assert "sqlite3" not in said and "Traceback" not in said, said
    await stack.mail_settled()
    assert replies_to(stack, RESPONDENT) == []


# --- a reply the sender's server refused ------------------------------------------------------


async def test_a_refused_intake_reply_is_shown_next_to_its_message_and_sent_again(
    intake_on_both: Intake,
) -> None:
    """An answer to a message that filed nothing has no dispute to hang an admin task on: the
    intake page shows it next to the message it answers, with the server's reason, and the
    admin sends it again (or dismisses it) there."""
    stack = intake_on_both.stack
    stack.mail.gone.add(CLAIMANT)
    row = await intake_on_both.deliver(
        mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso")
    )
    assert row.state is InboundState.ANSWERED
    await stack.mail_settled()
    [refused] = replies_to(stack, CLAIMANT)
    assert refused.state is OutboxState.FAILED
    app = make_app(stack)
    admin = await signed_in(app, ADMIN)
    page = await admin.get("/admin/intake")
    assert page.status_code == 200, page.text
    assert "Answers not delivered" in page.text
    assert f"#{row.id}" in page.text and "Contoso took our deal" in page.text
    assert "no such mailbox here" in page.text
    assert f"/admin/intake/replies/{refused.id}/resend" in page.text
    # Partners and other staff cannot send it again.
    partner = await signed_in(app, CLAIMANT)
    forbidden = await partner.post(f"/admin/intake/replies/{refused.id}/resend", {})
    assert forbidden.status_code == 403
    # The address is put right; the admin sends it again.
    stack.mail.gone.discard(CLAIMANT)
    done = await admin.post(f"/admin/intake/replies/{refused.id}/resend", {})
    assert done.status_code in (200, 303), done.text
    await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our deal")
    await stack.mail_settled()
    [sent] = replies_to(stack, CLAIMANT)
    assert sent.state is OutboxState.SENT
    page = await admin.get("/admin/intake")
    assert f"/admin/intake/replies/{refused.id}/resend" not in page.text
    # A dispute's mail is resent from its own page, not here.
    other = await admin.post("/admin/intake/replies/999999/resend", {})
    assert other.status_code == 404
    huge = await admin.post("/admin/intake/replies/99999999999999999999999/resend", {})
    assert huge.status_code in (404, 422), huge.text
    unknown = await admin.post(f"/admin/intake/replies/{refused.id}/forward", {})
    assert unknown.status_code == 404
    # Sent already: it cannot be dismissed, and says why.
    late = await admin.post(f"/admin/intake/replies/{refused.id}/dismiss", {})
    assert late.status_code == 422, late.text
    assert "it was sent" in late.text


DYING_INTAKE = """
import asyncio, pathlib, sys, time

from temporalio.client import Client

from accord.application import build_services
from accord.platform.settings import Settings
from intake.processor import IntakeProcessor, refusal_in_words


def stuck(raw: bytes, seconds: float) -> object:
    # Mid-message: the claim is taken and renewed; the test kills this process here.
    pathlib.Path(sys.argv[2]).write_text("reading")
    while True:
        time.sleep(1)


async def main() -> None:
    settings = Settings()
    client = await Client.connect("127.0.0.1:1", lazy=True)  # never reached: dies first
    processor = IntakeProcessor(build_services(settings), client)
    processor._readers.read = stuck  # type: ignore[method-assign]
    await processor.process(int(sys.argv[1]))


asyncio.run(main())
"""


async def test_an_intake_process_killed_mid_message_n_times_leaves_it_failed(
    intake_on_both: Intake, tmp_path: Path
) -> None:
    """The real thing: an `accord intake` process takes the message and is killed (SIGKILL)
    while reading it, three times; the third claim lapsing marks it failed, and it stays there
    for an admin instead of killing a fourth process."""
    stack = intake_on_both.stack
    stack.settings.intake_max_attempts = 3
    script = tmp_path / "dying_intake.py"
    script.write_text(DYING_INTAKE)
    inbound_id = await store(
        intake_on_both, mail("nobody@nowhere.example", "Hello", "Hi.").as_bytes()
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "DATABASE_URL": stack.settings.resolved_database_url(),
        "ACCORD_STATE_DIR": str(tmp_path / "elsewhere"),
        "ACCORD_INTAKE_CLAIM_SECONDS": "1",
    }
    for attempt in (1, 2, 3):
        marker = tmp_path / f"reading-{attempt}"
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(inbound_id), str(marker), env=env
        )
        try:
            await until(marker.exists, f"intake process {attempt} to take the message")
        finally:
            with contextlib.suppress(ProcessLookupError):  # it died by itself: said above
                process.kill()
            await process.wait()
        assert row_of(stack, inbound_id).attempts == attempt
        assert row_of(stack, inbound_id).state is InboundState.RECEIVED
        # Its claim lapses (a second; nothing renews it now).
        await until(
            lambda: (
                (row_of(stack, inbound_id).claimed_until or datetime.min.replace(tzinfo=UTC))
                < datetime.now(UTC)
            ),
            "the dead process's claim to lapse",
        )
    assert inbound_id in await asyncio.to_thread(intake_on_both.processor.pending)
    await intake_on_both.processor.process_pending()
    row = row_of(stack, inbound_id)
    assert row.state is InboundState.FAILED, row.reason
    assert "taken 3 times without an outcome" in (row.reason or "")
    assert inbound_id not in await asyncio.to_thread(intake_on_both.processor.pending)


async def until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("1 validation error for AddMessage\nmessage.text_ref\n  Field required", "ValueError"),
        ("'DSP-2026-000001'", "KeyError"),
        ("no panel", "InvariantBroken"),
        ("Workflow update failed", "ApplicationError"),
        ("psycopg.errors.UndefinedTable: relation does not exist", "ValueError"),
        ("stored text 3f2a is not in the database", "UnknownText"),
        ("x" * 400, "ValueError"),
    ],
)
def test_a_refusal_not_written_for_a_sender_is_told_as_a_fault_of_ours(
    said: str, kind: str
) -> None:
    told = refusal_in_words("DSP-2026-000001", Refused(said, kind))
    assert told == (
        "DSP-2026-000001 could not take it because of a fault on our side; the administrators"
        " can see it and will follow up"
    )


def test_a_refusal_written_for_a_sender_is_kept() -> None:
    refused = Refused("the information request info-2 was answered already", "StaleAction")
    assert (
        refusal_in_words("DSP-2026-000001", refused)
        == "the information request info-2 was answered already"
    )
    not_now = Refused(
        "add_evidence is not possible while the dispute is closed (possible in: filed)",
        "ValueError",
    )
    assert refusal_in_words("DSP-2026-000001", not_now) == (
        "DSP-2026-000001 does not take evidence at its current stage (closed)"
    )
