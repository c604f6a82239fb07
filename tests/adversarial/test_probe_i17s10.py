"""Adversarial probes of 99ba827: an audit entry's write (`RecordActivities._append`), its live
state (`accord.disputes.live.project_live`) and its mail (`Outbox._store`) as Core statements instead of
ORM loads and a unit-of-work flush. Each probe states what the ORM version did; run on both
databases, and against the parent commit, they must agree."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError

from accord.platform.db import SessionFactory, make_engine
from accord.rules.audit import first_broken_link
from activities.records import RecordActivities
from models.enums import (
    AssignmentState,
    DisputeStage,
    NoteVisibility,
    OutboxState,
    Role,
    TaskKind,
    TaskState,
)
from models.payloads import (
    SYSTEM,
    Deadline,
    EventRecord,
    LiveDelta,
    LiveProjection,
    NoteView,
    NotificationRequest,
    RecordAssignment,
    Recorded,
    TaskOpen,
)
from models.tables import (
    Assignment,
    Dispute,
    DisputeLive,
    DisputeLiveNote,
    OutboxMessage,
    Person,
    Task,
)
from notifications.outbox import Outbox
from tests.activities.test_activities import (
    NOW,
    add_dispute,
    event,
    notice,
    recording_outbox,
    trail,
)
from tests.conftest import seed

NUMBER = "DSP-2026-000101"


# --- helpers ----------------------------------------------------------------------------------


def tasks(sessions: SessionFactory, number: str | None = None) -> list[Task]:
    with sessions.read() as session:
        query = select(Task).order_by(col(Task.key))
        if number is not None:
            query = query.where(Task.dispute_number == number)
        return list(session.exec(query).all())


def mail(sessions: SessionFactory) -> list[OutboxMessage]:
    with sessions.read() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def live(sessions: SessionFactory, number: str) -> tuple[DisputeLive | None, list[Any]]:
    with sessions.read() as session:
        row = session.get(DisputeLive, number)
        notes = session.exec(
            select(DisputeLiveNote.note)
            .where(DisputeLiveNote.dispute_number == number)
            .order_by(col(DisputeLiveNote.position))
        ).all()
        return row, list(notes)


def dispute(sessions: SessionFactory, number: str) -> Dispute:
    with sessions.read() as session:
        found = session.get(Dispute, number)
        assert found is not None
        return found


def task(key: str, number: str = NUMBER, title: str = "mediate") -> TaskOpen:
    return TaskOpen(
        key=key,
        number=number,
        kind=TaskKind.MEDIATE,
        title=title,
        assignee_id="maria.lopez",
        assignee_role=Role.MEDIATOR,
        due_at=NOW + timedelta(days=3),
        at=NOW,
    )


def note(text: str = "a note") -> NoteView:
    return NoteView(
        at=NOW,
        author="maria.lopez",
        text=text,
        visibility=NoteVisibility.SHARED,
        caucus_partner_id=None,
    )


def nudged(outbox: Outbox) -> list[list[int]]:
    """Every `first` the outbox's nudge was handed, in order."""
    calls: list[list[int]] = []
    original = outbox.nudge

    def recording(first: list[int] | None = None) -> None:
        calls.append(list(first or []))
        original(first)

    outbox.nudge = recording  # type: ignore[method-assign]
    return calls


def before_first_entry(records: RecordActivities, run: Callable[[], None]) -> None:
    """`run` once, when `records` has read the chain and builds its entry (before any write, in
    the old code and the new)."""
    original = records._entry
    fired: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(True)
            run()
        return original(*args, **kwargs)

    records._entry = hooked  # type: ignore[method-assign]


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    yield factory
    factory.engine.dispose()


@pytest.fixture
def other(database_url: str, sessions: SessionFactory) -> Iterator[SessionFactory]:
    """A second process on the same database (its own engine and, on SQLite, its own writer)."""
    factory = SessionFactory(make_engine(database_url))
    yield factory
    factory.engine.dispose()


# --- ended states -----------------------------------------------------------------------------


def test_a_terminal_dispute_refuses_a_stage_change_with_nothing_written(
    sessions: SessionFactory,
) -> None:
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions, outbox=recording_outbox(sessions))
    records.record_event(event(NUMBER, 1, open_tasks=(task(f"{NUMBER}:open"),)))
    records.record_event(event(NUMBER, 2, stage=DisputeStage.CLOSED, outcome="settled"))
    before = dispute(sessions, NUMBER)
    deadline = Deadline(
        purpose="mediation",
        calendar="default",
        starts_at=NOW,
        due_at=NOW + timedelta(days=9),
        business_days=5,
        warnings=(),
        explanation="5 business days",
    )
    stale = event(
        NUMBER,
        3,
        stage=DisputeStage.MEDIATION,
        deadline=deadline,
        mediator_id="maria.lopez",
        outcome="x",
        assignment=RecordAssignment(
            round=1, person_id="maria.lopez", state=AssignmentState.OFFERED
        ),
        open_tasks=(task(f"{NUMBER}:new"),),
        done_tasks=(f"{NUMBER}:open",),
        notices=(notice(NUMBER, 3, "closure", "x@y.example"),),
        live=LiveDelta(version=1, sections={"stage": "mediation"}, notes=(note(),)),
    )
    with pytest.raises(ApplicationError) as refused:
        records.record_event(stale)
    assert refused.value.type == "TerminalStage" and refused.value.non_retryable
    assert refused.value.message == (f"{NUMBER} is closed: step_3 cannot move it to mediation")
    assert [e.step for e in trail(sessions, NUMBER)] == [1, 2]
    assert [(t.key, t.state) for t in tasks(sessions, NUMBER)] == [
        (f"{NUMBER}:open", TaskState.OPEN)
    ]
    assert mail(sessions) == []
    assert live(sessions, NUMBER) == (None, [])
    after = dispute(sessions, NUMBER)
    assert after.model_dump() == before.model_dump()
    with sessions.read() as session:
        assert session.exec(select(Assignment)).all() == []
        maria = session.get(Person, "maria.lopez")
        assert maria is not None and maria.last_assigned_at is None
    # The same terminal stage stated again is no change of stage: taken (the old code too).
    again = records.record_event(event(NUMBER, 3, stage=DisputeStage.CLOSED, outcome="again"))
    assert again.seq == 3
    restated = dispute(sessions, NUMBER)
    assert restated.stage is DisputeStage.CLOSED and restated.outcome == "again"
    assert restated.closed_at == NOW + timedelta(minutes=3)


def test_an_unknown_dispute_and_a_late_step_are_refused_by_name_with_nothing_written(
    sessions: SessionFactory,
) -> None:
    records = RecordActivities(sessions, outbox=recording_outbox(sessions))
    ghost = "DSP-2026-000999"
    with pytest.raises(ApplicationError) as unknown:
        records.record_event(
            event(
                ghost,
                1,
                open_tasks=(task(f"{ghost}:t", number=ghost),),
                notices=(notice(ghost, 1, "acknowledgement", "nora@northwind.example"),),
                live=LiveDelta(version=1, sections={"stage": "filed"}),
            )
        )
    assert unknown.value.type == "UnknownDispute" and unknown.value.non_retryable
    assert unknown.value.message == f"dispute {ghost} is not in the database"
    assert trail(sessions, ghost) == [] and tasks(sessions) == [] and mail(sessions) == []

    add_dispute(sessions, NUMBER)
    records.record_event(event(NUMBER, 1))
    records.record_event(event(NUMBER, 4))  # steps 2-3 a gap
    with pytest.raises(ApplicationError) as late:
        records.record_event(
            event(
                NUMBER,
                3,
                open_tasks=(task(f"{NUMBER}:late"),),
                notices=(notice(NUMBER, 3, "acknowledgement", "nora@northwind.example"),),
            )
        )
    assert late.value.type == "LateStep" and late.value.non_retryable
    assert late.value.message == (
        f"step 3 of {NUMBER} is already recorded as missing (the trail has reached step 4)"
    )
    assert [(e.seq, e.step) for e in trail(sessions, NUMBER)] == [(1, 1), (2, None), (3, 4)]
    assert tasks(sessions) == [] and mail(sessions) == []


def test_a_retry_of_an_entry_made_at_another_offset_returns_it_as_stored(
    sessions: SessionFactory,
) -> None:
    """The chain's head, this step's entry and the stage now come from one statement of scalar
    subqueries: their types (UTC datetime, stage enum) must still be decoded."""
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions)
    at = datetime(2026, 12, 1, 17, 30, tzinfo=timezone(timedelta(hours=2)))
    record = EventRecord(
        number=NUMBER, step=1, at=at, actor=SYSTEM, action="filed", content={"n": 1}
    )
    first = records.record_event(record)
    again = records.record_event(record)
    assert again == first and again.seq == 1 and again.hash == first.hash
    assert isinstance(again.at, datetime) and again.at.utcoffset() == timedelta(0)
    assert again.at == at and not again.live_behind
    [entry] = trail(sessions, NUMBER)
    assert entry.at == at and first_broken_link([entry]) is None


# --- tasks ------------------------------------------------------------------------------------


def test_tasks_opened_closed_and_named_twice_in_one_entry(sessions: SessionFactory) -> None:
    add_dispute(sessions, NUMBER)
    add_dispute(sessions, "DSP-2026-000102")
    records = RecordActivities(sessions)
    elsewhere = task("shared:key", number="DSP-2026-000102", title="other dispute's")
    records.record_event(event(NUMBER, 1, open_tasks=(elsewhere,)))
    records.record_event(
        event(
            NUMBER,
            2,
            open_tasks=(
                task(f"{NUMBER}:a", title="first"),
                task(f"{NUMBER}:a", title="second"),  # the same key twice: the first stays
                task(f"{NUMBER}:b"),
                task(f"{NUMBER}:c"),
                task("shared:key", title="mine"),  # another dispute's key: left as it is
            ),
            done_tasks=(f"{NUMBER}:b", f"{NUMBER}:c", f"{NUMBER}:missing"),
            cancelled_tasks=(f"{NUMBER}:c",),  # done first: done stays done
        )
    )
    records.record_event(event(NUMBER, 3, cancelled_tasks=(f"{NUMBER}:a",)))
    records.record_event(event(NUMBER, 4, done_tasks=(f"{NUMBER}:a",)))  # cancelled stays
    records.record_event(event(NUMBER, 5, open_tasks=(task(f"{NUMBER}:a"),)))  # reopened: no
    at = {n: NOW + timedelta(minutes=n) for n in range(6)}
    assert [(t.key, t.title, t.state, t.closed_at) for t in tasks(sessions)] == [
        (f"{NUMBER}:a", "first", TaskState.CANCELLED, at[3]),
        (f"{NUMBER}:b", "mediate", TaskState.DONE, at[2]),
        (f"{NUMBER}:c", "mediate", TaskState.DONE, at[2]),
        ("shared:key", "other dispute's", TaskState.OPEN, None),
    ]
    [shared] = [t for t in tasks(sessions) if t.key == "shared:key"]
    assert shared.dispute_number == "DSP-2026-000102"


def test_a_task_of_no_dispute_and_a_mediator_of_nobody_fail_as_before_with_nothing_written(
    sessions: SessionFactory,
) -> None:
    """A foreign key the row breaks: the database's IntegrityError (no entry found for the
    step, so it is raised again), on both databases, and the old code said the same."""
    add_dispute(sessions, NUMBER)
    outbox = recording_outbox(sessions)
    calls = nudged(outbox)
    records = RecordActivities(sessions, outbox=outbox)
    with pytest.raises(IntegrityError):
        records.record_event(
            event(
                NUMBER,
                1,
                stage=DisputeStage.TRIAGE,
                open_tasks=(task("nowhere:t", number="DSP-2026-000998"),),
                notices=(notice(NUMBER, 1, "acknowledgement", "nora@northwind.example"),),
            )
        )
    with pytest.raises(IntegrityError):
        records.record_event(
            event(
                NUMBER,
                1,
                mediator_id="nobody.at.all",
                notices=(notice(NUMBER, 1, "acknowledgement", "nora@northwind.example"),),
            )
        )
    assert calls == []
    assert trail(sessions, NUMBER) == [] and tasks(sessions) == [] and mail(sessions) == []
    assert dispute(sessions, NUMBER).stage is DisputeStage.FILED


def test_an_entry_closing_more_tasks_than_a_statement_takes_parameters(
    sessions: SessionFactory,
) -> None:
    """The old code closed the named tasks one `session.get` at a time; one UPDATE ... IN with
    a parameter each must not be refused (SQLite takes 32766, PostgreSQL 65535)."""
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions)
    records.record_event(event(NUMBER, 1, open_tasks=(task(f"{NUMBER}:real"),)))
    many = 33_000 if sessions.engine.dialect.name == "sqlite" else 66_000
    keys = (*(f"{NUMBER}:gone:{i}" for i in range(many)), f"{NUMBER}:real")
    recorded = records.record_event(event(NUMBER, 2, done_tasks=keys))
    assert recorded.seq == 2
    assert [(t.key, t.state) for t in tasks(sessions)] == [(f"{NUMBER}:real", TaskState.DONE)]


# --- races ------------------------------------------------------------------------------------


def the_works(number: str, step: int) -> EventRecord:
    """An entry with everything an entry writes: tasks, mail (sent first), a live change."""
    return event(
        number,
        step,
        stage=DisputeStage.TRIAGE,
        open_tasks=(task(f"{number}:triage"),),
        notices=(
            notice(number, step, "acknowledgement", "nora@northwind.example"),
            notice(number, step, "respondent_notice", "carl@contoso.example"),
        ),
        live=LiveDelta(version=step, sections={"stage": "triage"}, notes=(note(),)),
    )


def test_the_loser_of_two_attempts_of_one_step_returns_the_winners_entry_and_names_no_mail(
    sessions: SessionFactory, other: SessionFactory
) -> None:
    """The loser read the chain before the winner committed, so its INSERT collides: the
    IntegrityError path returns the winner's entry, and the loser's rolled-back mail ids are
    never handed to the relay."""
    add_dispute(sessions, NUMBER)
    winner_box, loser_box = recording_outbox(other), recording_outbox(sessions)
    won_calls, lost_calls = nudged(winner_box), nudged(loser_box)
    winner = RecordActivities(other, outbox=winner_box)
    loser = RecordActivities(sessions, outbox=loser_box)
    results: list[Recorded] = []
    before_first_entry(loser, lambda: results.append(winner.record_event(the_works(NUMBER, 1))))
    lost = loser.record_event(the_works(NUMBER, 1))
    [won] = results
    assert lost == won and lost.seq == 1 and not lost.live_behind
    rows = mail(sessions)
    assert [(r.recipient, r.state) for r in rows] == [
        ("nora@northwind.example", OutboxState.PENDING),
        ("carl@contoso.example", OutboxState.PENDING),
    ]
    assert won_calls == [[rows[0].id]] and lost_calls == [[]]
    assert [(e.seq, e.step) for e in trail(sessions, NUMBER)] == [(1, 1)]
    assert [t.key for t in tasks(sessions)] == [f"{NUMBER}:triage"]
    row, notes = live(sessions, NUMBER)
    assert row is not None and row.version == 1 and len(notes) == 1


def test_an_attempt_racing_another_steps_entry_over_a_gap_fails_retryably_then_goes_on(
    sessions: SessionFactory, other: SessionFactory
) -> None:
    add_dispute(sessions, NUMBER)
    RecordActivities(sessions).record_event(event(NUMBER, 1))
    loser_box = recording_outbox(sessions)
    lost_calls = nudged(loser_box)
    winner = RecordActivities(other, outbox=recording_outbox(other))
    loser = RecordActivities(sessions, outbox=loser_box)
    before_first_entry(loser, lambda: winner.record_event(event(NUMBER, 2)))
    with pytest.raises(IntegrityError):
        loser.record_event(the_works(NUMBER, 4))  # a gap for 3 on top of 1: seq 2 is taken
    assert lost_calls == [] and mail(sessions) == [] and tasks(sessions) == []
    retried = RecordActivities(sessions, outbox=loser_box).record_event(the_works(NUMBER, 4))
    events = trail(sessions, NUMBER)
    assert [(e.seq, e.step, e.action) for e in events] == [
        (1, 1, "step_1"),
        (2, 2, "step_2"),
        (3, None, "audit_gap"),
        (4, 4, "step_4"),
    ]
    assert retried.seq == 4 and first_broken_link(events) is None
    assert lost_calls == [[mail(sessions)[0].id]]


def test_a_live_state_created_by_another_transaction_mid_entry_names_no_rolled_back_mail(
    sessions: SessionFactory, other: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the entry's read of the live state and its write, another transaction writes the
    whole state. On PostgreSQL the entry collides (IntegrityError, after its mail was stored):
    it is raised, nothing is named to the relay, and the retry goes through. On SQLite the other
    writer waits for the entry's commit, and applies nothing over the newer version."""
    import accord.disputes.live

    add_dispute(sessions, NUMBER)
    box = recording_outbox(sessions)
    calls = nudged(box)
    records = RecordActivities(sessions, outbox=box)
    elsewhere = RecordActivities(other)
    original = accord.disputes.live._upserted
    fired: list[threading.Thread] = []

    def whole_state() -> None:
        # On SQLite it read no live state, then waits for the entry's commit to insert one:
        # the key is taken by then (IntegrityError, retried by Temporal; the old code too).
        with contextlib.suppress(IntegrityError):
            elsewhere_project_live()

    def elsewhere_project_live() -> None:
        elsewhere.project_live(
            LiveProjection(
                number=NUMBER,
                at=NOW,
                live=LiveDelta(version=1, sections={"stage": "filed", "by": "other"}),
            )
        )

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not fired:
            writer = threading.Thread(target=whole_state)
            fired.append(writer)
            writer.start()
            writer.join(timeout=1.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(accord.disputes.live, "_upserted", hooked)
    postgres = sessions.engine.dialect.name == "postgresql"
    if postgres:
        with pytest.raises(IntegrityError):
            records.record_event(the_works(NUMBER, 1))
        assert calls == [] and mail(sessions) == [] and trail(sessions, NUMBER) == []
        recorded = records.record_event(the_works(NUMBER, 1))
    else:
        recorded = records.record_event(the_works(NUMBER, 1))
    fired[0].join(timeout=30)
    rows = mail(sessions)
    assert recorded.seq == 1 and len(rows) == 2
    assert calls == [[rows[0].id]]
    row, _ = live(sessions, NUMBER)
    assert row is not None and row.version == 1
    assert row.state.get("by") == ("other" if postgres else None)


def test_two_attempts_of_one_step_together_write_one_entry_one_mail_one_task_one_live(
    sessions: SessionFactory,
) -> None:
    add_dispute(sessions, NUMBER)
    box = recording_outbox(sessions)
    calls = nudged(box)
    records = RecordActivities(sessions, outbox=box)
    together = threading.Barrier(2)

    def attempt(_: int) -> Recorded:
        together.wait()
        return records.record_event(the_works(NUMBER, 1))

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(attempt, range(2))
    assert first == second
    rows = mail(sessions)
    assert len(rows) == 2 and len(trail(sessions, NUMBER)) == 1 and len(tasks(sessions)) == 1
    committed = {r.id for r in rows}
    assert all(set(c) <= committed for c in calls)
    assert sorted(len(c) for c in calls) in ([0, 1], [1])


# --- live state -------------------------------------------------------------------------------


def test_live_changes_on_a_wrong_base_or_count_leave_the_state_and_say_behind(
    sessions: SessionFactory,
) -> None:
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions)
    first = LiveDelta(version=1, sections={"stage": "filed"}, notes=(note("one"),))
    assert not records.record_event(event(NUMBER, 1, live=first)).live_behind
    wrong_base = LiveDelta(version=3, base=2, sections={"stage": "x"}, notes_from=1)
    assert records.record_event(event(NUMBER, 2, live=wrong_base)).live_behind
    wrong_count = LiveDelta(version=2, base=1, notes_from=0, notes=(note("two"),))
    assert records.record_event(event(NUMBER, 3, live=wrong_count)).live_behind
    older = LiveDelta(version=1, sections={"stage": "older"})
    assert not records.record_event(event(NUMBER, 4, live=older)).live_behind  # applied already
    row, notes = live(sessions, NUMBER)
    assert row is not None and row.version == 1 and row.state["stage"] == "filed"
    assert [n["text"] for n in notes] == ["one"]
    right = LiveDelta(version=2, base=1, notes_from=1, notes=(note("two"), note("three")))
    assert not records.record_event(event(NUMBER, 5, live=right)).live_behind
    whole = LiveDelta(version=5, sections={"stage": "whole"}, notes=(note("only"),))
    assert not records.record_event(event(NUMBER, 6, live=whole)).live_behind
    row, notes = live(sessions, NUMBER)
    assert row is not None and row.version == 5 and row.state["stage"] == "whole"
    assert row.state["offers"] == [] and row.updated_at == NOW + timedelta(minutes=6)
    assert [n["text"] for n in notes] == ["only"]
    assert [e.step for e in trail(sessions, NUMBER)] == [1, 2, 3, 4, 5, 6]


# --- mail -------------------------------------------------------------------------------------


def test_mail_read_from_the_entry_written_in_the_same_transaction(
    sessions: SessionFactory,
) -> None:
    """notifications.context.enrich reads this entry (written as a statement, no longer an
    object of the session) to choose and fill the template."""
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions, outbox=recording_outbox(sessions))
    request = NotificationRequest(
        key=f"{NUMBER}:1:admin_task",
        number=NUMBER,
        template="admin_task",
        recipients=("alex.admin@vendor.example",),
        context={**notice(NUMBER, 1, "x").context, "reason": "two seats short"},
    )
    records.record_event(
        EventRecord(
            number=NUMBER,
            step=1,
            at=NOW,
            actor=SYSTEM,
            action="panel_incomplete",
            content={"round": 2, "summary": "panel short"},
            notices=(request,),
        )
    )
    [row] = mail(sessions)
    assert row.template == "panel_incomplete"
    assert "is under appeal" in row.text_body and "two seats short" in row.text_body


def test_mail_ids_named_first_keep_the_recipients_order(sessions: SessionFactory) -> None:
    """The old code named the pending rows of a notice in the order of its recipients (one
    stored already, others new): the relay claims them in that order."""
    add_dispute(sessions, NUMBER)
    outbox = recording_outbox(sessions)
    with sessions.begin() as session:
        [middle] = outbox.enqueue_in(
            session, notice(NUMBER, 1, "acknowledgement", "b@x.example"), NOW
        )
    both = notice(NUMBER, 1, "acknowledgement", "a@x.example", "b@x.example", "c@x.example")
    with sessions.begin() as session:
        named = outbox.enqueue_in(session, both, NOW)
    by_recipient = {r.recipient: r.id for r in mail(sessions)}
    assert by_recipient["b@x.example"] == middle
    assert named == [by_recipient["a@x.example"], middle, by_recipient["c@x.example"]]


def test_one_entry_naming_one_email_twice_stores_it_once_and_names_it_twice(
    sessions: SessionFactory,
) -> None:
    """Two notices of one entry with the same key (and recipients differing in case): one row,
    the last spelling of the recipient, named for sending first once per notice (the second
    notice finds the first's row, stored by the same transaction)."""
    add_dispute(sessions, NUMBER)
    box = recording_outbox(sessions)
    calls = nudged(box)
    records = RecordActivities(sessions, outbox=box)
    twice = notice(NUMBER, 1, "acknowledgement", "Nora@Northwind.example", "nora@northwind.example")
    records.record_event(event(NUMBER, 1, notices=(twice, twice)))
    [row] = mail(sessions)
    assert row.recipient == "nora@northwind.example" and row.state is OutboxState.PENDING
    assert calls == [[row.id, row.id]]


# --- hostile content --------------------------------------------------------------------------

NUL = "a\x00b"
SURROGATE = "a\ud800b"


def hostile_cases() -> list[tuple[str, str]]:
    return [
        (where, value)
        for where in ("content", "live", "note", "task", "recipient", "notice_key")
        for value in ("nul", "surrogate")
    ]


def hostile_record(where: str, value: str) -> EventRecord:
    text = NUL if value == "nul" else SURROGATE
    record: dict[str, Any] = {"content": {"summary": "ok"}}
    if where == "content":
        record["content"] = {"summary": text, "deep": {"k": [text]}}
    elif where == "live":
        record["live"] = LiveDelta(version=1, sections={"summary": text})
    elif where == "note":
        record["live"] = LiveDelta(version=1, notes=(note(text),))
    elif where == "task":
        record["open_tasks"] = (task(f"{NUMBER}:t", title=text),)
    elif where == "recipient":
        record["notices"] = (notice(NUMBER, 1, "acknowledgement", f"x{text}@y.example"),)
    else:
        bad = notice(NUMBER, 1, "acknowledgement", "nora@northwind.example")
        record["notices"] = (bad.model_copy(update={"key": f"{NUMBER}:1:{text}"}),)
    return EventRecord(number=NUMBER, step=1, at=NOW, actor=SYSTEM, action="hostile", **record)


def outcome(sessions: SessionFactory, where: str, value: str) -> str:
    add_dispute(sessions, NUMBER)
    records = RecordActivities(sessions, outbox=recording_outbox(sessions))
    record = hostile_record(where, value)
    try:
        recorded = records.record_event(record)
    except (SQLAlchemyError, UnicodeError, ValueError) as e:
        assert trail(sessions, NUMBER) == [] and tasks(sessions) == [] and mail(sessions) == []
        assert live(sessions, NUMBER) == (None, [])
        cause = getattr(e, "orig", None) or e
        return f"{type(e).__name__}: {type(cause).__name__}"
    [entry] = trail(sessions, NUMBER)
    assert entry.hash == recorded.hash and first_broken_link([entry]) is None
    assert entry.content == record.content
    if record.live is not None:
        row, notes = live(sessions, NUMBER)
        assert row is not None and row.state.get("summary") == record.live.sections.get("summary")
        assert [n["text"] for n in notes] == [n.text for n in record.live.notes]
    if record.open_tasks:
        assert [t.title for t in tasks(sessions)] == [record.open_tasks[0].title]
    if record.notices:
        rows = mail(sessions)
        assert [r.recipient for r in rows] == list(record.notices[0].recipients)
    return "stored"


# What the ORM code did with each, on each database (run against 99ba827^).
STORED = "stored"
ENCODE = "UnicodeEncodeError: UnicodeEncodeError"
DATA = "DataError: DataError"
HOSTILE_BEFORE: dict[str, dict[tuple[str, str], str]] = {
    "sqlite": {
        **{(where, value): STORED for where, value in hostile_cases()},
        ("task", "surrogate"): ENCODE,
        ("recipient", "surrogate"): ENCODE,
        ("notice_key", "surrogate"): ENCODE,
    },
    "postgresql": {
        **{(where, value): STORED for where, value in hostile_cases()},
        ("task", "nul"): DATA,
        ("task", "surrogate"): ENCODE,
        ("recipient", "nul"): DATA,
        ("recipient", "surrogate"): ENCODE,
        ("notice_key", "nul"): DATA,
        ("notice_key", "surrogate"): ENCODE,
    },
}


@pytest.mark.parametrize(("where", "value"), hostile_cases())
def test_hostile_content_is_stored_or_refused_as_before(
    sessions: SessionFactory, where: str, value: str
) -> None:
    got = outcome(sessions, where, value)
    dialect = sessions.engine.dialect.name
    assert got == HOSTILE_BEFORE[dialect][(where, value)]
