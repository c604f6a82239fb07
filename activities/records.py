"""Audit trail, read model, human tasks and precedents.

Synchronous on purpose: they use the blocking database driver and run on the worker's
thread pool, so they never stall the event loop that workflows run on.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord import texts
from accord.audit import GENESIS, event_hash
from accord.db import SessionFactory
from accord.precedents import DEFAULT_AMOUNT_THRESHOLD, index_precedent
from accord.similarity import find_similar
from models.enums import TERMINAL_STAGES, TaskState
from models.payloads import (
    Ack,
    EventRecord,
    EvidenceItem,
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


class RecordActivities:
    def __init__(
        self, sessions: SessionFactory, public_amount_threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD
    ) -> None:
        self.sessions = sessions
        self.public_amount_threshold = public_amount_threshold

    @activity.defn
    def record_event(self, record: EventRecord) -> Recorded:
        """Append one audit entry and project it onto the read model and the task inbox, in one
        transaction.

        Idempotent on (dispute, seq): a retry finds the entry and returns it unchanged.
        """
        try:
            with self.sessions.begin() as session:
                existing = session.exec(
                    select(DisputeEvent).where(
                        DisputeEvent.dispute_number == record.number,
                        DisputeEvent.seq == record.seq,
                    )
                ).first()
                if existing is not None:
                    return Recorded(seq=existing.seq, hash=existing.hash)
                dispute = session.get(Dispute, record.number)
                if dispute is None:
                    raise ApplicationError(
                        f"dispute {record.number} is not in the database",
                        type="UnknownDispute",
                        non_retryable=True,
                    )
                previous = session.exec(
                    select(DisputeEvent).where(
                        DisputeEvent.dispute_number == record.number,
                        DisputeEvent.seq == record.seq - 1,
                    )
                ).first()
                if previous is None and record.seq != 1:
                    # The workflow records one entry at a time; a gap means the previous
                    # activity has not committed yet. Retrying keeps the chain in order.
                    raise ApplicationError(f"entry {record.seq - 1} of {record.number} missing")
                prev_hash = previous.hash if previous else GENESIS
                content = {k: v for k, v in record.content.items()}
                if record.deadline is not None:
                    # The timeline shows each deadline where it was set, with its explanation.
                    content["deadline"] = {
                        "purpose": record.deadline.purpose,
                        "due_at": record.deadline.due_at.isoformat(),
                        "explanation": record.deadline.explanation,
                    }
                entry = DisputeEvent(
                    dispute_number=record.number,
                    seq=record.seq,
                    at=record.at,
                    actor_id=record.actor.id,
                    actor_role=record.actor.role,
                    action=record.action,
                    content=content,
                    prev_hash=prev_hash,
                    hash=event_hash(
                        prev_hash=prev_hash,
                        number=record.number,
                        seq=record.seq,
                        at=record.at,
                        actor_id=record.actor.id,
                        actor_role=record.actor.role.value,
                        action=record.action,
                        content=content,
                    ),
                )
                session.add(entry)
                self._project(session, dispute, record)
                return Recorded(seq=entry.seq, hash=entry.hash)
        except IntegrityError:
            # A concurrent attempt of the same activity won the insert: return its entry.
            with self.sessions.read() as session:
                won = session.exec(
                    select(DisputeEvent).where(
                        DisputeEvent.dispute_number == record.number,
                        DisputeEvent.seq == record.seq,
                    )
                ).one()
                return Recorded(seq=won.seq, hash=won.hash)

    @staticmethod
    def _project(session: Session, dispute: Dispute, record: EventRecord) -> None:
        if (
            record.stage is not None
            and dispute.stage in TERMINAL_STAGES
            and record.stage is not dispute.stage
        ):
            # Terminal is terminal: a stale decision must not reopen an ended dispute (the
            # whole entry is refused, so the trail and the read model stay in step).
            raise ApplicationError(
                f"{record.number} is {dispute.stage.value}: {record.action} cannot move it to "
                f"{record.stage.value}",
                type="TerminalStage",
                non_retryable=True,
            )
        dispute.updated_at = record.at
        if record.stage is not None:
            dispute.stage = record.stage
            if record.stage in TERMINAL_STAGES:
                dispute.closed_at = record.at
        if record.deadline is not None:
            dispute.stage_deadline = record.deadline.due_at
            dispute.deadline_explanation = record.deadline.explanation
        elif record.clear_deadline:
            dispute.stage_deadline = None
            dispute.deadline_explanation = None
        if record.mediator_id is not None:
            dispute.mediator_id = record.mediator_id or None
        if record.outcome is not None:
            dispute.outcome = record.outcome
        session.add(dispute)
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
        for task in record.open_tasks:
            if session.get(Task, task.key) is None:
                session.add(
                    Task(
                        key=task.key,
                        dispute_number=task.number,
                        kind=task.kind,
                        title=task.title,
                        assignee_id=task.assignee_id,
                        assignee_role=task.assignee_role,
                        due_at=task.due_at,
                        state=TaskState.OPEN,
                        created_at=task.at,
                    )
                )
        if record.evidence is not None:
            RecordActivities._attach_evidence(session, record, record.evidence)
        for keys, state in (
            (record.done_tasks, TaskState.DONE),
            (record.cancelled_tasks, TaskState.CANCELLED),
        ):
            for key in keys:
                closing = session.get(Task, key)
                if closing is not None and closing.state is TaskState.OPEN:
                    closing.state = state
                    closing.closed_at = record.at
                    session.add(closing)

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
    def write_precedent(self, record: PrecedentRecord) -> Ack:
        with self.sessions.begin() as session:
            rationale = record.rationale
            if record.rationale_ref is not None:
                # The decision's stored text (accord.texts), checked when it was made.
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
                index_precedent(session, precedent, self.public_amount_threshold)
        return Ack(done=f"precedent for {record.number}")

    @activity.defn
    def find_similar_precedents(self, request: SimilarRequest) -> SimilarPrecedents:
        """Read-only: a retry asks again. The workflow records the answer it got, so the case
        file shows what the decider saw even after more precedents are written."""
        with self.sessions.read() as session:
            return find_similar(session, request)
