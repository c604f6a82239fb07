"""The intake's own loops and answers (issue 14, items 3 and 6): a message that kills or hangs
its processor goes to the failed state after N claims; replies are sent by the relay, not by
the intake; a sender over a volume limit is answered once a day, not once a message; every
answer says what happened in plain words, never an engine's text; and a reply the sender's
server refused is shown to the admins next to the message, to be sent again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from intake.processor import IntakeProcessor
from models.enums import InboundState
from models.tables import InboundMessage
from tests.conftest import Stack
from tests.test_intake import Intake, mail
from tests.test_intake_faults import row_of, store


@pytest.fixture
async def intake_on_both(stack_on_both: Stack) -> AsyncIterator[Intake]:
    running = Intake(stack_on_both)
    try:
        yield running
    finally:
        running.controller.stop()


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
