"""Components cannot freeze each other: `accord run` serves the web app, the worker and the
intake from one event loop, so the intake reading the worst message it accepts must not stop
/health from answering. (How fast it answers meanwhile is measured in bench/responsiveness.py.)
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import aiosmtplib
import httpx
from sqlmodel import select

from accord.runtime.embedded import wait_for_port
from intake.processor import IntakeProcessor
from intake.receiver import start_receiver
from models.enums import InboundState
from models.tables import InboundMessage
from tests.conftest import Stack
from tests.intake_corpus import header_bomb
from tests.processes import free_port
from web.serve import serve_web

BOMB_KEY = "mid:<bomb.800000@sender.example>"


@dataclass
class Probe:
    sent_while_parsing: bool
    answered_while_parsing: bool
    answered: bool


def parsing(stack: Stack) -> bool:
    """The bomb is stored and not yet done with (read, or failed)."""
    with stack.sessions.read() as session:
        row = session.exec(
            select(InboundMessage).where(InboundMessage.dedupe_key == BOMB_KEY)
        ).first()
    return row is not None and row.state is InboundState.RECEIVED


def probe_health(stack: Stack, url: str, done: threading.Event, probes: list[Probe]) -> None:
    """From a thread of its own (the test's coroutines share the loop under test): ask
    /health over and over, noting whether the bomb was being read when each probe was sent
    and when it was answered."""
    with httpx.Client(timeout=30) as client:
        while not done.is_set():
            before = parsing(stack)
            try:
                answered = client.get(url).status_code == 200
            except httpx.HTTPError:
                answered = False
            probes.append(Probe(before, parsing(stack), answered))
            done.wait(0.1)


async def test_health_answers_while_the_intake_reads_a_header_bomb(stack: Stack) -> None:
    settings = stack.settings
    settings.web_port = free_port()
    settings.web_metrics_port = free_port()
    # The web app connects to Temporal itself, at the stack's server.
    settings.temporal_address = stack.client.service_client.config.target_host
    settings.temporal_namespace = stack.client.namespace
    settings.intake_parse_seconds = 4.0
    settings.intake_max_attempts = 1
    stop, wake = asyncio.Event(), asyncio.Event()
    # As `accord run` composes them: the worker (the stack's, on this loop), the web app and
    # the intake on one event loop.
    processor = IntakeProcessor(stack.services, stack.client)
    intake_port = free_port()
    receiver = start_receiver(processor, wake, "127.0.0.1", intake_port, settings.intake_max_bytes)
    parts = [
        asyncio.create_task(serve_web(settings, stop, stack.services)),
        asyncio.create_task(processor.run(stop, wake)),
    ]
    probes: list[Probe] = []
    done = threading.Event()
    prober = threading.Thread(
        target=probe_health,
        args=(stack, f"http://127.0.0.1:{settings.web_port}/health", done, probes),
    )
    try:
        await wait_for_port("127.0.0.1", settings.web_port, 30, "the web app")
        prober.start()
        raw = header_bomb(800_000)
        answer = await aiosmtplib.send(
            raw,
            sender="nora@northwind.example",
            recipients=["disputes@accord.localhost"],
            hostname="127.0.0.1",
            port=intake_port,
        )
        inbound_id = int(answer[1].split()[3])
        for _ in range(1200):
            with stack.sessions.read() as session:
                row = session.get(InboundMessage, inbound_id)
            if row is not None and row.state is not InboundState.RECEIVED:
                break
            await asyncio.sleep(0.1)
    finally:
        done.set()
        if prober.is_alive():
            await asyncio.to_thread(prober.join)
        stop.set()
        await asyncio.gather(*parts)
        receiver.stop()
    # /health answered, again and again, while the bomb was being read. Before, the loop froze
    # for the whole reading: the one probe in flight waited it out, and no other was sent.
    during = [p for p in probes if p.sent_while_parsing and p.answered_while_parsing]
    assert len(during) >= 3, probes
    assert all(p.answered for p in probes), [p for p in probes if not p.answered]
    # The bomb itself ran into a budget (time or memory, whichever it reached first), then
    # failed into view.
    assert row is not None and row.state is InboundState.FAILED, row.state if row else None
    assert "took longer than 4 s" in (row.reason or "") or "MB (the budget)" in (row.reason or "")
