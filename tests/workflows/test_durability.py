"""Durability: a worker restart mid-dispute sends nothing twice, and the whole path also runs
on a real dev server (updates are not time-skipped, so they are checked there too)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from accord.runtime.wiring import build_worker
from models.enums import DisputeStage
from models.payloads import AcceptAssignment, RespondToOffer
from tests.conftest import MailCapture, Stack, dev_stack
from tests.workflows.test_dispute_paths import DECLARATION, offered, split_offer
from workflows.dispute import DisputeWorkflow


async def settle(stack: Stack, number: str, restart_worker_at_offer: bool = False) -> None:
    mediator = await offered(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=stack.actor(mediator), impartiality_declaration=DECLARATION),
    )
    if restart_worker_at_offer:
        # Stop the worker and bring up a fresh one (new process state, empty workflow cache);
        # the dispute continues by replaying its history.
        await stack.worker.shutdown()
        stack.worker = build_worker(
            stack.client, stack.services, stack.settings.task_queue, fail_workflows_on_bugs=True
        )
        await stack.worker.__aenter__()
        await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    for contact in ("nora@northwind.example", "carl@contoso.example"):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(contact), offer_id="offer-1", accept=True),
        )
    assert (await handle.result()).stage is DisputeStage.CLOSED


def assert_each_mail_once(mail: MailCapture) -> None:
    sent = Counter((str(m["To"]), str(m["Subject"])) for m in mail.messages)
    duplicates = {k: n for k, n in sent.items() if n > 1}
    assert not duplicates, f"sent more than once: {duplicates}"
    ids = Counter(str(m["Message-ID"]) for m in mail.messages)
    assert max(ids.values()) == 1


async def test_full_path_on_a_real_dev_server(
    dev_server: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)
    async with stack.worker:
        number = (await stack.file()).number
        await settle(stack, number)
        await stack.mail_settled()
    assert_each_mail_once(stack.mail)
    assert stack.actions(number)[-1] == "closed"


async def test_worker_restart_mid_dispute_sends_every_email_exactly_once(
    dev_server: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    # On the dev server: the time-skipping server never hands a workflow on from a stopped
    # worker's sticky queue, since it only moves its clock when a test asks it to.
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)
    await stack.worker.__aenter__()
    number = (await stack.file()).number
    try:
        await settle(stack, number, restart_worker_at_offer=True)
        await stack.mail_settled()
    finally:
        await stack.worker.__aexit__(None, None, None)
    assert_each_mail_once(stack.mail)
    # acknowledgement, offer, settled, remedy applied, closed: each part once, whether the last
    # three went out as one email (sent within the outbox's coalescing window) or apart.
    lines = [
        line
        for m in stack.mail.to("nora@northwind.example")
        for line in m.get_body(("plain",)).get_content().splitlines()  # type: ignore[union-attr]
    ]
    for part in (
        f"We have received your dispute {number}",
        "Settlement offer offer-1",
        f"{number} is settled",
        f"Remedy 1 of {number} is applied",
        f"{number} is closed",
    ):
        assert sum(line.startswith(part) for line in lines) == 1, (part, lines)


async def test_worker_restarted_during_remedy_application_applies_nothing_twice(
    dev_server: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    import asyncio

    from tests.webhook_receiver import Receiver

    with Receiver(b"restart-secret") as receiver:
        # A worker that dies rather than drains: no grace for the activity in flight.
        stack = dev_stack(
            dev_server,
            sqlite_url,
            smtp,
            tmp_path,
            remedy_webhooks={"commission_split": receiver.url},
            remedy_webhook_secret="restart-secret",
            remedy_webhook_timeout_seconds=10,
            worker_grace=timedelta(0),
        )
        receiver.slow_next = 4  # applies at once, answers late: the worker dies in between
        await stack.worker.__aenter__()
        number = (await stack.file()).number
        key = f"{number}:settlement:0"
        try:
            mediator = await offered(stack, number)
            handle = stack.handle(number)
            await handle.execute_update(
                DisputeWorkflow.accept_assignment,
                AcceptAssignment(actor=stack.actor(mediator), impartiality_declaration=DECLARATION),
            )
            await handle.execute_update(
                DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
            )
            for contact in ("nora@northwind.example", "carl@contoso.example"):
                await handle.execute_update(
                    DisputeWorkflow.respond_to_offer,
                    RespondToOffer(actor=stack.actor(contact), offer_id="offer-1", accept=True),
                )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while receiver.requests[key] == 0 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert receiver.applications[key] == 1  # the CRM has applied it...
            await stack.worker.shutdown()  # ...and the worker goes away before hearing so
            stack.worker = build_worker(
                stack.client,
                stack.services,
                stack.settings.task_queue,
                fail_workflows_on_bugs=True,
            )
            await stack.worker.__aenter__()
            outcome = await asyncio.wait_for(handle.result(), timeout=90)
        finally:
            await stack.worker.__aexit__(None, None, None)
        assert outcome.stage is DisputeStage.CLOSED
        assert receiver.applications[key] == 1
        assert receiver.requests[key] >= 2  # retried, and answered "already applied"
        assert stack.actions(number).count("remedy_applied") == 1
