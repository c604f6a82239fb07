"""`make run` (`accord run`) starts a dispute filed through its web app's API or by email on its
own worker at once (eager start): the worker, the web app and the intake share one Temporal
client. Each with a client of its own, the first workflow task of a new dispute went to the
task queue, behind running disputes' tasks (under the intake bench its acknowledgement waited
up to 45 s for them)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client

from accord.platform.db import SessionFactory, make_engine
from models.enums import InboundState
from models.tables import InboundMessage
from tests.conftest import CONVERTER
from tests.intake_harness import CLAIMANT, mail
from tests.processes import (
    GONE_WITHIN,
    READY,
    dev_servers_of,
    free_port,
    run_environment,
    spawn_run,
)
from tests.web.test_web_api import filing
from web.auth import Accounts

BY_EMAIL = """Respondent: Contoso Systems Ltd
Category: deal registration
Deal: DR-2026-0077
Amount: 40,000 USD
Occurred: {occurred}
Remedy: Registration confirmed to Northwind

We registered DR-2026-0077 for Globex on 3 November; Contoso registered it two days later.
"""


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    """`accord run` on free ports, with its email intake and its worker's health endpoint,
    read up to its banner; stopped (and its dev server with it) at the end."""
    env, _, state = run_environment(
        tmp_path,
        "accord-eager",
        ACCORD_INTAKE_SMTP_PORT=str(free_port()),
        ACCORD_WORKER_HEALTH_PORT=str(free_port()),
    )
    output = tmp_path / "run.log"
    with output.open("w") as sink:
        process = spawn_run(env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while READY not in output.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"accord run was not ready (exit {process.poll()}):\n{output.read_text()}"
                )
            time.sleep(0.2)
        yield process, env, state
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=GONE_WITHIN)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in dev_servers_of(state):
            os.kill(pid, signal.SIGKILL)


async def started_eagerly(client: Client, number: str) -> bool:
    """Whether the dispute's first workflow task came back with its start (the server accepted
    the eager start: the history's first event says so, as the Temporal UI shows it)."""
    history = await client.get_workflow_handle(number).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return started.eager_execution_accepted


async def ready(http: httpx.AsyncClient, url: str) -> None:
    """Until the worker's readiness endpoint says it polls (it listens once the worker has
    connected and registered its search attributes, after the banner)."""
    deadline = time.monotonic() + 60
    said = "nothing"
    while True:
        try:
            answer = await http.get(url)
        except httpx.ConnectError as exc:
            said = str(exc)
        else:
            if answer.status_code == 200:
                return
            said = answer.text
        assert time.monotonic() < deadline, f"the worker is not ready: {said}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_accord_run_starts_disputes_filed_over_the_api_and_by_email_on_its_own_worker(
    embedded: tuple[subprocess.Popen[str], dict[str, str], Path],
) -> None:
    process, env, state = embedded
    sessions = SessionFactory(make_engine(f"sqlite:///{state / 'accord.db'}"))
    token = Accounts(sessions, session_max_age=timedelta(hours=1)).issue_token(CLAIMANT, "test")
    web = f"http://127.0.0.1:{env['ACCORD_WEB_PORT']}"
    health = f"http://127.0.0.1:{env['ACCORD_WORKER_HEALTH_PORT']}/ready"
    async with httpx.AsyncClient(timeout=60) as http:
        # The worker polls (what an orchestrator waits for before routing work to it).
        await ready(http, health)
        filed = await http.post(
            f"{web}/api/disputes",
            json=filing(submission_id="eager-1"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert filed.status_code == 201, filed.text
    over_the_api = filed.json()["number"]

    occurred = (date.today() - timedelta(days=5)).isoformat()
    errors, answer = await aiosmtplib.send(
        mail(CLAIMANT, "Contoso took our Globex deal", BY_EMAIL.format(occurred=occurred)),
        hostname="127.0.0.1",
        port=int(env["ACCORD_INTAKE_SMTP_PORT"]),
    )
    assert not errors and answer.startswith("2.0.0 stored as"), answer
    inbound_id = int(answer.split()[3])
    deadline = time.monotonic() + 60
    while True:
        with sessions.read() as session:
            row = session.exec(select(InboundMessage).where(InboundMessage.id == inbound_id)).one()
        if row.state is InboundState.FILED:
            break
        assert time.monotonic() < deadline, f"the mail was not filed: {row.state} {row.reason}"
        await asyncio.sleep(0.2)
    assert row.dispute_number is not None
    by_email = row.dispute_number

    client = await Client.connect(env["ACCORD_TEMPORAL_ADDRESS"], data_converter=CONVERTER)
    eagerly = {
        "over the API": await started_eagerly(client, over_the_api),
        "by email": await started_eagerly(client, by_email),
    }
    assert eagerly == {"over the API": True, "by email": True}
    assert process.poll() is None
