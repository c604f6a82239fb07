"""Continue-as-new after mediation (issue 14, item 1(c)): a dispute waiting in formal review
(for a panel, the votes, the ruling, with a vacant seat), in the appeal window, or in the remedy
stage (for an admin to retry or waive a remedy) continues as new when Temporal suggests it and
the next run goes on exactly where it stood: nothing recorded, sent or applied twice.

And the guard for whoever adds state later: every attribute of the workflow is either carried
to the next run or named here as deliberately not carried."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from pydantic import BaseModel, ValidationError
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from accord.directory.records import Directory, PersonRecord
from accord.disputes import texts
from accord.rules.audit import first_broken_link
from models.enums import DisputeStage, RemedyState, Role, TaskKind
from models.payloads import (
    Actor,
    AddMessage,
    Appeal,
    CastVote,
    Deadline,
    DisputeCarried,
    DisputeState,
    HistoryEntry,
    MailMessage,
    MediatorChoice,
    NoteView,
    OpenTask,
    PanelChoice,
    Recommendation,
    Recuse,
    RedrawPanel,
    RemedyProgress,
    RespondToOffer,
    RetryRemedy,
    RulingView,
    SimilarPrecedents,
    TextRef,
    UnrecordedStep,
)
from models.tables import LedgerCommissionSplit, OutboxMessage, RemedyApplication
from tests.conftest import CONVERTER, HISTORIES, SUGGEST_AFTER, MailCapture, Stack, dev_stack, seed
from tests.history_splits import dispute_replayer, split_replay_failures
from tests.races import HANG, Gate, begin, outcome
from tests.webhook_receiver import Receiver
from tests.workflows.test_continue_as_new import run_id
from tests.workflows.test_dispute_paths import in_mediation, split_offer
from tests.workflows.test_formal_review import (
    PANEL,
    appeal_by_contoso,
    appoint_alternates_and_redraw,
    in_review,
    open_ballot,
    ruling,
    vote,
)
from workflows.core import Clock, DisputeCore, InformationRequest, Offer
from workflows.dispute import DisputeWorkflow

SECRET = "continue-as-new-remedy-secret"
INBOUND_IDS = itertools.count(1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET.encode()) as running:
        yield running


@pytest.fixture
async def stack(
    eager_server: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[Stack]:
    harness = dev_stack(
        eager_server,
        database_url,
        smtp,
        tmp_path,
        remedy_webhooks={"commission_split": receiver.url},
        remedy_webhook_secret=SECRET,
        remedy_webhook_timeout_seconds=2,
    )
    async with harness.worker:
        yield harness


def outbox(stack: Stack, number: str) -> list[tuple[str, str, str]]:
    """Every email the dispute has enqueued: (template, recipient, key)."""
    with stack.sessions.read() as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.dispute_number == number)
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
        return [(r.template, r.recipient, r.key) for r in rows]


async def enqueued(stack: Stack, number: str, template: str, seconds: float = 30) -> None:
    """Wait until the dispute has enqueued `template` (its admins' task opens with the entry, a
    moment before the email is enqueued: counting the outbox in between saw it appear later)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not any(t == template for t, _, _ in outbox(stack, number)):
        assert asyncio.get_running_loop().time() < deadline, f"{template} never enqueued"
        await asyncio.sleep(0.1)


def without_last_entry(state: DisputeState) -> dict[str, Any]:
    return state.model_copy(update={"history": state.history[:-1]}).model_dump(mode="json")


def party_reply(stack: Stack, number: str, login: str, text: str) -> AddMessage:
    party = stack.actor(login)
    reply = AddMessage(
        actor=party,
        message=MailMessage(
            inbound_id=next(INBOUND_IDS),
            sender=party.id,
            subject=f"Re: [{number}] {text}",
            text=text,
            side_partner_id=party.partner_id,
        ),
    )
    stored = texts.externalise(stack.sessions, number, reply, None)
    assert isinstance(stored, AddMessage)
    return stored


async def roll_over(stack: Stack, number: str) -> tuple[DisputeState, str]:
    """Replies from the parties (they may write in every stage) until Temporal suggests a new
    run and the dispute takes it; checks the new run holds exactly what the old one did (the
    last reply aside) and that taking it recorded, enqueued and applied nothing. Returns the
    state after and the id of the run that ended."""
    handle = stack.handle(number)
    old_run = await run_id(stack, number)
    before: DisputeState | None = None
    mail_before: list[tuple[str, str, str]] = []
    sent = 0
    # At least one reply: the history may already have passed Temporal's suggestion on the way
    # here (the dispute then took a new run by itself, before `old_run` was read), and this
    # must see a handover it caused from the wait it stands at.
    while sent == 0 or await run_id(stack, number) == old_run:
        assert sent < 120, "the dispute never continued as new"
        await stack.recorded(number)
        before = await stack.state(number)
        mail_before = outbox(stack, number)
        login = ("nora@northwind.example", "carl@contoso.example")[sent % 2]
        await handle.execute_update(
            DisputeWorkflow.add_message,
            party_reply(stack, number, login, f"One more thing, reply {sent}."),
        )
        sent += 1
    assert before is not None
    await stack.recorded(number)
    after = await stack.state(number)
    assert after.history[-1].action == "message_received"
    assert len(after.history) == len(before.history) + 1
    assert without_last_entry(after) == before.model_dump(mode="json")
    # The new run took up the wait: it sent nothing again (a message adds no email).
    assert outbox(stack, number) == mail_before
    return after, old_run


async def replay_every_run(stack: Stack, number: str, name: str) -> int:
    """Each run of the dispute, from the last back to the first, replays on this code; kept
    for the replay test under `name` when ACCORD_RECORD_HISTORIES=1 (never overwriting)."""
    runs: list[WorkflowHistory] = []
    run: str | None = await run_id(stack, number)
    while run:
        history = await stack.client.get_workflow_handle(number, run_id=run).fetch_history()
        runs.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        run = started.continued_execution_run_id or None
    replayer = dispute_replayer(CONVERTER)
    for n, history in enumerate(runs, start=1):
        await replayer.replay_workflow(history)
        # A sample of the busy shapes: these runs are long, and each shape a whole replay.
        assert await split_replay_failures(replayer, history, most=4) == []
        path = HISTORIES / f"{name}--run{n}.json"
        if os.environ.get("ACCORD_RECORD_HISTORIES") == "1" and not path.exists():
            path.write_text(history.to_json())
    return len(runs)


def check_trail(stack: Stack, number: str, final: DisputeState) -> None:
    events = stack.events(number)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert first_broken_link(events) is None
    assert [(h.seq, h.action) for h in final.history] == [(e.seq, e.action) for e in events]
    assert not final.open_tasks


def check_mail_once(stack: Stack, number: str, templates: set[str]) -> None:
    """Each of these notifications went to each recipient at most once over every run."""
    counts = Counter((t, r) for t, r, _ in outbox(stack, number) if t in templates)
    assert counts and max(counts.values()) == 1, counts


async def test_review_appeal_and_remedies_continue_as_new_at_every_wait(
    stack: Stack, receiver: Receiver
) -> None:
    receiver.refuse_with = 422  # the ruling's remedy waits for an admin
    number = await in_review(stack)
    handle = stack.handle(number)

    # Round 1, the ballot sealed with two votes in: the next run keeps it sealed, the same two.
    await vote(stack, number, "board.sales")
    await vote(stack, number, "board.marketing")
    state, _ = await roll_over(stack, number)
    assert state.stage is DisputeStage.FORMAL_REVIEW
    assert state.review is not None and state.review.sealed and len(state.review.votes) == 2
    assert [v.outcome for v in state.review.votes] == [None, None]
    await vote(stack, number, "board.product")
    await open_ballot(stack, number)
    await handle.execute_update(DisputeWorkflow.issue_ruling, ruling(stack))

    # The appeal window: its deadline and the ruling carried; the ruling is not announced again.
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    await stack.mail.wait_for("nora@northwind.example", "appeal window open")
    state, _ = await roll_over(stack, number)
    assert state.stage is DisputeStage.APPEAL_WINDOW and len(state.rulings) == 1
    assert state.review is not None and state.review.appeal_deadline is not None
    await handle.execute_update(DisputeWorkflow.appeal, appeal_by_contoso(stack))

    # Round 2 waits for the admins to complete the board (everyone sat on the first panel).
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    state, _ = await roll_over(stack, number)
    assert state.stage is DisputeStage.FORMAL_REVIEW
    assert any(t.kind is TaskKind.COMPOSE_PANEL for t in state.open_tasks)
    await appoint_alternates_and_redraw(stack, number)
    state = await stack.wait_for(
        number,
        lambda s: (
            s.review is not None
            and s.review.round == 2
            and any(t.kind is TaskKind.CAST_VOTE for t in s.open_tasks)
        ),
    )
    assert state.review is not None
    assert {m.person_id for m in state.review.panel}.isdisjoint(PANEL)

    # Round 2 with a vacant seat (a recusal, nobody to replace them) and three sealed votes.
    for who in ("alt.sales", "alt.marketing", "alt.product"):
        await vote(stack, number, who)
    await handle.execute_update(
        DisputeWorkflow.recuse,
        Recuse(actor=stack.actor("alt.finance"), reason="Finance approved the disputed rebate."),
    )
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.COMPOSE_PANEL for t in s.open_tasks)
    )
    state, _ = await roll_over(stack, number)
    assert state.review is not None and state.review.sealed and len(state.review.votes) == 3
    assert "alt.finance" not in [m.person_id for m in state.review.panel]
    seed(
        stack.sessions,
        Directory(
            people=[
                PersonRecord(
                    id="second.finance",
                    name="Second Finance",
                    email="second.finance@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="finance",
                )
            ]
        ),
    )
    await handle.execute_update(
        DisputeWorkflow.redraw_panel,
        RedrawPanel(actor=stack.actor("alex.admin"), reason="Second Finance appointed"),
    )
    await open_ballot(stack, number, chair="alt.chair")
    await handle.execute_update(
        DisputeWorkflow.issue_ruling, ruling(stack, chair="alt.chair", relied=("alt.sales",))
    )

    # The remedy stage: the refused remedy waits for an admin across the new run.
    state = await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    assert state.stage is DisputeStage.REMEDY
    await enqueued(stack, number, "remedy_failed")
    state, _ = await roll_over(stack, number)
    assert state.stage is DisputeStage.REMEDY and [r.state for r in state.remedies] == ["failed"]
    receiver.refuse_with = None
    await handle.execute_update(
        DisputeWorkflow.retry_remedy,
        RetryRemedy(actor=stack.actor("alex.admin"), position=0, reason="The CRM takes it now"),
    )
    outcome = await handle.result()
    assert (outcome.stage, outcome.outcome) == (DisputeStage.CLOSED, "ruled_uphold")

    final = await stack.state(number)
    check_trail(stack, number, final)
    assert [r.final for r in final.rulings] == [False, True]
    actions = stack.actions(number)
    for once in ("ruling_issued", "panel_drawn", "remedy_failed", "remedy_applied"):
        assert actions.count(once) == (2 if once in ("ruling_issued", "panel_drawn") else 1)
    assert actions.count("panel_replacement") == 1
    key = f"{number}:ruling-2:0"
    assert receiver.applications[key] == 1
    with stack.sessions.read() as session:
        rows = session.exec(
            select(RemedyApplication).where(RemedyApplication.dispute_number == number)
        ).all()
        assert [(r.key, r.state) for r in rows] == [(key, RemedyState.VERIFIED)]
    await stack.mail_settled()
    check_mail_once(
        stack,
        number,
        {
            "ruling",
            "final_ruling",
            "appeal_received",
            "remedy_failed",
            "remedy_applied",
            "escalation",
        },
    )
    assert await replay_every_run(stack, number, "continue-as-new-in-review") >= 6


async def test_a_settlements_remedy_waiting_for_an_admin_continues_as_new_and_is_applied_once(
    stack: Stack, receiver: Receiver
) -> None:
    receiver.refuse_with = 422
    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    handle = stack.handle(number)
    await handle.execute_update(DisputeWorkflow.propose_settlement, split_offer(stack, mediator))
    for login in ("nora@northwind.example", "carl@contoso.example"):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(actor=stack.actor(login), offer_id="offer-1", accept=True),
        )
    await stack.wait_for(
        number, lambda s: any(t.kind is TaskKind.RESOLVE_REMEDY for t in s.open_tasks)
    )
    await enqueued(stack, number, "remedy_failed")
    state, _ = await roll_over(stack, number)
    assert state.stage is DisputeStage.REMEDY and state.outcome == "settled"
    assert any(d.purpose == "remedy" for d in state.deadlines)
    receiver.refuse_with = None
    await handle.execute_update(
        DisputeWorkflow.retry_remedy,
        RetryRemedy(actor=stack.actor("alex.admin"), position=0, reason="The CRM takes it now"),
    )
    outcome = await handle.result()
    assert (outcome.stage, outcome.outcome) == (DisputeStage.CLOSED, "settled")
    check_trail(stack, number, await stack.state(number))
    assert stack.actions(number).count("remedy_applied") == 1
    key = f"{number}:settlement:0"
    assert receiver.applications[key] == 1
    with stack.sessions.read() as session:
        rows = session.exec(
            select(RemedyApplication).where(RemedyApplication.dispute_number == number)
        ).all()
        assert [(r.key, r.state) for r in rows] == [(key, RemedyState.VERIFIED)]
        assert not session.exec(select(LedgerCommissionSplit)).all()  # the webhook applied it
    await stack.mail_settled()
    check_mail_once(stack, number, {"settlement", "remedy_failed", "remedy_applied"})
    assert await replay_every_run(stack, number, "continue-as-new-in-settled-remedy") >= 2


# --- every attribute of the workflow is carried ---------------------------------------------

NOT_CARRIED = {
    "_d": "the dispute's input itself, handed on whole beside what is carried",
    "_lock": "the decision lock: free between runs (a run continues as new holding none)",
    "_record_lock": "held only while one record is written, never across a continue-as-new",
    "_rollover": "asked of the patch again where each waiting point begins, in every run",
    "_earlier_updates": "rebuilt by _restore from the carried update ids",
    "_noticed": "asked of the patch again at the first entry with mail, in every run",
    "_local_record": "asked of the patch again at the first entry, in every run",
    "_patches_at_start": "asked again in every run's first task: a new run has the code's "
    "every patch",
    "_recommends": "asked again in every run's first task (a LATER_PATCHES patch)",
    "_live_sent": "what the read model holds is not known to a new run: it sends the whole state",
    "_live_asked": "the version a record in flight carries: none is in flight across a "
    "continue-as-new, and _live_version (carried) is at least as high",
}
"""Attributes deliberately not carried, and why. Anything else the workflow holds must be."""

WORKFLOW_SOURCES = ("core.py", "clocks.py", "actions.py", "review.py", "dispute.py")


def fake(kind: Any, salt: int = 1) -> Any:
    """A valid, non-default value of `kind` (a model filled field by field, optional ones too)."""
    origin = get_origin(kind)
    args = get_args(kind)
    if origin is Annotated:
        if args[0] is str:
            longest = min(
                (m.max_length for m in args[1:] if getattr(m, "max_length", None)), default=60
            )
            return fake(str, salt)[:longest]
        return fake(args[0], salt)
    if origin in (Union, UnionType):
        return fake(next(a for a in args if a is not type(None)), salt)
    if origin is Literal:
        return args[-1]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (fake(args[0], salt),)
        return tuple(fake(a, salt) for a in args)
    if origin in (list, set, frozenset):
        return origin([fake(args[0], salt)])
    if origin is dict:
        return {fake(args[0], salt): fake(args[1], salt)}
    if isinstance(kind, type) and issubclass(kind, Enum):
        return list(kind)[-1]
    if kind is bool:
        return True
    if kind is int:
        return 6 + salt
    if kind is float:
        return 0.75
    if kind is Decimal:
        return Decimal(salt * 10)
    if kind is str:
        return f"value {salt}, long enough to be a reason of substance"
    if kind is datetime:
        return datetime(2026, 11, 2, 9, salt, tzinfo=UTC)
    if kind is date:
        return date(2026, 11, salt)
    if kind is timedelta:
        return timedelta(hours=salt)
    if kind is TextRef:
        return TextRef(id=f"tx-{salt:032x}", sha256=f"{salt:064x}", size=salt)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        values = {}
        for name, info in kind.model_fields.items():
            annotation: Any = info.annotation
            if info.metadata:
                annotation = Annotated[(annotation, *info.metadata)]
            values[name] = fake(annotation, salt)
        while True:
            try:
                return kind.model_validate(values)
            except ValidationError as refused:
                # A rule between fields (a text inline or stored, not both): leave out those
                # the model refused that may be left out, and try again.
                optional = {
                    str(e["loc"][0])
                    for e in refused.errors()
                    if e["loc"] and not kind.model_fields[str(e["loc"][0])].is_required()
                } or {n for n, f in kind.model_fields.items() if not f.is_required()}
                optional &= set(values)
                if not optional:
                    raise
                values.pop(sorted(optional)[-1])
    if is_dataclass(kind) and isinstance(kind, type):
        hints = get_type_hints(kind)
        return kind(**{f.name: fake(hints[f.name], salt) for f in fields(kind)})
    raise TypeError(f"no fake value for {kind!r}")


def _samples() -> dict[str, Any]:
    """A non-default value for every attribute DisputeCore.__init__ sets (a new attribute
    without one here fails the test below: add it here and to _carry/_restore)."""
    offer = fake(Offer)
    task = fake(OpenTask)
    request = fake(InformationRequest)
    remedy = fake(RemedyProgress)
    vote_ = fake(CastVote)
    return {
        "_stage": DisputeStage.REMEDY,
        "_seq": 41,
        "_head": (41, "ab" * 32),
        "_unrecorded": [fake(UnrecordedStep)],
        "_chained": True,
        "_projected": DisputeStage.REMEDY,
        "_serial": True,
        "_history": [fake(HistoryEntry, 1), fake(HistoryEntry, 2)],
        "_stage_log": [(DisputeStage.TRIAGE, fake(datetime, 3))],
        "_round": 3,
        "_candidate": fake(MediatorChoice, 1),
        "_mediator": fake(MediatorChoice, 2),
        "_excluded": ["greta.hoffmann"],
        "_admin_pick": (fake(MediatorChoice, 3), fake(Actor), "the admins chose"),
        "_clocks": {"remedy": Clock(fake(Deadline), {0.5, 0.75})},
        "_breaches": ["acceptance", "review-1"],
        "_info": {request.id: request},
        "_pending_info": request.id,
        "_offers": {offer.id: offer},
        "_agreed": offer,
        "_impasse": "neither side will move",
        "_notes": [fake(NoteView)],
        "_tasks": {task.key: task},
        "_linked": ["DSP-2026-0009"],
        "_evidence_ids": ["evidence-1"],
        "_inbound_ids": [17],
        "_outcome": "ruled_uphold",
        "_wakeups": 5,
        "_remedies": {remedy.position: remedy},
        "_remedy_keys": {remedy.position: "DSP-1:ruling-2:0"},
        "_remedies_done": True,
        "_remedy_waiting": remedy.position,
        "_remedy_decision": "waive",
        "_review_round": 2,
        "_panel": fake(PanelChoice),
        "_awaiting_panel": True,
        "_redraw_requested": True,
        "_past_panelists": ["board.sales"],
        "_vacancies": ["finance", "chair"],
        "_votes": {vote_.actor.id: (vote_, fake(datetime, 4))},
        "_unsealed": True,
        "_ruling": fake(RulingView, 1),
        "_rulings": [fake(RulingView, 1), fake(RulingView, 2)],
        "_appeal": fake(Appeal),
        "_appeal_deadline": fake(datetime, 5),
        "_similar": fake(SimilarPrecedents),
        "_recommendation": fake(Recommendation),
        "_deadline_tasks": {"review": "deadline-review"},
        "_review_checked": True,
        "_update_ids": ["update-1", "update-2"],
        "_live_version": 41,
    }


def test_every_attribute_of_the_workflow_is_carried_to_the_next_run() -> None:
    # What every attribute starts as: the workflow's own constructor, without a workflow.
    blank = DisputeWorkflow.__new__(DisputeWorkflow)
    DisputeCore.__init__(blank)
    defaults = dict(vars(blank))
    # Assigned anywhere in the workflow's code, but not declared in __init__: not carried.
    assigned = {
        name
        for module in WORKFLOW_SOURCES
        for name in re.findall(
            r"self\.(_[a-z_]+)\s*(?::[^=\n]+)?=(?!=)",
            (Path(__file__).parents[2] / "workflows" / module).read_text(),
        )
    }
    assert assigned - set(defaults) - set(NOT_CARRIED) == set()
    samples = _samples()
    held = set(defaults) - set(NOT_CARRIED)
    assert held - set(samples) == set(), "give these a sample here and carry them"
    for name, value in samples.items():
        assert value != defaults[name], f"{name}: the sample is its default"

    source = DisputeWorkflow.__new__(DisputeWorkflow)
    DisputeCore.__init__(source)
    for name, value in samples.items():
        setattr(source, name, value)
    # Through JSON, as Temporal hands it to the next run.
    carried = DisputeCarried.model_validate_json(source._carry().model_dump_json())
    restored = DisputeWorkflow.__new__(DisputeWorkflow)
    DisputeCore.__init__(restored)
    restored._restore(carried)
    for name in sorted(held):
        assert getattr(restored, name) == getattr(source, name), f"{name} is not carried"
    assert restored._earlier_updates == frozenset(samples["_update_ids"])
    assert restored._agreed is restored._offers[samples["_agreed"].id]


# --- a ruling that arrives while the review is handing on ----------------------------------


@pytest.fixture
async def gated_stack(
    gates: dict[str, Gate],
    eager_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    # Short workflow tasks, as the `race` stack's: a held record keeps its task open.
    harness = dev_stack(eager_server, sqlite_url, smtp, tmp_path, workflow_task_seconds=2)
    async with harness.worker:
        yield harness
        for gate in gates.values():
            gate.release()


def seen_suggestion(history: WorkflowHistory) -> bool:
    """Whether a workflow task that Temporal started with its suggestion to continue as new
    has completed: the workflow has run with it."""
    suggested = False
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            suggested = event.workflow_task_started_event_attributes.suggest_continue_as_new
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and suggested:
            return True
    return False


async def queue_replies_past_the_suggestion(stack: Stack, number: str) -> list[Any]:
    """Replies accepted behind the held one (each waits for the decision lock) until the
    workflow has run with Temporal's suggestion to continue as new: the lifecycle, woken by
    it, queues for the lock behind them, and whatever is accepted next queues behind it."""
    handle = stack.handle(number)
    queued = []
    for n in range(8):  # Temporal takes at most 10 updates in flight
        if seen_suggestion(await handle.fetch_history()):
            # One more, accepted after the lifecycle has seen the suggestion.
            queued.append(
                await begin(
                    stack,
                    number,
                    DisputeWorkflow.add_message,
                    party_reply(stack, number, "carl@contoso.example", "Queued last."),
                )
            )
            return queued
        queued.append(
            await begin(
                stack,
                number,
                DisputeWorkflow.add_message,
                party_reply(stack, number, "carl@contoso.example", f"Queued reply {n}."),
            )
        )
    raise AssertionError("the history never grew past the suggestion")


async def test_a_ruling_arriving_while_the_review_hands_on_is_taken_not_waited_for(
    gated_stack: Stack, gates: dict[str, Gate]
) -> None:
    """The lifecycle starts continuing as new while a party's reply is being recorded; the
    chair's ruling arrives behind it. The ruling waits for the dispute to move on, so waiting
    for every action to finish first would wait forever: the dispute takes the ruling instead,
    opens the appeal window, and hands on there."""
    stack = gated_stack
    number = await in_review(stack)
    for who in PANEL[:3]:
        await vote(stack, number, who)
    await open_ballot(stack, number)
    review_run = await run_id(stack, number)
    early = 0
    # Replies, one after the other, until the run's history is a few actions short of the
    # suggestion (Temporal takes at most 10 actions in flight, so the rest must be few).
    for n in range(60):
        if len((await stack.handle(number).fetch_history()).events) >= SUGGEST_AFTER - 18:
            break
        await stack.handle(number).execute_update(
            DisputeWorkflow.add_message,
            party_reply(stack, number, "nora@northwind.example", f"Early reply {n}."),
        )
        early += 1
    assert await run_id(stack, number) == review_run

    # A reply held in the middle of its record, holding the decision lock.
    gates["record_event"].hold(lambda record: record.action == "message_received")
    held = await begin(
        stack,
        number,
        DisputeWorkflow.add_message,
        party_reply(stack, number, "nora@northwind.example", "Before you rule, one more."),
    )
    await gates["record_event"].reached()
    # Temporal now suggests a new run: the lifecycle queues for the lock to hand on, and the
    # chair's ruling is accepted behind it.
    queued = await queue_replies_past_the_suggestion(stack, number)
    ruled_ = await begin(stack, number, DisputeWorkflow.issue_ruling, ruling(stack))
    gates["record_event"].release()

    for reply in (held, *queued):
        assert await outcome(reply) != HANG
    result = await outcome(ruled_)
    assert result != HANG, "the ruling waited for a continue-as-new that waited for it"
    assert "ruling issued: uphold" in getattr(result, "message", result)
    state = await stack.wait_for(number, lambda s: s.stage is DisputeStage.APPEAL_WINDOW)
    assert len(state.rulings) == 1
    # The run that ruled handed on in the appeal window, the ruling announced once.
    more = 0
    for _ in range(100):
        if await run_id(stack, number) != review_run:
            break
        more += 1
        await stack.handle(number).execute_update(
            DisputeWorkflow.add_message,
            party_reply(stack, number, "nora@northwind.example", "Still here."),
        )
    assert await run_id(stack, number) != review_run, "the appeal window never handed on"
    await stack.recorded(number)
    after = await stack.state(number)
    assert after.stage is DisputeStage.APPEAL_WINDOW and len(after.rulings) == 1
    assert stack.actions(number).count("ruling_issued") == 1
    assert stack.actions(number).count("message_received") == early + 1 + len(queued) + more
    await stack.mail_settled()
    check_mail_once(stack, number, {"ruling"})
    # (The votes may have filled a run already: the race is in whichever run was open.)
    assert await replay_every_run(stack, number, "continue-as-new-racing-a-ruling") >= 2
