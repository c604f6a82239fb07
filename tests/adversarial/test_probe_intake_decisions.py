"""Probe: two admin decisions on one held intake message at the same moment (PostgreSQL, where
two transactions run at once): the one that commits second must see the first, not overwrite
it. Made deterministic by holding the row's lock from another connection until the decision's
write is seen waiting for it, then committing the other decision under that lock."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from models.enums import InboundState
from models.tables import InboundMessage
from tests.conftest import Stack
from tests.web_harness import make_app, signed_in

ADMIN = "alex.admin@vendor.example"


def held(stack: Stack, key: str) -> int:
    with stack.sessions.begin() as session:
        row = InboundMessage(
            dedupe_key=key,
            source="smtp",
            raw=b"Subject: held\r\n\r\nheld",
            size=22,
            received_at=datetime.now(UTC),
            state=InboundState.FAILED,
            reason="failed 5 times",
            attempts=5,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def other_decision_under_lock(
    url: str, row_id: int, sql: str, locked: threading.Event, done: threading.Event
) -> None:
    """Lock the row, wait until another transaction waits on it, then apply `sql` and commit."""
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        holder.execute("SELECT id FROM inbound_message WHERE id = %s FOR UPDATE", (row_id,))
        locked.set()
        for _ in range(600):
            # This database's waits only: tests on other databases run beside this one.
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND query ILIKE '%%inbound_message%%'"
            ).fetchone()
            if waiting and waiting[0] > 0:
                break
            time.sleep(0.05)
        holder.execute(sql, (row_id,))
        holder.commit()
    done.set()


@pytest.mark.parametrize(
    ("decision", "other", "after"),
    [
        # An admin discards while another's retry has put it back in the queue (and a
        # processor claimed it): the discard is refused, the processing goes on.
        (
            "discard",
            "UPDATE inbound_message SET state = 'received', attempts = 0,"
            " claim_token = 'processor', claimed_until = now() + interval '1 minute'"
            " WHERE id = %s",
            InboundState.RECEIVED,
        ),
        # An admin retries while another has discarded it: the retry is refused.
        (
            "retry",
            "UPDATE inbound_message SET state = 'ignored', reason = 'discard by ada' WHERE id = %s",
            InboundState.IGNORED,
        ),
    ],
)
async def test_a_second_decision_on_a_held_message_sees_the_first(
    stack_on_both: Stack, decision: str, other: str, after: InboundState
) -> None:
    stack = stack_on_both
    if stack.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time: two decisions cannot interleave")
    row_id = held(stack, f"mid:<{decision}@probe>")
    url = stack.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    locked, done = threading.Event(), threading.Event()
    locker = threading.Thread(
        target=other_decision_under_lock, args=(url, row_id, other, locked, done), daemon=True
    )
    browser = await signed_in(make_app(stack), ADMIN)
    try:
        locker.start()
        # The decision is asked for only once the row is held: else it could be written before
        # the lock is taken, and nothing would wait on it.
        assert await asyncio.to_thread(locked.wait, 30)
        answer = await browser.post(f"/admin/intake/{row_id}/{decision}", {})
    finally:
        await browser.close()
    locker.join(30)
    assert done.is_set()
    with stack.sessions.read() as session:
        row = session.get(InboundMessage, row_id)
    assert row is not None
    assert row.state is after, (answer.status_code, row.state, row.reason)
    assert answer.status_code == 422, answer.status_code
