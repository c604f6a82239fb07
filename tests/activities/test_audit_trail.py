"""The audit trail never wedges a dispute and has no silent holes (issue 14, items 2 and 8).

A record that fails for good, or a database restored from a backup older than Temporal's
state, leaves steps of the workflow without an entry: the next entry is preceded by a gap entry
chained like any other, the dispute goes on, and `accord verify` reports the gap. Entries
deleted from the end of a trail (or the whole trail) are found by comparing the database with
the chain head each workflow publishes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, col, func, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from accord.disputes.access import Standing, Viewer, visible_events
from accord.disputes.verification import Head, against_head, published_head
from accord.rules.audit import ITEMISED, first_broken_link
from models.enums import DisputeStage
from models.payloads import AddEvidence, AddNote, EvidenceItem, Withdraw
from models.tables import DisputeEvent
from tests.conftest import MailCapture, Stack, cli_env, dev_stack
from tests.races import replay_all, scheduled_activities
from tests.workflows.test_dispute_paths import in_mediation, settled
from workflows.dispute import DisputeWorkflow

GUARD = 30.0
"""Seconds an action may take before the test calls the dispute wedged (it takes well under
one; a wedged record retries for ever)."""


async def accord(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.cli",
        *args,
        env=cli_env(stack, **(env or {})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def note(stack: Stack, number: str, author: str, words: str) -> None:
    await asyncio.wait_for(
        stack.handle(number).execute_update(
            DisputeWorkflow.add_note, AddNote(actor=stack.actor(author), text=words)
        ),
        GUARD,
    )


async def head_published(stack: Stack, number: str) -> str:
    """Wait until the workflow's published chain head is the database's last entry."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        events = stack.events(number)
        head = await published_head(stack.client, number)
        if events and head == f"{events[-1].seq}:{events[-1].hash}":
            return head
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{number}: head {head!r}, database ends at {events[-1:]}")
        await asyncio.sleep(0.05)


def lift_guard(stack: Stack) -> Any:
    """What an owner of the database (or a restore) can do: write past the append-only guard."""
    if stack.sessions.engine.dialect.name == "postgresql":
        # As pg_restore --disable-triggers does it.
        return [text("SET LOCAL session_replication_role = replica")]
    return [text("DROP TRIGGER dispute_event_no_delete")]


def put_guard_back(stack: Stack) -> list[Any]:
    if stack.sessions.engine.dialect.name == "postgresql":
        return []
    return [
        text(
            "CREATE TRIGGER dispute_event_no_delete BEFORE DELETE ON dispute_event "
            "BEGIN SELECT RAISE(ABORT, 'dispute_event is append-only'); END"
        )
    ]


def delete_entries(stack: Stack, number: str, after_seq: int) -> None:
    with stack.sessions.begin() as session:
        for statement in lift_guard(stack):
            session.execute(statement)
        session.execute(
            text("DELETE FROM dispute_event WHERE dispute_number = :n AND seq > :s"),
            {"n": number, "s": after_seq},
        )
        for statement in put_guard_back(stack):
            session.execute(statement)


def gaps(stack: Stack, number: str) -> list[DisputeEvent]:
    return [e for e in stack.events(number) if e.action == "audit_gap"]


def unstored_evidence(evidence_id: str = "ev-0123456789abcdef") -> EvidenceItem:
    """Evidence whose content was never stored: the record activity refuses it for good."""
    return EvidenceItem(
        id=evidence_id,
        filename="missing.pdf",
        content_type="application/pdf",
        size=10,
        sha256="ab" * 32,
    )


async def refused_then_noted(stack: Stack) -> tuple[str, str]:
    """A dispute in mediation where adding evidence is refused for good by the record activity,
    then two notes are added; its number and mediator."""
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    unstored = unstored_evidence()
    with pytest.raises(WorkflowUpdateFailedError):
        await asyncio.wait_for(
            stack.handle(number).execute_update(
                DisputeWorkflow.add_evidence,
                AddEvidence(actor=stack.actor(mediator), evidence=unstored),
            ),
            GUARD,
        )
    # The next action is recorded (it used to retry "entry N missing" for ever).
    await note(stack, number, mediator, "Both parties reachable; call set for Monday.")
    await note(stack, number, mediator, "Call held; offer to follow.")
    return number, mediator


async def test_a_record_refused_for_good_never_wedges_the_dispute(stack_on_both: Stack) -> None:
    stack = stack_on_both
    number, mediator = await refused_then_noted(stack)

    events = stack.events(number)
    assert first_broken_link(events) is None
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    [gap] = gaps(stack, number)
    after = events[gap.seq :]
    assert [e.action for e in after] == ["note_added", "note_added"]
    assert "evidence_added" not in [e.action for e in events]
    missing = gap.content["missing_steps"]
    assert missing == [gap.seq, gap.seq]  # nothing lost before it: the step has the gap's seq
    [refused] = gap.content["refused"]
    assert refused["step"] == gap.seq and refused["action"] == "evidence_added"
    assert "sha256" in refused["reason"]
    state = await stack.state(number)
    assert state.stage is DisputeStage.MEDIATION
    assert "evidence_added" not in [h.action for h in state.history]  # refused: not history
    await stack.live_matches(number)
    # Staff see the gap on the timeline; a party does not (it names what was refused, and why).
    nora = Viewer(actor=stack.actor("nora@northwind.example"), login="nora@northwind.example")
    staff = Viewer(actor=stack.actor(mediator), login=mediator)
    assert "audit_gap" not in [e.action for e in visible_events(nora, Standing.PARTY, events, {})]
    assert "audit_gap" in [e.action for e in visible_events(staff, Standing.MEDIATOR, events, {})]

    code, out = await accord(stack, "verify", number)
    assert code == 1, out
    assert f"{number}: chain intact ({len(events)} entries)" in out
    assert f"gap at entry {gap.seq}: step {gap.seq} not recorded (evidence_added refused" in out
    assert "broken" not in out and "tamper" not in out


async def test_a_refusal_repeated_is_itemised_up_to_a_bound_and_counted_beyond(
    stack_on_both: Stack,
) -> None:
    """A party repeating a refused action cannot grow every later record without end."""
    stack = stack_on_both
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    for n in range(ITEMISED + 3):
        unstored = EvidenceItem(
            id=f"ev-{n:016x}",
            filename="missing.pdf",
            content_type="application/pdf",
            size=10,
            sha256="cd" * 32,
        )
        with pytest.raises(WorkflowUpdateFailedError):
            await asyncio.wait_for(
                stack.handle(number).execute_update(
                    DisputeWorkflow.add_evidence,
                    AddEvidence(actor=stack.actor(mediator), evidence=unstored),
                ),
                GUARD,
            )
    await note(stack, number, mediator, "Whatever was refused, this is recorded.")
    [gap] = gaps(stack, number)
    first, last = gap.content["missing_steps"]
    assert last - first + 1 == ITEMISED + 3
    assert len(gap.content["refused"]) == ITEMISED
    assert gap.content["summary"].endswith(
        "; 3 more not itemised: refused too, or lost after being recorded)"
    )
    assert first_broken_link(stack.events(number)) is None


async def test_a_dispute_past_a_refused_record_replays_and_ends(stack: Stack) -> None:
    """The path of the audit-chain-head patch, kept in tests/histories by `make histories`."""
    number, _ = await refused_then_noted(stack)
    await asyncio.wait_for(
        stack.handle(number).execute_update(
            DisputeWorkflow.withdraw,
            Withdraw(actor=stack.actor("nora@northwind.example"), reason="Settled between us."),
        ),
        GUARD,
    )
    outcome = await stack.handle(number).result()
    assert outcome.stage is DisputeStage.WITHDRAWN
    assert first_broken_link(stack.events(number)) is None
    assert len(gaps(stack, number)) == 1
    assert await replay_all(stack) == []


async def test_a_refused_record_sends_the_read_model_its_change_and_replays(stack: Stack) -> None:
    """The path of the live-read-model patch (the refused record's change sent on its own, by
    `project_live`), kept in tests/histories by `make histories`."""
    number, _ = await refused_then_noted(stack)
    await stack.live_matches(number)
    await asyncio.wait_for(
        stack.handle(number).execute_update(
            DisputeWorkflow.withdraw,
            Withdraw(actor=stack.actor("nora@northwind.example"), reason="Settled between us."),
        ),
        GUARD,
    )
    await stack.handle(number).result()
    await stack.live_matches(number)
    history = await stack.handle(number).fetch_history()
    assert "project_live" in scheduled_activities(history)
    assert await replay_all(stack) == []


async def test_a_record_refused_by_its_local_activity_leaves_a_gap_and_replays(
    stack: Stack,
) -> None:
    """The path of the local-record patch with a refusal: the local activity's failure is
    handled as a regular activity's was (the refused step becomes the gap entry's, the evidence
    id is forgotten), and the history, kept in tests/histories, replays."""
    number, mediator = await refused_then_noted(stack)
    history = await stack.handle(number).fetch_history()
    assert "record_event" not in scheduled_activities(history)
    unstored = unstored_evidence()
    with pytest.raises(WorkflowUpdateFailedError) as again:  # looked at afresh, refused again
        await asyncio.wait_for(
            stack.handle(number).execute_update(
                DisputeWorkflow.add_evidence,
                AddEvidence(actor=stack.actor(mediator), evidence=unstored),
            ),
            GUARD,
        )
    assert "already added" not in str(again.value.cause)
    await stack.handle(number).execute_update(
        DisputeWorkflow.withdraw,
        Withdraw(actor=stack.actor("nora@northwind.example"), reason="Settled between us."),
    )
    await stack.handle(number).result()
    assert first_broken_link(stack.events(number)) is None
    refused = gaps(stack, number)[0].content["refused"]
    # Said with the activity's own reason, not the local activity's wrapper.
    assert refused[0]["action"] == "evidence_added", refused
    assert "local activity" not in refused[0]["reason"] and ": " in refused[0]["reason"], refused
    assert await replay_all(stack) == []


async def test_each_record_is_one_marker_and_one_search_attribute_upsert(stack: Stack) -> None:
    """The settled path under the local-record patch: no record_event activity task, one
    local-activity marker per audit entry, and a record's search attributes in one upsert."""
    number = await settled(stack)
    history = await stack.handle(number).fetch_history()
    assert "record_event" not in scheduled_activities(history)
    markers = [
        e
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    entries = [e for e in stack.events(number) if e.action != "audit_gap"]
    assert len(markers) >= len(entries), (len(markers), len(entries))
    upserts_in_a_row = 0
    for e in history.events:
        if e.HasField("upsert_workflow_search_attributes_event_attributes"):
            upserts_in_a_row += 1
            assert upserts_in_a_row == 1, f"two upserts in a row at event {e.event_id}"
        else:
            upserts_in_a_row = 0
    assert await replay_all(stack) == []


def snapshot(stack: Stack) -> Any:
    """A backup of the database now; returns what `restore` needs."""
    if stack.sessions.engine.dialect.name == "postgresql":
        with stack.sessions.read() as session:
            rows = session.exec(
                select(DisputeEvent.dispute_number, func.max(col(DisputeEvent.seq))).group_by(
                    col(DisputeEvent.dispute_number)
                )
            ).all()
            return dict(rows)
    path = stack.settings.resolved_database_url().split("///", 1)[1]
    backup = sqlite3.connect(":memory:")
    with sqlite3.connect(path) as live:
        live.backup(backup)
    return backup


def entries_in(backup: Any, number: str) -> int:
    if isinstance(backup, dict):
        return int(backup[number])
    query = "SELECT count(*) FROM dispute_event WHERE dispute_number = ?"
    return int(backup.execute(query, (number,)).fetchone()[0])


def restore(stack: Stack, backup: Any) -> None:
    """Put the backup back, as an operator restoring the database would."""
    if stack.sessions.engine.dialect.name == "postgresql":
        for number, last in backup.items():
            delete_entries(stack, number, last)
        return
    path = stack.settings.resolved_database_url().split("///", 1)[1]
    with sqlite3.connect(path) as live:
        backup.backup(live)


async def test_a_database_restored_from_an_older_backup_gets_a_gap_and_the_dispute_goes_on(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.recorded(number)
    await head_published(stack, number)
    backup = snapshot(stack)
    kept = entries_in(backup, number)

    await note(stack, number, mediator, "First call held.")
    await note(stack, number, mediator, "Second call held.")
    lost = len(stack.events(number)) - kept
    assert lost == 2
    restore(stack, backup)
    assert len(stack.events(number)) == kept

    await note(stack, number, mediator, "Third call held, after the restore.")

    events = stack.events(number)
    assert first_broken_link(events) is None
    [gap] = gaps(stack, number)
    assert gap.seq == kept + 1 and events[-1].action == "note_added"
    assert gap.content["missing_steps"] == [kept + 1, kept + 2]
    assert gap.content["refused"] == []
    assert await head_published(stack, number) == f"{events[-1].seq}:{events[-1].hash}"
    # The restore took the read model back too: the record found it behind, and sent it all.
    await stack.live_matches(number)

    code, out = await accord(stack, "verify", "--all")
    assert code == 1, out
    assert f"{number}: gap at entry {gap.seq}: steps {kept + 1}-{kept + 2} not recorded" in out
    assert "broken" not in out


async def test_verify_all_finds_deleted_last_entries_and_a_deleted_trail(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    first = (await stack.file()).number
    second = (
        await stack.file(contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0077"}])
    ).number
    third = (
        await stack.file(contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0078"}])
    ).number
    for number in (first, second, third):
        await stack.wait_for_event(number, "mediator_offered")
        await head_published(stack, number)
    code, out = await accord(stack, "verify", "--all")
    assert code == 1, out  # the time-skipping server cannot list workflows: see the next test
    assert "3 disputes: every audit trail intact" in out
    assert "compared with the chain head of its workflow: 3" in out

    # Someone able to lift the guard removes the end of one trail and all of another: every
    # chain left in the table still verifies on its own.
    last_of_first = len(stack.events(first))
    delete_entries(stack, first, last_of_first - 2)
    delete_entries(stack, second, 0)
    assert first_broken_link(stack.events(first)) is None and stack.events(second) == []

    code, out = await accord(stack, "verify", "--all")
    assert code == 2, out
    assert (
        f"{first}: entries {last_of_first - 1}-{last_of_first} missing: its workflow recorded "
        f"entry {last_of_first}" in out
    )
    assert f"{second}: every entry missing: its workflow recorded entry" in out
    assert third not in out


async def test_verify_all_finds_a_dispute_deleted_with_its_whole_trail(
    dev_server: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> None:
    """On a dev server, which lists workflows as any real Temporal does."""
    stack = dev_stack(dev_server, database_url, smtp, tmp_path)
    async with stack.worker:
        kept = (await stack.file()).number
        gone = (
            await stack.file(
                contested_objects=[{"kind": "deal_registration", "ref": "DR-2026-0079"}]
            )
        ).number
        for number in (kept, gone):
            await stack.wait_for_event(number, "mediator_offered")
            await head_published(stack, number)
        await listed(stack, gone)
        code, out = await accord(stack, "verify", "--all")
        assert code == 0, out
        assert "2 disputes: every audit trail intact" in out
        assert "compared with the chain head of its workflow: 2" in out

        delete_dispute(stack, gone)
        code, out = await accord(stack, "verify", "--all")
        assert code == 2, out
        assert "1 dispute: every audit trail intact" not in out
        assert f"{gone}: every entry missing, and the dispute itself: its workflow recorded" in out
        assert kept not in out
        code, out = await accord(stack, "verify", gone)
    assert code == 2, out
    assert f"{gone}: every entry missing, and the dispute itself: its workflow recorded" in out


async def listed(stack: Stack, number: str) -> None:
    """Visibility follows a moment behind: wait until the workflow is listed with its head."""
    deadline = asyncio.get_running_loop().time() + 20
    query = f"WorkflowId = '{number}' AND AccordAuditHead IS NOT NULL"
    while not [w async for w in stack.client.list_workflows(query)]:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{number} is not listed with a chain head")
        await asyncio.sleep(0.1)


def delete_dispute(stack: Stack, number: str) -> None:
    """Everything of one dispute, as its database's owner could delete it."""
    with stack.sessions.begin() as session:
        for statement in lift_guard(stack):
            session.execute(statement)
        for table in reversed(SQLModel.metadata.sorted_tables):
            for key in table.foreign_keys:
                if key.target_fullname == "dispute.number":
                    session.execute(table.delete().where(key.parent == number))
        session.execute(text("DELETE FROM dispute WHERE number = :n"), {"n": number})
        for statement in put_guard_back(stack):
            session.execute(statement)


async def test_verify_says_which_disputes_it_could_not_compare_and_why(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    number = (await stack.file()).number
    await stack.wait_for_event(number, "mediator_offered")
    code, out = await accord(
        stack, "verify", "--all", env={"ACCORD_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    )
    assert code == 1, out
    assert "1 dispute: every audit trail intact" in out
    assert (
        "not compared with a chain head held outside the database (1): Temporal did not answer"
        in out
    )


def test_a_trail_is_held_to_the_head_its_workflow_published() -> None:
    trail = [SimpleNamespace(seq=n, hash=f"{n}" * 64) for n in (1, 2, 3)]
    # The database may be ahead: an entry is written before its workflow hears back.
    assert against_head(trail, Head(seq=2, hash="2" * 64)) is None
    assert against_head(trail, Head(seq=3, hash="3" * 64)) is None
    rewritten = against_head(trail, Head(seq=3, hash="9" * 64))
    assert rewritten == (
        f"entry 3 is not the one its workflow recorded entry 3 (hash {'9' * 16}): the database "
        f"has {'3' * 16}"
    )
    cut = against_head(trail[:1], Head(seq=3, hash="3" * 64))
    assert cut is not None and cut.startswith("entries 2-3 missing: its workflow recorded entry 3")
    with pytest.raises(ValueError):
        Head.parse("not a head")
