"""Adversarial probes on local activities and replay (temporalio/sdk-python#1578 and the shapes
a busy worker records).

sdk-python#1578: when two local activities of one workflow are outstanding at once, their
results reach the workflow in completion order in the original run but in sequence order on
replay, so coroutines resume in another order and replay fails. DisputeWorkflow has two local
activities, `record_event` (`_record`, under `_record_lock`) and `check_texts`
(`_check_texts`, under no lock of its own: only the decision lock of the handler).

Each probe counts, in the worker, the local activities of each dispute running at the same
time (`Overlap`), holds chosen calls on `Gate`s, and replays the histories it made (as
recorded and split after each record: tests/races.py `replay_all`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select
from temporalio import activity, workflow
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    StartLocalActivityInput,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from accord.disputes import texts
from activities.records import RecordActivities
from activities.texts import TextActivities
from models.enums import DisputeStage
from models.payloads import (
    AddNote,
    CarriedClock,
    Deadline,
    DisputeCarried,
    DisputeInput,
    MediatorChoice,
    RespondToOffer,
    SimilarPrecedents,
    TextRef,
)
from models.tables import DisputeLive
from tests.conftest import MailCapture, Stack, make_settings, seed
from tests.history_splits import dispute_replayer, split_replay_failures
from tests.races import Gate, begin, local_activities, outcome, replay_all
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from workflows.dispute import DisputeWorkflow

NORA = "nora@northwind.example"
CARL = "carl@contoso.example"


class Overlap:
    """The local activities of each dispute in the worker at the same time: how many at most,
    and which ones were running together then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, list[str]] = {}
        self.most: dict[str, int] = {}
        self.together: dict[str, list[tuple[str, ...]]] = {}

    def enter(self, number: str, what: str) -> None:
        with self._lock:
            running = self._running.setdefault(number, [])
            running.append(what)
            if len(running) > self.most.get(number, 0):
                self.most[number] = len(running)
            if len(running) > 1:
                self.together.setdefault(number, []).append(tuple(running))

    def leave(self, number: str, what: str) -> None:
        with self._lock:
            self._running[number].remove(what)

    def running(self, number: str) -> list[str]:
        with self._lock:
            return list(self._running.get(number, []))


def probed(
    cls: type, name: str, gates: Sequence[Gate], overlap: Overlap, label: Callable[[Any], str]
) -> Callable[..., Any]:
    """`cls.name` (a sync activity) as an activity of the same name, counted in `overlap` for
    its whole call, that first passes through each of `gates`."""
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self: Any, request: Any) -> Any:
        what = f"{name}:{label(request)}"
        overlap.enter(request.number, what)
        try:
            for gate in gates:
                gate.passing(request)
            return original(self, request)
        finally:
            overlap.leave(request.number, what)

    del wrapper.__dict__["__temporal_activity_definition"]
    return activity.defn(name=name)(wrapper)


@dataclass
class Probe:
    stack: Stack
    record: tuple[Gate, Gate]
    check: tuple[Gate, Gate]
    overlap: Overlap

    def release_all(self) -> None:
        for gate in (*self.record, *self.check):
            gate.release()


@pytest.fixture
async def probe(
    monkeypatch: pytest.MonkeyPatch,
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Probe]:
    """A stack like the `race` fixture's (2 s workflow tasks), whose two local activities are
    counted and can each be held twice over (two gates each). No replay at teardown: each
    probe replays and asserts itself."""
    overlap = Overlap()
    record = (Gate(), Gate())
    check = (Gate(), Gate())
    monkeypatch.setattr(
        RecordActivities,
        "record_event",
        probed(RecordActivities, "record_event", record, overlap, lambda r: f"{r.step}:{r.action}"),
    )
    monkeypatch.setattr(
        TextActivities,
        "check_texts",
        probed(TextActivities, "check_texts", check, overlap, lambda r: r.refs[0].id),
    )
    mail, port = smtp
    stack = Stack(env, make_settings(sqlite_url, port, tmp_path, workflow_task_seconds=2), mail)
    seed(stack.sessions)
    await stack.worker.__aenter__()
    found = Probe(stack, record, check, overlap)
    try:
        yield found
    finally:
        found.release_all()
        await stack.worker.__aexit__(None, None, None)


def stored(stack: Stack, number: str, author: str, body: str) -> TextRef:
    return texts.store(stack.sessions, number, "note", author, body, field="text", limits=None)


def event_types(history: WorkflowHistory) -> list[str]:
    """Each event's type, and for a marker what it records (a local activity's type)."""
    shown = []
    for e in history.events:
        name: str = e.WhichOneof("attributes") or ""
        if e.HasField("marker_recorded_event_attributes"):
            name = f"marker:{e.marker_recorded_event_attributes.marker_name}"
        shown.append(f"{e.event_id}:{name.removesuffix('_event_attributes')}")
    return shown


async def replays(stack: Stack, history: WorkflowHistory) -> list[str]:
    """Replay failures of one history, as recorded and split after each record."""
    replayer = dispute_replayer(stack.client.data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    failures = [] if result.replay_failure is None else [f"as recorded: {result.replay_failure!r}"]
    return failures + await split_replay_failures(replayer, history)


# --- 1. Under the decision lock: never two local activities at once ----------------------------


async def test_a_text_check_does_not_start_while_another_actions_record_is_held(
    probe: Probe,
) -> None:
    """Note A's record is held in the worker (its workflow task heartbeats); note B, naming a
    stored text, is accepted meanwhile. B's text check must not run until A's record is done:
    the decision lock keeps the dispute to one local activity at a time. Both notes land, and
    the history replays as recorded and split after each record."""
    stack = probe.stack
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    actor = stack.actor(mediator)
    first = stored(stack, number, actor.id, "Note A, held in its record.")
    second = stored(stack, number, actor.id, "Note B, sent while A's record is held.")
    probe.record[0].hold(lambda record: record.action == "note_added")
    note_a = await begin(
        stack, number, DisputeWorkflow.add_note, AddNote(actor=actor, text_ref=first)
    )
    await probe.record[0].reached()
    note_b = await begin(
        stack, number, DisputeWorkflow.add_note, AddNote(actor=actor, text_ref=second)
    )
    # Several heartbeats of the held task (80 % of 2 s each): room for B to start its check.
    await asyncio.sleep(4)
    running = probe.overlap.running(number)
    assert len(running) == 1 and running[0].endswith(":note_added"), running
    probe.record[0].release()
    assert not isinstance(await outcome(note_a), str)
    assert not isinstance(await outcome(note_b), str)
    assert probe.overlap.most[number] == 1, probe.overlap.together
    state = await stack.wait_for(number, lambda s: len(s.notes) == 2)
    assert [n.text_ref for n in state.notes] == [first, second]
    assert await replay_all(stack) == []


async def test_queries_answered_while_a_record_is_held_leave_a_history_that_replays(
    probe: Probe,
) -> None:
    """A query answered while a record (a local activity) is held: core completes the task with
    the pending resolution forcing a new one. The history replays, as recorded and split."""
    stack = probe.stack
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    actor = stack.actor(mediator)
    probe.record[0].hold(lambda record: record.action == "note_added")
    note = await begin(
        stack,
        number,
        DisputeWorkflow.add_note,
        AddNote(actor=actor, text_ref=stored(stack, number, actor.id, "Held note.")),
    )
    await probe.record[0].reached()
    answered = []
    for _ in range(3):
        state = await asyncio.wait_for(stack.handle(number).query(DisputeWorkflow.get_state), 20)
        answered.append(len(state.notes))
        await asyncio.sleep(0.5)
    probe.record[0].release()
    assert not isinstance(await outcome(note), str)
    # The note is in the state from the moment its handler ran, before its record finished.
    assert answered == [1, 1, 1]
    # And again, with a query, an action, and the lifecycle all in the same window.
    probe.record[0].hold(lambda record: record.action == "note_added")
    held = await begin(
        stack,
        number,
        DisputeWorkflow.add_note,
        AddNote(actor=actor, text_ref=stored(stack, number, actor.id, "Second held note.")),
    )
    await probe.record[0].reached()
    query = asyncio.ensure_future(stack.handle(number).query(DisputeWorkflow.get_state))
    racing = await begin(
        stack,
        number,
        DisputeWorkflow.add_note,
        AddNote(actor=actor, text="An inline note, accepted while the other is held."),
    )
    await asyncio.wait_for(query, 20)
    probe.record[0].release()
    assert not isinstance(await outcome(held), str)
    assert not isinstance(await outcome(racing), str)
    await stack.wait_for(number, lambda s: len(s.notes) == 3)
    assert probe.overlap.most[number] == 1, probe.overlap.together
    history = await stack.handle(number).fetch_history()
    assert await replays(stack, history) == []


# --- 2. A run whose decision lock is off: continued as new from a run that predates it -------


async def _decoded(stack: Stack, payloads: Any, kind: type) -> Any:
    [value] = await stack.client.data_converter.decode(payloads, [kind])
    return value


async def _activity_result(stack: Stack, history: WorkflowHistory, name: str, kind: type) -> Any:
    """The last result of regular activity `name` in `history`."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    done = [
        e.activity_task_completed_event_attributes
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and scheduled[e.activity_task_completed_event_attributes.scheduled_event_id] == name
    ]
    return await _decoded(stack, done[-1].result.payloads, kind)


async def continued_without_the_lock(stack: Stack) -> tuple[str, str]:
    """A dispute in mediation whose run is the one a run started before DECISION_LOCK_PATCH
    hands on when it continues as new in mediation (CONTINUE_AS_NEW_PATCH, asked where
    mediation begins, is yes on new code; `serial` is carried as False, the old run's answer):
    its state carried exactly as `_carry` writes it. Made by ending a real dispute's run in
    mediation and starting the next run with that dispute's own input and state."""
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.recorded(number)
    handle = stack.handle(number)
    state = await handle.query(DisputeWorkflow.get_state)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    dispute: DisputeInput = await _decoded(stack, started.input.payloads, DisputeInput)
    choice = await _activity_result(stack, history, "assign_mediator", MediatorChoice)
    deadline = await _activity_result(stack, history, "compute_deadline", Deadline)
    similar = await _activity_result(stack, history, "find_similar_precedents", SimilarPrecedents)
    events = stack.events(number)
    with stack.sessions.read() as session:
        version = session.exec(
            select(DisputeLive.version).where(DisputeLive.dispute_number == number)
        ).one()
    carried = DisputeCarried(
        stage=DisputeStage.MEDIATION,
        seq=events[-1].seq,
        head=(events[-1].seq, events[-1].hash),
        chained=True,
        projected=DisputeStage.MEDIATION,
        serial=False,
        history=state.history,
        round=1,
        mediator=choice,
        clocks={"mediation": CarriedClock(deadline=deadline)},
        similar=similar,
        live_version=version,
    )
    await handle.terminate("probe: the next run is started with the lock off")
    await stack.client.start_workflow(
        DisputeWorkflow.run,
        dispute.model_copy(update={"carried": carried}),
        id=number,
        task_queue=stack.settings.task_queue,
        task_timeout=timedelta(seconds=stack.settings.workflow_task_seconds),
    )
    await stack.wait_for(number, lambda s: s.stage is DisputeStage.MEDIATION)
    return number, mediator


async def two_notes_a_held(
    probe: Probe, text_a: str, text_b: str, *, hold_b: bool = False
) -> tuple[str, TextRef, TextRef, Any, Any]:
    """In a run without the decision lock: note A sent with its text check held, then note B
    (its check held too if `hold_b`); the dispute, both texts and both updates."""
    stack = probe.stack
    number, mediator = await continued_without_the_lock(stack)
    actor = stack.actor(mediator)
    first = stored(stack, number, actor.id, text_a)
    second = stored(stack, number, actor.id, text_b)
    probe.check[0].hold(lambda request: request.refs[0].id == first.id)
    if hold_b:
        probe.check[1].hold(lambda request: request.refs[0].id == second.id)
    note_a = await begin(
        stack, number, DisputeWorkflow.add_note, AddNote(actor=actor, text_ref=first)
    )
    await probe.check[0].reached()
    note_b = await begin(
        stack, number, DisputeWorkflow.add_note, AddNote(actor=actor, text_ref=second)
    )
    return number, first, second, note_a, note_b


async def test_two_text_checks_outstanding_at_once_finishing_out_of_order_replay(
    probe: Probe,
) -> None:
    """Without the decision lock two notes' text checks run at once. Note A's check is held,
    note B's passes and B is recorded; then A's is let go. The run's history must replay."""
    stack = probe.stack
    number, first, second, note_a, note_b = await two_notes_a_held(
        probe, "Note A, its check held.", "Note B, checked while A's check is held."
    )
    assert not isinstance(await outcome(note_b), str)
    probe.check[0].release()
    assert not isinstance(await outcome(note_a), str)
    state = await stack.wait_for(number, lambda s: len(s.notes) == 2)
    assert {n.text_ref for n in state.notes} == {first, second}
    # Two local activities of this dispute were outstanding together.
    assert probe.overlap.most[number] == 2, probe.overlap.together
    history = await stack.handle(number).fetch_history()
    print(local_activities(history))
    assert await replays(stack, history) == []


async def test_two_held_text_checks_let_go_second_first_replay(probe: Probe) -> None:
    """Both notes' text checks held at once, B's let go before A's within the same workflow
    task (the resolutions reach the workflow out of sequence order); the history must replay."""
    stack = probe.stack
    number, first, second, note_a, note_b = await two_notes_a_held(
        probe, "Note A, its check held longest.", "Note B, its check let go first.", hold_b=True
    )
    await probe.check[1].reached()
    assert sorted(probe.overlap.running(number)) == sorted(
        [f"check_texts:{first.id}", f"check_texts:{second.id}"]
    )
    probe.check[1].release()
    await asyncio.sleep(0.05)
    probe.check[0].release()
    assert not isinstance(await outcome(note_a), str)
    assert not isinstance(await outcome(note_b), str)
    await stack.wait_for(number, lambda s: len(s.notes) == 2)
    history = await stack.handle(number).fetch_history()
    print(local_activities(history))
    assert await replays(stack, history) == []


class _SnapshotOut(WorkflowOutboundInterceptor):
    def start_local_activity(self, input: StartLocalActivityInput) -> Any:
        handle = super().start_local_activity(input)
        _Snapshot.histories.append([(h.seq, h.action, h.at) for h in workflow.instance()._history])
        return handle


class _Snapshot(WorkflowInboundInterceptor):
    """After each update handler of a replay: what `_seen` makes of the workflow's state; and
    at each local activity it schedules, its history entries with their times."""

    taken: list[list[tuple[int, str, str]]] = []
    histories: list[list[tuple[int, str, Any]]] = []

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_SnapshotOut(outbound))

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        result = await super().handle_update_handler(input)
        instance = workflow.instance()
        _Snapshot.taken.append(
            _seen(SimpleNamespace(history=instance._history, notes=instance._notes))
        )
        return result


class _Snapshots(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Snapshot


async def replayed_state(stack: Stack, history: WorkflowHistory) -> list[tuple[int, str, str]]:
    """The state the workflow holds once `history` is replayed (no sandbox, so that the
    snapshot leaves it), as `_seen` shows it: what a fresh worker would answer a query with."""
    _Snapshot.taken.clear()
    _Snapshot.histories.clear()
    await dispute_replayer(
        stack.client.data_converter,
        interceptors=[_Snapshots()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ).replay_workflow(history)
    return _Snapshot.taken[-1]


def names(ref: TextRef, request: Any) -> bool:
    """Whether a text check's request names `ref` first."""
    return bool(request.refs[0].id == ref.id)


def _seen(state: Any) -> list[tuple[int, str, str]]:
    """What a replay must give back as it was: the history entries and the notes, in order."""
    return [(h.seq, h.action, h.summary) for h in state.history] + [
        (i, n.author, n.text_ref.id if n.text_ref else n.text) for i, n in enumerate(state.notes)
    ]


# --- 3. A query that ends the task with a record's marker before the workflow saw its result ---


def live_splits(history: WorkflowHistory) -> list[str]:
    """Local activity markers that ended a workflow task, the commands of the code after
    them written by the next task: the busy shape, as a live worker recorded it."""
    types = event_types(history)
    return [
        types[i]
        for i in range(len(types) - 4)
        if types[i].endswith("marker:core_local_activity")
        and [t.split(":", 1)[1] for t in types[i + 1 : i + 4]]
        == ["workflow_task_scheduled", "workflow_task_started", "workflow_task_completed"]
        and types[i + 4].split(":", 1)[1]
        in ("upsert_workflow_search_attributes", "marker:core_local_activity", "timer_started")
    ]


async def times_unlike_the_audit_trail(
    stack: Stack, number: str, history: WorkflowHistory
) -> list[tuple[Any, Any]]:
    """History entries whose time, in the workflow replayed from `history`, is not the time
    the audit trail holds (written by the live run): (replayed, audit trail) each."""
    await replayed_state(stack, history)
    replayed = _Snapshot.histories[-1]
    audit = [(e.seq, e.action, e.at.astimezone(UTC)) for e in stack.events(number)]
    return [
        (entry, trail)
        for entry, trail in zip(
            [(seq, action, at.astimezone(UTC)) for seq, action, at in replayed], audit, strict=False
        )
        if entry != trail
    ]


async def test_control_a_settlement_without_a_busy_task_keeps_its_times_on_replay(
    probe: Probe,
) -> None:
    """The same settlement with no query in the way: the replayed history entries carry the
    audit trail's times (the comparison above is sound)."""
    stack = probe.stack
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    await stack.handle(number).execute_update(
        DisputeWorkflow.propose_settlement, split_offer(stack, mediator)
    )
    for who in (CARL, NORA):
        await stack.handle(number).execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(who), offer_id="offer-1", accept=True),
        )
    await stack.handle(number).result()
    history = await stack.handle(number).fetch_history()
    assert live_splits(history) == []
    assert "settled" in stack.actions(number)
    assert await replays(stack, history) == []
    assert await times_unlike_the_audit_trail(stack, number, history) == []
