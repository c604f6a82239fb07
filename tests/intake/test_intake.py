"""Email intake over real SMTP: filing by email, replies threaded into disputes, and every
message that cannot be taken in quarantined or answered, never lost, never doubled."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from typing import Any

import aiosmtplib
import pytest
from sqlmodel import func, select
from temporalio.client import WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError

import intake.processor as processor_module
from accord.disputes import texts
from accord.disputes.access import Standing, Viewer, visible_events
from accord.platform.settings import REPO_ROOT
from intake.processor import IntakeProcessor
from models.enums import InboundState
from models.tables import Dispute, Evidence, InboundMessage
from tests.conftest import Stack
from tests.intake_harness import CLAIMANT, RESPONDENT, Intake, filing_mail, mail
from tests.processes import free_port

INTAKE_DIR = f"{REPO_ROOT / 'intake'}/"


def disputes(stack: Stack) -> list[Dispute]:
    with stack.sessions.read() as session:
        return list(session.exec(select(Dispute)).all())


async def test_a_complete_filing_by_email_starts_the_dispute_once(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = intake.stack
    message = filing_mail()
    # Its attachment waits for the filing's entry, read from the trail: never a query to the
    # workflow, which answered while its first record is written makes a busy worker split
    # that task (workflows.core, PATCHES_AT_START_PATCH).
    queried: list[str] = []
    asked = WorkflowHandle.query

    async def query(handle: WorkflowHandle[Any, Any], *args: Any, **kwargs: Any) -> Any:
        queried.append(handle.id)
        return await asked(handle, *args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "query", query)
    row = await intake.deliver(message)
    assert queried == []
    assert row.state is InboundState.FILED, row.reason
    [dispute] = disputes(stack)
    assert (dispute.claimant_id, dispute.respondent_ids) == ("northwind", ["contoso"])
    assert dispute.amount_at_stake == 125000
    assert row.dispute_number == dispute.number
    acknowledgement = await stack.mail.wait_for(CLAIMANT, "Your dispute has been filed")
    assert dispute.number in str(acknowledgement["Subject"])
    with stack.sessions.read() as session:
        [evidence] = session.exec(select(Evidence)).all()
    assert evidence.filename == "reg.pdf" and evidence.dispute_number == dispute.number
    # The sending server retries (it never saw our answer): stored once, filed once.
    answer = await intake.send(message)
    assert answer.endswith("(already received)")
    await intake.processor.process_pending()
    assert len(disputes(stack)) == 1
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(InboundMessage)).one() == 1


async def test_an_incomplete_filing_is_answered_with_exactly_what_is_missing(
    intake: Intake,
) -> None:
    stack = intake.stack
    original = mail(
        CLAIMANT, "Contoso took our deal", "Respondent: Contoso\nThey took the Acme deal from us."
    )
    row = await intake.deliver(original)
    assert row.state is InboundState.ANSWERED
    assert disputes(stack) == []
    reply = await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our deal")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    for missing in ("Category:", "the contested object", "Amount:", "Occurred:"):
        assert missing in text
    assert "Respondent:" not in text  # understood, so not asked for
    assert "respondent_ids=contoso" in text  # the web form comes pre-filled
    assert reply["In-Reply-To"] == original["Message-ID"]  # threaded in the sender's mailbox


async def test_a_reply_to_a_notification_becomes_a_message_on_that_dispute(
    intake: Intake,
) -> None:
    stack = intake.stack
    number = (await stack.file()).number
    notice = await stack.mail.wait_for(RESPONDENT, "naming your organisation")
    reply = mail(
        RESPONDENT,
        f"Re: {notice['Subject']}",
        "We contacted Acme first, on 28 October.\n\n"
        "On Mon, 30 Nov 2026 at 10:00, Accord wrote:\n> A dispute has been filed naming you\n",
        headers={"In-Reply-To": str(notice["Message-ID"]), "References": str(notice["References"])},
    )
    reply.add_attachment(
        b"meeting notes 28 Oct", maintype="text", subtype="plain", filename="notes.txt"
    )
    reply.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="x-msdownload", filename="tool.exe"
    )
    row = await intake.deliver(reply)
    assert row.state is InboundState.THREADED, row.reason
    assert row.dispute_number == number
    entry = await stack.wait_for_event(number, "message_received")
    # The entry names the stored text (accord.disputes.texts); its body is the new part of the reply.
    ref = entry.content["text_ref"]
    assert isinstance(ref, dict)
    with stack.sessions.read() as session:
        assert texts.bodies(session, [ref["id"]]) == {
            ref["id"]: "We contacted Acme first, on 28 October."
        }
    assert entry.content["side_partner_id"] == "contoso"
    # The refused attachment is named in the answer; the accepted one is evidence.
    answer = await stack.mail.wait_for(RESPONDENT, "Re: ")
    assert "tool.exe" in answer.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    with stack.sessions.read() as session:
        assert [e.filename for e in session.exec(select(Evidence)).all()] == ["notes.txt"]
    # Read by that side and the neutrals, not by the other side.
    nora = Viewer(actor=stack.actor(CLAIMANT), login=CLAIMANT)
    carl = Viewer(actor=stack.actor(RESPONDENT), login=RESPONDENT)
    events = stack.events(number)
    assert "message_received" not in [
        e.action for e in visible_events(nora, Standing.PARTY, events, {})
    ]
    assert "message_received" in [
        e.action for e in visible_events(carl, Standing.PARTY, events, {})
    ]


async def test_mail_that_cannot_be_taken_in_is_quarantined_or_ignored_never_answered_blindly(
    intake: Intake,
) -> None:
    stack = intake.stack
    stack.settings.intake_authserv_id = "mx.accord.localhost"
    cases = [
        (
            mail("stranger@elsewhere.example", "Dispute", "Hello"),
            InboundState.QUARANTINED,
            "not a registered",
        ),
        (
            mail(
                CLAIMANT, "Out of office", "I am away", headers={"Auto-Submitted": "auto-replied"}
            ),
            InboundState.IGNORED,
            "auto-replied",
        ),
        (
            mail(
                CLAIMANT,
                "Spoofed",
                "Respondent: Contoso",
                headers={
                    "Authentication-Results": "mx.accord.localhost; dmarc=fail header.from=northwind.example"
                },
            ),
            InboundState.QUARANTINED,
            "dmarc=fail",
        ),
        (
            mail(
                "mailer-daemon@northwind.example",
                "Undeliverable",
                "bounce",
            ),
            InboundState.IGNORED,
            "bounce",
        ),
    ]
    for message, state, reason in cases:
        row = await intake.deliver(message)
        assert row.state is state, (message["Subject"], row.reason)
        assert reason in (row.reason or ""), row.reason
    # A result stamped by someone else's server is not trusted, so it changes nothing.
    forged = mail(
        CLAIMANT,
        "Incomplete again",
        "Just a line",
        headers={"Authentication-Results": "evil.example; dmarc=pass"},
    )
    row = await intake.deliver(forged)
    assert row.authentication == {} and row.state is InboundState.ANSWERED
    # Its answer is the last one queued: once it is out, any other would have gone before it.
    await stack.mail.wait_for(CLAIMANT, "Re: Incomplete again")
    answered = {str(m["To"]) for m in stack.mail.messages if "Re:" in str(m["Subject"])}
    assert answered == {CLAIMANT}  # only the genuine, incomplete filing was answered
    assert disputes(stack) == []


async def test_an_admin_releases_a_held_message_once_the_sender_is_in_the_directory(
    intake: Intake,
) -> None:
    from accord.directory.records import ContactRecord, Directory, PartnerRecord, import_directory
    from models.enums import PartnerTier
    from tests.web_harness import make_app, messages, signed_in

    stack = intake.stack
    row = await intake.deliver(mail("nina@northwind.example", "Acme deal", "Respondent: Contoso"))
    assert row.state is InboundState.QUARANTINED
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    page = await admin.get("/admin/intake")
    assert "nina@northwind.example" in page.text and "not a registered contact" in page.text
    assert "the domain northwind.example is Northwind Traders" in page.text
    with stack.sessions.begin() as session:
        import_directory(
            session,
            Directory(
                partners=[
                    PartnerRecord(
                        id="northwind",
                        name="Northwind Traders",
                        tier=PartnerTier.PLATINUM,
                        regions=["NA-East"],
                        calendar="US-NY",
                        email_domains=["northwind.example"],
                        contacts=[ContactRecord(name="Nina Park", email="nina@northwind.example")],
                    )
                ]
            ),
        )
    response = await admin.post(f"/admin/intake/{row.id}/retry", {})
    assert response.status_code == 303
    page = await admin.get("/admin/intake")
    assert any("processed again: answered" in m for m in messages(page.text))
    await stack.mail.wait_for("nina@northwind.example", "Re: Acme deal")
    nora = await signed_in(app, CLAIMANT)
    assert (await nora.get("/admin/intake")).status_code == 403


async def test_ugly_real_world_mail_is_each_handled_with_a_reason(intake: Intake) -> None:
    from tests.intake_corpus import corpus

    stack = intake.stack
    outcomes: dict[str, tuple[InboundState, str]] = {}
    for name, raw in corpus().items():
        inbound_id, _ = await asyncio.to_thread(intake.processor.store, raw, source="smtp")
        state = await intake.processor.process(inbound_id)
        with stack.sessions.read() as session:
            row = session.get(InboundMessage, inbound_id)
        assert row is not None
        outcomes[name] = (state, row.reason or "")
    unhandled = {n: o for n, o in outcomes.items() if o[0] is InboundState.RECEIVED or not o[1]}
    assert not unhandled, unhandled
    assert outcomes["no headers at all"][0] is InboundState.QUARANTINED
    assert outcomes["html only"][0] is InboundState.ANSWERED  # read as text: what is missing
    assert "DSP-2026-999999" in outcomes["zip attachment"][1]  # no such dispute: held, not lost
    # Every answer went out with a single-line subject, whatever the sender's subject held.
    for message in stack.mail.messages:
        assert "\n" not in str(message["Subject"]) and message["Bcc"] is None
    # Every original is kept, byte for byte.
    with stack.sessions.read() as session:
        kept = {bytes(r.raw) for r in session.exec(select(InboundMessage)).all()}
    assert set(corpus().values()) <= kept


@pytest.mark.timeout(600)  # two intake processes started: slow on a loaded machine
async def test_an_intake_process_killed_mid_message_loses_and_duplicates_nothing(
    stack: Stack,
) -> None:
    import signal
    import sys

    from models.tables import OutboxMessage
    from tests.cli.test_cli import cli_env

    port = free_port()
    # The killed process's claims lapse after the claim lease: a short one, to not wait.
    env = cli_env(stack, ACCORD_INTAKE_SMTP_PORT=str(port), ACCORD_INTAKE_CLAIM_SECONDS="2")

    async def start() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "accord.cli", "intake", env=env
        )
        # A readiness wait, not a speed goal: on a loaded machine (CI, load 16 on two cores)
        # the process's imports alone took more than the ten seconds once allowed.
        for _ in range(2400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return process
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("the intake did not start listening within 120 s")

    process = await start()
    messages = [filing_mail()]
    messages[0].replace_header("Subject", "Filing 0 over a registered deal")
    for i in range(1, 6):
        incomplete = mail(CLAIMANT, f"Incomplete filing {i}", "Respondent: Contoso")
        messages.append(incomplete)
    for message in messages:
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port)
    # Every message has its 250, so every one is stored; kill the process in the middle of
    # processing them, with no chance to clean up.
    process.send_signal(signal.SIGKILL)
    await process.wait()
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(InboundMessage)).one() == 6
    process = await start()
    try:
        for _ in range(300):
            with stack.sessions.read() as session:
                left = session.exec(
                    select(func.count())
                    .select_from(InboundMessage)
                    .where(InboundMessage.state == InboundState.RECEIVED)
                ).one()
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    with stack.sessions.read() as session:
        rows = session.exec(select(InboundMessage)).all()
        replies = session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "intake_reply")
        ).all()
    assert sorted(r.state.value for r in rows) == ["answered"] * 5 + ["filed"]
    assert len(disputes(stack)) == 1
    assert len(replies) == 5 and len({r.key for r in replies}) == 5


async def test_the_web_form_link_of_an_incomplete_filing_is_prefilled_and_the_original_kept(
    intake: Intake,
) -> None:
    from tests.web_harness import make_app, signed_in

    stack = intake.stack
    row = await intake.deliver(
        mail(
            CLAIMANT,
            "Contoso took our Acme deal",
            "Respondent: Contoso\nDeal: DR-2026-0099\n"
            "Amount: 5,000 EUR\nThey took it from us last week.",
        )
    )
    reply = await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our Acme deal")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    link = next(w for w in text.split() if "/disputes/new?" in w)
    app = make_app(stack)
    nora = await signed_in(app, CLAIMANT)
    form = await nora.get(link.removeprefix(stack.settings.resolved_base_url()))
    assert form.status_code == 200
    assert 'value="Contoso took our Acme deal"' in form.text
    assert 'value="DR-2026-0099"' in form.text and 'value="5000.00"' in form.text
    assert '<option value="contoso" selected>' in form.text
    admin = await signed_in(app, "ada.admin@vendor.example")
    original = await admin.get(f"/admin/intake/{row.id}/original")
    assert original.status_code == 200 and original.content == bytes(row.raw)
    assert (await nora.get(f"/admin/intake/{row.id}/original")).status_code == 403


async def test_mail_over_the_size_limit_is_refused_by_the_receiver(stack: Stack) -> None:
    stack.settings.intake_max_bytes = 50_000
    running = Intake(stack)
    try:
        big = mail(CLAIMANT, "Huge", "x" * 60_000)
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await running.send(big)
        assert refused.value.code == 552
    finally:
        running.controller.stop()
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(InboundMessage)).one() == 0


async def test_an_answer_to_mail_without_a_message_id_threads_under_nothing(intake: Intake) -> None:
    message = mail(CLAIMANT, "No id here", "Respondent: Contoso")
    del message["Message-ID"]
    row = await intake.deliver(message)
    assert row.dedupe_key.startswith("sha256:")  # identified by its content instead
    answer = await intake.stack.mail.wait_for(CLAIMANT, "Re: No id here")
    assert answer["In-Reply-To"] is None and answer["References"] is None


def test_the_new_part_of_a_reply_is_kept_for_display_text_or_html() -> None:
    from intake.reading import read

    html = mail(RESPONDENT, "Re: offer", "")
    html.clear_content()
    html.set_content(
        "<div>We accept, with one condition.</div><div>On Mon, Accord wrote:"
        "<blockquote>Settlement offer offer-1 ...</blockquote></div><script>x()</script>",
        subtype="html",
    )
    read_html = read(bytes(html))
    assert read_html.reply_text.startswith("We accept, with one condition.")
    assert "Settlement offer" not in read_html.reply_text
    assert read_html.html is not None and "<script>" not in read_html.html
    plain = read(bytes(mail(RESPONDENT, "Re: offer", "Agreed.\n\n-- \nCarl Mendez\nContoso\n")))
    assert plain.reply_text == "Agreed."


async def test_the_intake_does_its_database_work_off_the_event_loop(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake shares its event loop with the worker (and, in `accord run`, the web app): a
    read or write on the loop thread, waiting on the database or its write lock, stalls them
    all. Filing itself is FilingService's (accord/disputes/filing.py), left out here."""
    stack = intake.stack
    sessions = stack.sessions
    on_loop: list[str] = []
    loop_thread = threading.current_thread()

    def watched(name: str) -> Any:
        original = getattr(sessions, name)

        def opening(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is loop_thread:
                where = traceback.extract_stack()
                files = [f.filename for f in where]
                # The intake package's own files, by their place in the repository: a checkout
                # under a folder named "intake" has "/intake/" in every path.
                if any(f.startswith(INTAKE_DIR) for f in files) and not any(
                    f.endswith("accord/disputes/filing.py") for f in files
                ):
                    caller = next(f for f in reversed(where) if f.startswith(INTAKE_DIR))
                    on_loop.append(f"{name} from {caller.name}:{caller.lineno}")
            return original(*args, **kwargs)

        return opening

    monkeypatch.setattr(sessions, "read", watched("read"))
    monkeypatch.setattr(sessions, "begin", watched("begin"))
    incomplete = await intake.deliver(mail(CLAIMANT, "They took it", "Respondent: Contoso\n"))
    assert incomplete.state is InboundState.ANSWERED, incomplete.reason
    filed = await intake.deliver(filing_mail())
    assert filed.state is InboundState.FILED, filed.reason
    reply = mail(CLAIMANT, f"Re: [{filed.dispute_number}] more", "We have the order form.")
    reply.add_attachment(b"order form", maintype="text", subtype="plain", filename="order.txt")
    threaded = await intake.deliver(reply)
    assert threaded.state is InboundState.THREADED, threaded.reason
    stranger = await intake.deliver(mail("eve@elsewhere.example", "Hello", "Hi"))
    assert stranger.state is InboundState.QUARANTINED, stranger.reason
    assert on_loop == []


async def test_many_messages_are_processed_at_once_but_few_large_ones(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most of a message's processing is waiting on Temporal, so the intake takes many at once;
    a large message holds its bytes and what was read from them throughout, so only a few of
    those are in hand at a time, whatever the number of slots."""
    monkeypatch.setattr(IntakeProcessor, "LARGE_PARALLEL", 1)
    processor = IntakeProcessor(intake.stack.services, intake.stack.client)
    assert intake.stack.settings.intake_parallel >= 32
    reading, most = 0, 0
    read = processor._readers.read

    def counting(raw: bytes, seconds: float) -> Any:
        nonlocal reading, most
        reading += 1
        most = max(most, reading)
        try:
            time.sleep(0.2)
            return read(raw, seconds)
        finally:
            reading -= 1

    monkeypatch.setattr(processor._readers, "read", counting)
    large = []
    for i in range(3):
        message = mail("eve@elsewhere.example", f"Large {i}", "See attached")
        message.add_attachment(
            b"x" * (IntakeProcessor.LARGE_BYTES + 1), maintype="application",
            subtype="octet-stream", filename="big.bin",
        )  # fmt: skip
        large.append(message)
    for message in large:
        await intake.send(message)
    assert await processor.process_pending() == 3
    assert most == 1
    most = 0
    for i in range(3):
        await intake.send(mail("eve@elsewhere.example", f"Small {i}", "Hello"))
    assert await processor.process_pending() == 3
    assert most == 2  # as many as there are reading processes
    processor.close()


async def test_an_update_the_engine_answered_too_late_is_asked_again_not_failed(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy engine lets an update's RPC time out though the update goes on. The intake asks
    again under the same update id (the same update, applied once) instead of failing the
    attempt and waiting out its back-off (30 s and more, for a message already taken in)."""
    stack = intake.stack
    number = (await stack.file()).number
    asked: list[str | None] = []
    real = processor_module.perform

    async def late_once(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("update_id"))
        result = await real(*args, **kwargs)
        if len(asked) == 1:  # applied, but the answer did not come back in time
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return result

    monkeypatch.setattr(processor_module, "perform", late_once)
    row = await intake.deliver(mail(CLAIMANT, f"Re: [{number}] more", "We have the order form."))
    assert row.state is InboundState.THREADED, row.reason
    assert row.attempts == 1 and row.last_error is None
    assert len(asked) == 2 and asked[0] is not None and asked[0] == asked[1]
    await stack.wait_for_event(number, "message_received")
    assert [e.action for e in stack.events(number)].count("message_received") == 1
