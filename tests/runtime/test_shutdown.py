"""SIGTERM to a running worker or web process (what `docker compose stop`, a rolling upgrade or
a scale-down sends): the process finishes what it is doing, takes nothing new, and exits 0.

Each test runs the real command (`accord worker`, `accord web`) as a separate process and
signals it in the middle of a piece of work held open on purpose: an SMTP server that takes
its time accepting a notification, a request body still arriving."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.enums import OutboxState
from models.tables import Dispute, OutboxMessage
from tests.conftest import MailCapture, cli_env, dev_stack, mail_server
from tests.processes import free_port
from tests.races import local_activities
from tests.web_harness import PASSWORD, filing_form, seed_accounts

HOLD_SECONDS = 3.0
"""How long the held piece of work stays in flight after the signal."""


class SlowMail(MailCapture):
    """Holds the first message it receives for HOLD_SECONDS before accepting it."""

    def __init__(self) -> None:
        super().__init__()
        self.receiving = threading.Event()
        self.accepted_at: float | None = None
        self.held: EmailMessage | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        first = not self.receiving.is_set()
        if first:
            self.receiving.set()
            await asyncio.sleep(HOLD_SECONDS)
        answer = await super().handle_DATA(server, session, envelope)
        if first:
            self.accepted_at = time.monotonic()
            self.held = self.messages[-1]
        return answer


async def start(command: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        command,
        env=env,
        cwd=cwd,  # no .env of a developer's checkout is read
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def stderr_of(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    return (await process.stderr.read()).decode(errors="replace")


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    process: asyncio.subprocess.Process,
    what: str,
    seconds: float = 60,
) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if process.returncode is not None:
            raise AssertionError(f"the process ended before {what}: {await stderr_of(process)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        await asyncio.sleep(0.05)


def answers_ok(http: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[bool]]:
    """A condition for wait_until: `url` answers 200 (not yet listening counts as no)."""

    async def condition() -> bool:
        try:
            return (await http.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    return condition


@pytest.fixture
def slow_smtp() -> Iterator[tuple[SlowMail, int]]:
    mail = SlowMail()
    with mail_server(mail) as port:
        yield mail, port


async def test_a_worker_signalled_mid_send_finishes_it_then_exits(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    slow_smtp: tuple[SlowMail, int],
    tmp_path: Path,
) -> None:
    mail, _ = slow_smtp
    stack = dev_stack(dev_server, sqlite_url, slow_smtp, tmp_path)
    health = f"http://127.0.0.1:{free_port()}"
    worker = await start(
        "worker",
        cli_env(stack, ACCORD_WORKER_HEALTH_PORT=health.rsplit(":")[-1]),
        tmp_path,
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            await wait_until(answers_ok(http, f"{health}/ready"), worker, "a ready worker")
            number = (await stack.file()).number

            async def sending() -> bool:
                return mail.receiving.is_set()

            # The worker's outbox relay is now in the middle of sending the first notification.
            await wait_until(sending, worker, "a notification being sent")
            worker.send_signal(signal.SIGTERM)
            signalled_at = time.monotonic()

            draining = await http.get(f"{health}/ready")
            assert draining.status_code == 503
            assert draining.json()["checks"]["worker"] == "not polling"

        returncode = await asyncio.wait_for(worker.wait(), 60)
        exited_at = time.monotonic()
        assert returncode == 0, await stderr_of(worker)
        # It finished the send under way: the held message was accepted before the process
        # ended, and recorded as sent, so no relay sends it again.
        assert mail.accepted_at is not None and mail.held is not None
        assert signalled_at < mail.accepted_at < exited_at
        with stack.sessions.read() as session:
            held = session.exec(
                select(OutboxMessage).where(OutboxMessage.message_id == mail.held["Message-ID"])
            ).one()
        assert held.state is OutboxState.SENT

        # Temporal recorded the activity that enqueued the mail (the filing's audit entry,
        # which carries its emails and only enqueues them; a local activity, LOCAL_RECORD_PATCH)
        # as completed on its first attempt: nothing was cancelled.
        history = await stack.handle(number).fetch_history()
        first = next(a for a in local_activities(history) if a["activity_type"] == "record_event")
        assert first["attempt"] == 1 and first["completed"], first
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    # Another worker carries the dispute on from where the first one left it.
    async with stack.worker:
        await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
        await stack.wait_for_event(number, "mediator_offered")
    ids = [m["Message-ID"] for m in mail.messages]
    assert len(ids) == len(set(ids))


async def test_a_web_process_signalled_mid_request_answers_it_then_exits(
    dev_server: WorkflowEnvironment,
    sqlite_url: str,
    slow_smtp: tuple[SlowMail, int],
    tmp_path: Path,
) -> None:
    stack = dev_stack(dev_server, sqlite_url, slow_smtp, tmp_path)
    seed_accounts(stack.sessions)
    base = f"http://127.0.0.1:{free_port()}"
    web = await start(
        "web",
        cli_env(stack, ACCORD_WEB_PORT=base.rsplit(":")[-1]),
        tmp_path,
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await wait_until(answers_ok(http, "/health"), web, "a serving web process")
            await http.get("/login")
            signed_in = await http.post(
                "/login",
                data={
                    "csrftoken": http.cookies["csrftoken"],
                    "login": "nora@northwind.example",
                    "password": PASSWORD,
                    "next": "/",
                },
            )
            assert signed_in.status_code == 303, signed_in.text

            form = urlencode(
                {"csrftoken": http.cookies["csrftoken"], **filing_form(submission_id="shutdown-1")}
            ).encode()
            half_sent = asyncio.Event()
            signalled = asyncio.Event()

            async def body() -> AsyncIterator[bytes]:
                yield form[: len(form) // 2]
                half_sent.set()
                await signalled.wait()
                await asyncio.sleep(HOLD_SECONDS)
                yield form[len(form) // 2 :]

            filing = asyncio.create_task(
                http.post(
                    "/disputes/new",
                    content=body(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            )
            await asyncio.wait_for(half_sent.wait(), 10)
            await asyncio.sleep(0.2)  # the request is with the server, its body half read
            web.send_signal(signal.SIGTERM)
            signalled.set()

            # No new connection is taken while the request in flight finishes.
            async def refusing() -> bool:
                try:
                    async with httpx.AsyncClient(base_url=base, timeout=2) as fresh:
                        await fresh.get("/health")
                    return False
                except (httpx.ConnectError, httpx.ReadError):
                    # A connect that lands in the kernel's backlog just as the listener
                    # closes is reset before a byte is answered: refused as well.
                    return True

            await wait_until(refusing, web, "the listener closed", seconds=HOLD_SECONDS)
            answer = await asyncio.wait_for(filing, 60)

        assert answer.status_code == 303, answer.text
        number = answer.headers["location"].rsplit("/", 1)[-1]
        assert number.startswith("DSP-")
        returncode = await asyncio.wait_for(web.wait(), 60)
        assert returncode == 0, await stderr_of(web)
    finally:
        if web.returncode is None:
            web.kill()
            await web.wait()

    # The filing that arrived during shutdown is stored and its dispute is running.
    with stack.sessions.read() as session:
        assert session.get(Dispute, number) is not None
    description = await stack.handle(number).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    async with stack.worker:
        await stack.wait_for_event(number, "filed")
