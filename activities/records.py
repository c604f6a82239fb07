"""Audit trail, read model, human tasks and precedents.

Synchronous on purpose: they use the blocking database driver and run on the worker's
thread pool, so they never stall the event loop that workflows run on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.directory.seats import release_seats_of
from accord.disputes import texts
from accord.disputes.live import project_live
from accord.platform.db import SessionFactory, insert_or_skip
from accord.platform.wording import Names
from accord.precedents.anonymity import DEFAULT_AMOUNT_THRESHOLD, DEFAULT_K
from accord.precedents.library import index_precedent
from accord.precedents.similarity import find_similar
from accord.rules.audit import GAP_ACTION, GENESIS, event_hash, gap_content
from models.enums import TERMINAL_STAGES, DisputeStage, TaskState
from models.payloads import (
    SYSTEM,
    Ack,
    Actor,
    EventRecord,
    EvidenceItem,
    LiveApplied,
    LiveProjection,
    PrecedentRecord,
    Recorded,
    SimilarPrecedents,
    SimilarRequest,
)
from models.tables import (
    Assignment,
    Dispute,
    DisputeEvent,
    Evidence,
    EvidenceBlob,
    Person,
    Precedent,
    Task,
)
from notifications.outbox import Outbox

SEAT_ENDING_ACTIONS = frozenset({"panel_recused", "appeal_filed"})
"""Audit entries that end panel seats: the recusing panelist's, or the appealed panel's."""

_EVENT = DisputeEvent.__table__  # type: ignore[attr-defined]
_DISPUTE = Dispute.__table__  # type: ignore[attr-defined]
_TASK = Task.__table__  # type: ignore[attr-defined]
_KEYS_A_STATEMENT = 1_000


def _of_dispute(*columns: Any) -> Any:
    return sa_select(*columns).where(_EVENT.c.dispute_number == bindparam("number"))


def _last(column: Any) -> Any:
    return _of_dispute(column).order_by(_EVENT.c.seq.desc()).limit(1).scalar_subquery()


def _at_step(column: Any) -> Any:
    return _of_dispute(column).where(_EVENT.c.step == bindparam("step")).scalar_subquery()


_HEAD = sa_select(
    _last(_EVENT.c.seq).label("seq"),
    _last(_EVENT.c.hash).label("hash"),
    _of_dispute(func.max(_EVENT.c.step)).scalar_subquery().label("last_step"),
    _at_step(_EVENT.c.seq).label("step_seq"),
    _at_step(_EVENT.c.hash).label("step_hash"),
    _at_step(_EVENT.c.at).label("step_at"),
    sa_select(_DISPUTE.c.stage)
    .where(_DISPUTE.c.number == bindparam("number"))
    .scalar_subquery()
    .label("stage"),
)
"""All an audit entry reads before it writes, in one statement: the chain's head, the highest
step recorded, this step's entry if it is recorded, the dispute's stage. One statement is one
snapshot on both databases (so the head and the highest step agree), and one round trip: on
SQLite each statement gives up the GIL, and under load the holder of the one writer waited to
get it back after every statement."""
_STEP_ENTRY = sa_select(_EVENT.c.seq, _EVENT.c.hash, _EVENT.c.at).where(
    _EVENT.c.dispute_number == bindparam("number"), _EVENT.c.step == bindparam("step")
)


class RecordActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        public_amount_threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD,
        anonymity_k: int = DEFAULT_K,
        outbox: Outbox | None = None,
    ) -> None:
        self.sessions = sessions
        self.public_amount_threshold = public_amount_threshold
        self.anonymity_k = anonymity_k
        self.outbox = outbox

    @activity.defn
    def record_event(self, record: EventRecord) -> Recorded:
        """Append one audit entry and project it onto the read model, the task inbox and the
        outbox (its `notices`), in one transaction; returns the entry's place in the chain."""
        names = self.outbox.read_names() if record.notices and self.outbox is not None else None
        first: list[int] = []
        recorded = self._append(record, names, first)
        if record.notices and self.outbox is not None:
            self.outbox.nudge(first)  # committed: the relay may send them now
        return recorded

    def _enqueue_notices(
        self, session: Session, record: EventRecord, names: Names | None, first: list[int]
    ) -> None:
        """The entry's emails, in its transaction (flushed first: what they say is read from
        the trail, this entry included); `first` gets the rows the relay should send first."""
        if not record.notices:
            return
        if self.outbox is None:
            raise ApplicationError(
                "this worker has no outbox to put the entry's mail in",
                type="NoOutbox",
                non_retryable=False,
            )
        session.flush()
        now = datetime.now(UTC)
        for notice in record.notices:
            first.extend(self.outbox.enqueue_in(session, notice, now, names))

    def _append(
        self, record: EventRecord, names: Names | None = None, first: list[int] | None = None
    ) -> Recorded:
        """Append one audit entry and project it onto the read model and the task inbox, in one
        transaction; returns the entry's place in the chain.

        Idempotent on (dispute, step): a retry finds the entry and returns it unchanged. The seq
        is the database's last + 1. Steps before this one with no entry (refused for good, or
        lost with a restore from an older backup) get a gap entry first, chained like any other,
        so that the dispute goes on and `accord verify` shows the hole as a hole.

        Written as Core statements on the transaction's connection, not as ORM loads and a
        unit-of-work flush: on SQLite the whole block holds the process's one writer, and the
        ORM's bookkeeping was most of that hold (issue 17's profile).
        """
        try:
            with self.sessions.begin() as session:
                db = session.connection()
                head = db.execute(_HEAD, {"number": record.number, "step": record.step}).one()
                if head.step_seq is not None:
                    return Recorded(seq=head.step_seq, hash=head.step_hash, at=head.step_at)
                stage, last_step = head.stage, head.last_step
                if stage is None:
                    raise ApplicationError(
                        f"dispute {record.number} is not in the database",
                        type="UnknownDispute",
                        non_retryable=True,
                    )
                if last_step is not None and record.step <= last_step:
                    # Only an attempt that outlived its timeout gets here: the workflow moved on
                    # and the step is already covered by a gap entry.
                    raise ApplicationError(
                        f"step {record.step} of {record.number} is already recorded as missing "
                        f"(the trail has reached step {last_step})",
                        type="LateStep",
                        non_retryable=True,
                    )
                seq, prev_hash = (head.seq, head.hash) if head.seq is not None else (0, GENESIS)
                expected = (last_step or 0) + 1
                entries = []
                if record.step > expected:
                    gap = self._gap_entry(record, seq + 1, prev_hash, expected)
                    entries.append(gap)
                    seq, prev_hash = gap["seq"], gap["hash"]
                content = {k: v for k, v in record.content.items()}
                if record.deadline is not None:
                    # The timeline shows each deadline where it was set, with its explanation.
                    content["deadline"] = {
                        "purpose": record.deadline.purpose,
                        "due_at": record.deadline.due_at.isoformat(),
                        "explanation": record.deadline.explanation,
                    }
                entry = self._entry(
                    record, seq + 1, prev_hash, record.actor, record.action, content, record.step
                )
                entries.append(entry)
                db.execute(sa_insert(_EVENT), entries)
                self._project(session, stage, record)
                self._enqueue_notices(session, record, names, first if first is not None else [])
                # The live state's change goes with its entry, or with nothing
                # (accord.disputes.live).
                behind = record.live is not None and not project_live(
                    session, record.number, record.at, record.live
                )
                return Recorded(
                    seq=entry["seq"], hash=entry["hash"], live_behind=behind, at=record.at
                )
        except IntegrityError:
            # A concurrent attempt of the same step won the insert: return its entry. (If another
            # step took the seq, there is none yet: retrying takes the next seq.) Our rows were
            # rolled back: their ids are nobody's to send first.
            if first is not None:
                first.clear()
            with self.sessions.read() as session:
                won = self._recorded_step(session, record.number, record.step)
                if won is None:
                    raise
                return won

    @staticmethod
    def _recorded_step(session: Session, number: str, step: int) -> Recorded | None:
        """Where this step's entry is in the chain, if it is recorded."""
        found = session.connection().execute(_STEP_ENTRY, {"number": number, "step": step})
        row = found.first()
        return None if row is None else Recorded(seq=row.seq, hash=row.hash, at=row.at)

    @staticmethod
    def _entry(
        record: EventRecord,
        seq: int,
        prev_hash: str,
        actor: Actor,
        action: str,
        content: dict[str, Any],
        step: int | None,
    ) -> dict[str, Any]:
        """One `dispute_event` row, its hash chained on `prev_hash`."""
        return {
            "dispute_number": record.number,
            "seq": seq,
            "step": step,
            "at": record.at,
            "actor_id": actor.id,
            "actor_role": actor.role,
            "action": action,
            "content": content,
            "prev_hash": prev_hash,
            "hash": event_hash(
                prev_hash=prev_hash,
                number=record.number,
                seq=seq,
                at=record.at,
                actor_id=actor.id,
                actor_role=actor.role.value,
                action=action,
                content=content,
            ),
        }

    @classmethod
    def _gap_entry(
        cls, record: EventRecord, seq: int, prev_hash: str, first_missing: int
    ) -> dict[str, Any]:
        """The entry standing for steps first_missing .. record.step - 1 (its step is None)."""
        last_missing = record.step - 1
        refused = [
            r.model_dump(mode="json")
            for r in record.unrecorded
            if first_missing <= r.step <= last_missing
        ]
        content = gap_content(first_missing, last_missing, refused)
        return cls._entry(record, seq, prev_hash, SYSTEM, GAP_ACTION, content, None)

    @staticmethod
    def _project(session: Session, stage: DisputeStage, record: EventRecord) -> None:
        """The entry onto the dispute's row, its assignment, seats, evidence and tasks."""
        if record.stage is not None and stage in TERMINAL_STAGES and record.stage is not stage:
            # Terminal is terminal: a stale decision must not reopen an ended dispute (the
            # whole entry is refused, so the trail and the read model stay in step).
            raise ApplicationError(
                f"{record.number} is {stage.value}: {record.action} cannot move it to "
                f"{record.stage.value}",
                type="TerminalStage",
                non_retryable=True,
            )
        db = session.connection()
        changed: dict[str, Any] = {"updated_at": record.at}
        if record.stage is not None:
            changed["stage"] = record.stage
            if record.stage in TERMINAL_STAGES:
                changed["closed_at"] = record.at
        if record.deadline is not None:
            changed["stage_deadline"] = record.deadline.due_at
            changed["deadline_explanation"] = record.deadline.explanation
            changed["stage_warning_50_at"] = record.deadline.warning_at(0.5)
            changed["stage_warning_80_at"] = record.deadline.warning_at(0.8)
        elif record.clear_deadline:
            changed["stage_deadline"] = changed["deadline_explanation"] = None
            changed["stage_warning_50_at"] = changed["stage_warning_80_at"] = None
        if record.mediator_id is not None:
            changed["mediator_id"] = record.mediator_id or None
        if record.outcome is not None:
            changed["outcome"] = record.outcome
        db.execute(sa_update(_DISPUTE).where(_DISPUTE.c.number == record.number).values(changed))
        if record.assignment is not None:
            a = record.assignment
            row = session.exec(
                select(Assignment).where(
                    Assignment.dispute_number == record.number, Assignment.round == a.round
                )
            ).first()
            if row is None:
                row = Assignment(
                    dispute_number=record.number,
                    round=a.round,
                    person_id=a.person_id,
                    state=a.state,
                    assigned_at=record.at,
                )
                person = session.get(Person, a.person_id)
                if person is not None:
                    person.last_assigned_at = record.at
                    session.add(person)
            row.state = a.state
            session.add(row)
        if record.action in SEAT_ENDING_ACTIONS:
            # A panelist who recused, or the whole first panel once its ruling is appealed,
            # stops reading the dispute with this entry (accord.disputes.access decides by held
            # seats).
            leaving = record.actor.id if record.action == "panel_recused" else None
            release_seats_of(session, record.number, record.at, leaving)
        if record.open_tasks:
            # A task opened already (a retried step's) stays as it is.
            db.execute(
                insert_or_skip(db, _TASK),
                [
                    {
                        "key": task.key,
                        "dispute_number": task.number,
                        "kind": task.kind,
                        "title": task.title,
                        "assignee_id": task.assignee_id,
                        "assignee_role": task.assignee_role,
                        "due_at": task.due_at,
                        "state": TaskState.OPEN,
                        "created_at": task.at,
                        "closed_at": None,
                    }
                    for task in record.open_tasks
                ],
            )
        if record.evidence is not None:
            RecordActivities._attach_evidence(session, record, record.evidence)
        for keys, state in (
            (record.done_tasks, TaskState.DONE),
            (record.cancelled_tasks, TaskState.CANCELLED),
        ):
            listed = list(keys)
            # In slices: PostgreSQL takes at most 65,535 parameters in one statement.
            for start in range(0, len(listed), _KEYS_A_STATEMENT):
                db.execute(
                    sa_update(_TASK)
                    .where(
                        _TASK.c.key.in_(listed[start : start + _KEYS_A_STATEMENT]),
                        _TASK.c.state == TaskState.OPEN,
                    )
                    .values(state=state, closed_at=record.at)
                )

    @staticmethod
    def _attach_evidence(session: Session, record: EventRecord, item: EvidenceItem) -> None:
        if session.get(EvidenceBlob, item.sha256) is None:
            # The uploader stores the bytes before asking the workflow; without them the entry
            # would point at nothing, so this is a business error, not something to retry.
            raise ApplicationError(
                f"evidence {item.id}: no stored content with sha256 {item.sha256}",
                type="MissingEvidenceContent",
                non_retryable=True,
            )
        session.add(
            Evidence(
                id=item.id,
                dispute_number=record.number,
                filename=item.filename,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                description=item.description,
                visibility=item.visibility,
                side_partner_id=item.side_partner_id,
                added_by=record.actor.id,
                added_by_role=record.actor.role,
                added_at=record.at,
            )
        )

    @activity.defn
    def project_live(self, projection: LiveProjection) -> LiveApplied:
        """A live state's change made without an audit entry, or the whole state for a read
        model found behind (idempotent: a version applied already is not applied again)."""
        with self.sessions.begin() as session:
            applied = project_live(session, projection.number, projection.at, projection.live)
        return LiveApplied(applied=applied)

    @activity.defn
    def write_precedent(self, record: PrecedentRecord) -> Ack:
        with self.sessions.begin() as session:
            rationale = record.rationale
            if record.rationale_ref is not None:
                # The decision's stored text (accord.disputes.texts), checked when it was made.
                texts.check(session, record.number, (record.rationale_ref,))
                rationale = texts.bodies(session, (record.rationale_ref.id,))[
                    record.rationale_ref.id
                ]
            exists = session.exec(
                select(Precedent).where(Precedent.dispute_number == record.number)
            ).first()
            if exists is None:
                precedent = Precedent(
                    dispute_number=record.number,
                    category=record.category,
                    playbook_version=record.playbook_version,
                    clauses=list(record.clauses),
                    facts=record.facts,
                    contested_objects=[o.model_dump(mode="json") for o in record.contested_objects],
                    outcome=record.outcome,
                    remedies=[r.model_dump(mode="json") for r in record.remedies],
                    rationale=rationale,
                    timeline=list(record.timeline),
                    claimant_tier=record.claimant_tier,
                    claimant_region=record.claimant_region,
                    amount_at_stake=record.amount_at_stake,
                    decided_at=record.decided_at,
                    parties=[p.model_dump(mode="json") for p in record.parties],
                    precedents_cited=list(record.precedents_cited),
                    votes_summary=dict(record.votes_summary),
                )
                index_precedent(
                    session, precedent, self.public_amount_threshold, k=self.anonymity_k
                )
        return Ack(done=f"precedent for {record.number}")

    @activity.defn
    def find_similar_precedents(self, request: SimilarRequest) -> SimilarPrecedents:
        """Read-only: a retry asks again. The workflow records the answer it got, so the case
        file shows what the decider saw even after more precedents are written."""
        with self.sessions.read() as session:
            return find_similar(session, request)
