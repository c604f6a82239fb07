"""The intake under hostile mail and faults: a header bomb is read off the event loop within a
budget, a message that keeps failing goes to a failed state an admin sees and can retry
instead of blocking the queue, two processors never take one message at once, and the mail
that must not be answered, merged or refused is not."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import select

from accord.disputes import texts
from intake.processor import IntakeProcessor
from models.enums import InboundState
from models.tables import Dispute, Evidence, InboundMessage, OutboxMessage
from tests.conftest import Stack
from tests.intake_corpus import header_bomb
from tests.intake_harness import CLAIMANT, RESPONDENT, Intake, filing_mail, mail


def row_of(stack: Stack, inbound_id: int) -> InboundMessage:
    with stack.sessions.read() as session:
        row = session.get(InboundMessage, inbound_id)
    assert row is not None
    return row


def replies_to(stack: Stack, address: str) -> list[OutboxMessage]:
    with stack.sessions.read() as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.template == "intake_reply")
                .where(OutboxMessage.recipient == address)
            ).all()
        )


async def store(intake: Intake, raw: bytes, **envelope: str) -> int:
    inbound_id, _ = await asyncio.to_thread(intake.processor.store, raw, source="smtp", **envelope)
    return inbound_id


async def drain(processor: IntakeProcessor, rounds: int = 20) -> None:
    """Process rounds until nothing is left to take (or the rounds run out)."""
    for _ in range(rounds):
        if await processor.process_pending() == 0:
            return


# --- parsing off the loop, within a budget ------------------------------------------------


async def test_a_header_bomb_is_read_off_the_event_loop_and_fails_into_view(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    stack = intake.stack
    stack.settings.intake_parse_seconds = 1.0
    stack.settings.intake_max_attempts = 2
    stack.settings.intake_retry_seconds = 0
    bomb = await store(intake, header_bomb(400_000))
    ticks = 0
    parsing = True

    async def ticker() -> None:
        nonlocal ticks
        while parsing:
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(ticker())
    with caplog.at_level(logging.WARNING, logger="accord.intake"):
        await drain(intake.processor)
    parsing = False
    await beating
    # The loop kept running other work while the bomb was read (it froze for ~20 s before).
    assert ticks > 50
    row = row_of(stack, bomb)
    assert row.state is InboundState.FAILED, (row.state, row.reason, row.last_error)
    assert row.attempts == 2
    # Whichever budget it reached first: on a fast, idle machine memory can come before time.
    assert "took longer than 1 s" in (row.reason or "") or "MB (the budget)" in (row.reason or "")
    assert [r for r in caplog.records if f"intake {bomb}" in r.getMessage()]
    # Nothing was answered on its behalf, and the next message still goes through.
    assert replies_to(stack, CLAIMANT) == []
    after = await intake.deliver(mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso"))
    assert after.state is InboundState.ANSWERED


async def test_a_failed_message_is_shown_to_admins_who_can_process_it_again(
    intake: Intake,
) -> None:
    from tests.web_harness import make_app, messages, signed_in

    stack = intake.stack
    stack.settings.intake_parse_seconds = 0.3
    stack.settings.intake_max_attempts = 1
    # Small enough to be read in the memory budget, given the time (about 2 s).
    bomb = await store(intake, header_bomb(200_000))
    await drain(intake.processor)
    assert row_of(stack, bomb).state is InboundState.FAILED
    app = make_app(stack)
    admin = await signed_in(app, "ada.admin@vendor.example")
    page = await admin.get("/admin/intake?state=failed")
    assert f"/admin/intake/{bomb}/retry" in page.text
    assert "took longer than 0.3 s" in page.text
    # Given a larger budget the admin's retry reads it (the subject is cut for display).
    stack.settings.intake_parse_seconds = 120
    response = await admin.post(f"/admin/intake/{bomb}/retry", {})
    assert response.status_code == 303
    page = await admin.get("/admin/intake?state=failed")
    assert any("processed again: answered" in m for m in messages(page.text))
    row = row_of(stack, bomb)
    assert row.state is InboundState.ANSWERED and row.attempts == 1


async def test_the_cli_lists_failed_messages_and_retries_one(intake: Intake) -> None:
    from typer.testing import CliRunner

    from accord.cli.app import app
    from tests.cli.test_cli import cli_env

    stack = intake.stack
    stack.settings.intake_parse_seconds = 0.3
    stack.settings.intake_max_attempts = 1
    # Small enough to be read in the memory budget, given the time (about 2 s).
    bomb = await store(intake, header_bomb(200_000))
    await drain(intake.processor)
    runner = CliRunner()
    env = cli_env(stack)
    listed = await asyncio.to_thread(runner.invoke, app, ["inbound", "--state", "failed"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"#{bomb}" in listed.output and "took longer than 0.3 s" in listed.output
    env["ACCORD_INTAKE_PARSE_SECONDS"] = "120"
    retried = await asyncio.to_thread(
        runner.invoke,
        app,
        ["inbound-retry", str(bomb), "--as", "ada.admin@vendor.example"],
        env=env,
    )
    assert retried.exit_code == 0, retried.output
    assert "answered" in retried.output
    assert row_of(stack, bomb).state is InboundState.ANSWERED
    refused = await asyncio.to_thread(
        runner.invoke, app, ["inbound-retry", str(bomb), "--as", CLAIMANT], env=env
    )
    assert refused.exit_code == 2 and "admins" in refused.output


# --- the queue keeps moving, on both backends ------------------------------------------------


async def test_nul_subjects_neither_stop_nor_starve_the_queue(
    intake_on_both: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = intake_on_both.stack
    stack.settings.intake_retry_seconds = 0
    # A small batch makes starvation visible with three messages instead of two hundred.
    monkeypatch.setattr(IntakeProcessor, "BATCH", 2)
    poisoned = []
    for i in range(3):
        raw = (
            f"From: {CLAIMANT}\r\nTo: disputes@accord.localhost\r\n"
            f"Message-ID: <nul{i}@sender.example>\r\n"
            f"Subject: =?utf-8?q?Deal=00{i}_taken?=\r\n\r\nRespondent: Contoso\r\n"
        ).encode()
        poisoned.append(await store(intake_on_both, raw))
    good = await store(
        intake_on_both, bytes(mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso"))
    )
    await drain(intake_on_both.processor)
    assert row_of(stack, good).state is InboundState.ANSWERED
    for inbound_id in poisoned:
        row = row_of(stack, inbound_id)
        assert row.state is InboundState.ANSWERED, (row.state, row.last_error)
        assert "\x00" not in (row.subject or "") and row.subject
    assert len(replies_to(stack, CLAIMANT)) == 4


async def test_two_processors_never_process_one_message_at_once(
    intake_on_both: Intake,
) -> None:
    stack = intake_on_both.stack
    ids = [
        await store(
            intake_on_both,
            bytes(mail(CLAIMANT, f"Contoso took our deal {i}", "Respondent: Contoso")),
        )
        for i in range(6)
    ]
    other = IntakeProcessor(stack.services, stack.client)
    # A message claimed by one processor is not taken by the other while the claim holds.
    token = await asyncio.to_thread(other.claim, ids[0])
    assert token is not None
    assert await asyncio.to_thread(intake_on_both.processor.claim, ids[0]) is None
    await asyncio.to_thread(other.release, ids[0], token)
    # Both at once over the same queue: every message processed once.
    await asyncio.gather(intake_on_both.processor.process_pending(), other.process_pending())
    rows = [row_of(stack, i) for i in ids]
    assert [r.state for r in rows] == [InboundState.ANSWERED] * 6
    assert [r.attempts for r in rows] == [1] * 6
    assert len(replies_to(stack, CLAIMANT)) == 6


# --- what is stored, answered, held ------------------------------------------------------------


async def test_a_different_message_reusing_a_message_id_is_kept_and_held(
    intake_on_both: Intake,
) -> None:
    stack = intake_on_both.stack
    first = mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso")
    row = await intake_on_both.deliver(first)
    assert row.state is InboundState.ANSWERED
    # The very same message again is a redelivery: stored once.
    assert (await intake_on_both.send(first)).endswith("(already received)")
    impostor = mail(RESPONDENT, "Withdrawn", "Northwind withdraws everything.")
    impostor.replace_header("Message-ID", str(first["Message-ID"]))
    answer = await intake_on_both.send(impostor)
    assert "already received" not in answer
    held = row_of(stack, int(answer.split()[3]))
    assert held.id != row.id and b"Northwind withdraws everything." in bytes(held.raw)
    assert held.state is InboundState.QUARANTINED
    assert f"Message-ID of message {row.id}" in (held.reason or "")
    # Held messages are not processed until an admin says so.
    await drain(intake_on_both.processor)
    assert row_of(stack, held.id or 0).state is InboundState.QUARANTINED
    assert replies_to(stack, RESPONDENT) == []


async def test_mail_with_a_null_return_path_is_never_answered(intake: Intake) -> None:
    stack = intake.stack
    message = mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso")
    errors, answer = await aiosmtplib.send(
        message,
        sender="",
        recipients=["disputes@accord.localhost"],
        hostname="127.0.0.1",
        port=intake.port,
    )
    assert not errors
    await intake.processor.process_pending()
    row = row_of(stack, int(answer.split()[3]))
    assert row.envelope_from == "<>"
    assert row.state is InboundState.IGNORED and "null return path" in (row.reason or "")
    for header in ("Auto-Replied; owner-email=nora@northwind.example", "AUTO-GENERATED"):
        auto = mail(CLAIMANT, "Contoso took our deal", "Respondent: Contoso")
        auto["Auto-Submitted"] = header
        assert (await intake.deliver(auto)).state is InboundState.IGNORED
    assert replies_to(stack, CLAIMANT) == []


@pytest.mark.parametrize(
    "from_lines",
    [
        b"From: nora@northwind.example\r\nFrom: carl@contoso.example\r\n",
        b"From: nora@northwind.example, carl@contoso.example\r\n",
        b"From: Nora <nora@northwind.example>, Carl <carl@contoso.example>\r\n",
    ],
)
async def test_mail_from_two_senders_is_held(intake: Intake, from_lines: bytes) -> None:
    raw = (
        from_lines + b"To: disputes@accord.localhost\r\nMessage-ID: <two@sender.example>\r\n"
        b"Subject: Contoso took our deal\r\n\r\nRespondent: Contoso\r\n"
    )
    inbound_id = await store(intake, raw)
    await intake.processor.process_pending()
    row = row_of(intake.stack, inbound_id)
    assert row.state is InboundState.QUARANTINED
    assert "more than one sender" in (row.reason or "")
    assert replies_to(intake.stack, CLAIMANT) == []


async def test_a_forwarded_message_is_kept_as_evidence(intake: Intake) -> None:
    stack = intake.stack
    number = (await stack.file()).number
    inner = mail(RESPONDENT, "Deal registration DR-2026-0042", "Registered on 9 November.")
    reply = mail(RESPONDENT, f"Re: [{number}] the registration", "See the forwarded mail.")
    reply.add_attachment(inner)
    row = await intake.deliver(reply)
    assert row.state is InboundState.THREADED, row.reason
    with stack.sessions.read() as session:
        [evidence] = session.exec(select(Evidence)).all()
    assert evidence.content_type == "message/rfc822"
    assert evidence.filename.endswith(".eml")
    entry = await stack.wait_for_event(number, "message_received")
    # The entry names the stored text (accord.disputes.texts): the sender's words, not the forward's.
    ref = entry.content["text_ref"]
    assert isinstance(ref, dict)
    with stack.sessions.read() as session:
        assert texts.bodies(session, [ref["id"]]) == {ref["id"]: "See the forwarded mail."}


async def test_a_subject_over_the_summary_limit_is_cut_not_refused(intake: Intake) -> None:
    message = filing_mail()
    long_subject = "Contoso registered our Acme deal after we did " * 8
    message.replace_header("Subject", long_subject)
    row = await intake.deliver(message)
    assert row.state is InboundState.FILED, row.reason
    with intake.stack.sessions.read() as session:
        [dispute] = session.exec(select(Dispute)).all()
    assert len(dispute.summary) == 300 and dispute.summary.endswith("…")
    assert long_subject.startswith(dispute.summary[:-1])


# --- amounts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("125.000,00 EUR", "125000.00", "EUR"),
        ("40.000 EUR", "40000.00", "EUR"),
        ("EUR 1.234.567", "1234567.00", "EUR"),
        ("125,000 USD", "125000.00", "USD"),
        ("$40,000", "40000.00", "USD"),
        ("1,234.56 USD", "1234.56", "USD"),
        ("1.234,5 EUR", "1234.50", "EUR"),
        ("12,50 EUR", "12.50", "EUR"),
        ("40000", "40000.00", "USD"),
        ("40k", "40000.00", "USD"),
        ("1.5m GBP", "1500000.00", "GBP"),
        ("125 000,00 EUR", "125000.00", "EUR"),
        ("1'250'000 CHF", "1250000.00", "CHF"),
        ("5.000 JPY", "5000.00", "JPY"),
    ],
)
def test_amounts_are_read_the_way_they_are_written(text: str, value: str, currency: str) -> None:
    from intake.filing_mail import Amount, parse_amount

    assert parse_amount(text) == Amount(Decimal(value), currency)


@pytest.mark.parametrize("text", ["40,000", "40.000", "1,234", "1.234 KWD", "1,2,3", "1.234,567"])
def test_an_amount_that_reads_two_ways_is_asked_about(text: str) -> None:
    from intake.filing_mail import Unclear, parse_amount

    unclear = parse_amount(text)
    assert isinstance(unclear, Unclear), unclear
    assert text in unclear.question


async def test_the_sender_is_asked_about_an_amount_that_reads_two_ways(intake: Intake) -> None:
    message = filing_mail()
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    body.set_content(body.get_content().replace("Amount: 125,000 USD", "Amount: 40.000"))
    row = await intake.deliver(message)
    assert row.state is InboundState.ANSWERED
    reply = await intake.stack.mail.wait_for(CLAIMANT, "Re: ")
    text = reply.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "'40.000'" in text and "40000" in text and "40.00" in text
    european = filing_mail()
    european.replace_header("Message-ID", "<eu@sender.example>")
    body = european.get_body(preferencelist=("plain",))
    assert body is not None
    body.set_content(body.get_content().replace("125,000 USD", "125.000,00 EUR"))
    filed = await intake.deliver(european)
    assert filed.state is InboundState.FILED, filed.reason
    with intake.stack.sessions.read() as session:
        [dispute] = session.exec(select(Dispute)).all()
    assert (dispute.amount_at_stake, dispute.currency) == (Decimal("125000.00"), "EUR")


async def test_two_intake_processes_share_the_queue_and_process_each_message_once(
    stack_on_both: Stack, tmp_path: Path
) -> None:
    import sys

    from tests.conftest import cli_env

    stack = stack_on_both
    processor = IntakeProcessor(stack.services, stack.client)
    count = 30
    ids = []
    for i in range(count):
        message = mail(CLAIMANT, f"Contoso took deal {i}", "Respondent: Contoso")
        ids.append((await asyncio.to_thread(processor.store, bytes(message), source="smtp"))[0])
    # Processors only: no receiver, so both can run side by side.
    env = cli_env(stack, ACCORD_INTAKE_SMTP_PORT="0", ACCORD_LOG_FORMAT="text")
    # Logs to files: a pipe nobody reads until the end would fill and stall the process.
    log_files = [(tmp_path / f"intake-{n}.log").open("wb") for n in range(2)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "accord.cli", "intake", env=env, stderr=out, stdout=out
        )
        for out in log_files
    ]
    try:
        for _ in range(900):
            with stack.sessions.read() as session:
                left = session.exec(
                    select(InboundMessage).where(InboundMessage.state == InboundState.RECEIVED)
                ).all()
            if not left:
                break
            await asyncio.sleep(0.1)
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
        for out in log_files:
            out.close()
    logs = "".join((tmp_path / f"intake-{n}.log").read_text() for n in range(2))
    rows = [row_of(stack, i) for i in ids]
    assert [r.state for r in rows] == [InboundState.ANSWERED] * count
    assert [r.attempts for r in rows] == [1] * count
    for inbound_id in ids:
        assert logs.count(f"intake {inbound_id}: answered") == 1, logs[-2000:]
    assert len(replies_to(stack, CLAIMANT)) == count


# --- budgets and plain words ---------------------------------------------------------------


async def test_a_message_over_the_memory_budget_fails_in_plain_words(intake: Intake) -> None:
    stack = intake.stack
    stack.settings.intake_parse_seconds = 120
    stack.settings.intake_parse_memory_mb = 256
    stack.settings.intake_max_attempts = 1
    processor = IntakeProcessor(stack.services, stack.client)  # reads the budget it starts with
    bomb = await store(intake, header_bomb(200_000))
    try:
        await drain(processor)
    finally:
        processor.close()
    row = row_of(stack, bomb)
    assert row.state is InboundState.FAILED
    assert "needed more than 256 MB" in (row.reason or "")


async def test_a_message_over_the_size_limit_is_held_not_read(intake: Intake) -> None:
    # The receiver refuses it at SMTP; an IMAP mailbox can still hand one over.
    inbound_id = await store(intake, bytes(mail(CLAIMANT, "Big", "x" * 5_000)))
    intake.stack.settings.intake_max_bytes = 1_000
    await drain(intake.processor)
    row = row_of(intake.stack, inbound_id)
    assert row.state is InboundState.QUARANTINED
    assert "larger than the intake's limit (1,000 bytes)" in (row.reason or "")


async def test_failures_are_told_in_plain_words_without_the_engines_text(
    stack_on_both: Stack,
) -> None:
    from sqlalchemy import text
    from temporalio.service import RPCError

    from intake.processor import describe_failure

    failures: list[BaseException] = []
    try:
        await stack_on_both.client.get_workflow_handle("DSP-2026-999999").describe()
    except RPCError as exc:
        failures.append(exc)
    try:
        with stack_on_both.sessions.begin() as session:
            session.execute(text("SELECT * FROM no_such_table WHERE secret = 'hunter2'"))
    except Exception as exc:
        failures.append(exc)
    assert len(failures) == 2
    for failure in failures:
        said = describe_failure(failure)
        assert "hunter2" not in said and "no_such_table" not in said, said
        assert "DSP-2026-999999" not in said and "not found" not in said.lower(), said
    assert describe_failure(failures[0]).startswith("the dispute engine (Temporal)")
    assert describe_failure(failures[1]).startswith("the database refused")
