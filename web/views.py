"""What one viewer sees of a dispute, built once and rendered by both the pages and the API.

The read model (database) gives the record, the timeline and the live state (offers, requests,
notes, panel) as the workflow last recorded it (`accord.disputes.live`): no page waits on the
engine, and pages work with the worker stopped. Both are filtered here through
accord.disputes.access, so a page and an API response can never disagree about what a role may see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from accord.directory import records as directory
from accord.disputes import texts
from accord.disputes.access import (
    WITHHELD_FROM_SUMMARY,
    Standing,
    Viewer,
    may_read_evidence,
    may_read_note,
    may_see_votes,
    side_of,
    standing,
    visible_events,
)
from accord.disputes.live import live_state
from accord.disputes.operations import OPERATIONS, Operation
from accord.platform.db import SessionFactory
from accord.platform.wording import Names
from models.enums import Action, Role
from models.payloads import DisputeState
from models.tables import Dispute, DisputeEvent, DisputeParty, Evidence, Partner


class NotFound(LookupError):
    """No such thing, or not for this viewer: the two are deliberately indistinguishable."""


@dataclass
class DisputeFile:
    row: Dispute
    """The dispute's record; for a viewer who reads only the case summary, a detached copy
    with the withheld fields empty (`accord.disputes.access.WITHHELD_FROM_SUMMARY`)."""
    standing: Standing
    parties: dict[str, Partner]
    side: str | None
    events: list[DisputeEvent]
    evidence: list[Evidence]
    texts: dict[str, str] = field(default_factory=dict)
    """Bodies of the stored texts the visible entries name (`accord.disputes.texts`), by id."""
    state: DisputeState | None = None
    """None when the workflow has recorded no live state yet (a dispute from before the read
    model kept it, until its next record); pages then show the record alone."""
    operations: list[Operation] = field(default_factory=list)
    names: Names = field(default_factory=Names)
    """Partners' and people's names, for the page's `partner` and `person` filters."""

    def text_of(self, content: dict[str, Any], name: str = "text") -> str:
        """An entry's text: inline in entries from before texts were stored, else read in."""
        ref = content.get(f"{name}_ref")
        if isinstance(ref, dict):
            return self.texts.get(str(ref.get("id")), "")
        return str(content.get(name) or "")

    def party_name(self, partner_id: str) -> str:
        partner = self.parties.get(partner_id)
        return partner.name if partner else partner_id

    @property
    def reads_case(self) -> bool:
        return self.standing.reads_case


def load_record(session: Session, viewer: Viewer, number: str) -> DisputeFile:
    """The read-model part: record, parties, visible timeline and evidence."""
    where = standing(session, viewer, number)
    row = session.get(Dispute, number) if where is not None else None
    if where is None or row is None:
        raise NotFound(number)
    party_ids = session.exec(
        select(DisputeParty.partner_id).where(DisputeParty.dispute_number == number)
    ).all()
    parties = {
        p.id: p for p in session.exec(select(Partner).where(col(Partner.id).in_(party_ids))).all()
    }
    if not where.reads_case:
        # A transient copy: the session's row is never changed, nor anything read beyond it.
        summary = Dispute(**{**row.model_dump(), **dict.fromkeys(WITHHELD_FROM_SUMMARY, "")})
        return DisputeFile(
            row=summary,
            standing=where,
            parties=parties,
            side=None,
            events=[],
            evidence=[],
            names=directory.names(session),
        )
    evidence_rows = session.exec(
        select(Evidence).where(Evidence.dispute_number == number).order_by(col(Evidence.added_at))
    ).all()
    by_id = {e.id: e for e in evidence_rows}
    events = session.exec(
        select(DisputeEvent)
        .where(DisputeEvent.dispute_number == number)
        .order_by(col(DisputeEvent.seq))
    ).all()
    visible = visible_events(viewer, where, list(events), by_id)
    return DisputeFile(
        row=row,
        standing=where,
        parties=parties,
        side=side_of(session, viewer, number),
        events=visible,
        evidence=[e for e in evidence_rows if may_read_evidence(viewer, where, e)],
        texts=texts.bodies(session, (i for e in visible for i in texts.referenced(e.content))),
        names=directory.names(session),
    )


def load_live(sessions: SessionFactory, viewer: Viewer, record: DisputeFile) -> DisputeFile:
    """Add the live state from the read model, filtered for the viewer, and the actions to
    offer them. It may be a moment behind the workflow: the workflow still decides each action
    (its validators), so an action offered from it may be refused, never let through."""
    with sessions.read() as session:
        state = live_state(session, record.row.number)
    if state is None:
        return record
    # The state names stored texts by reference; filtered first, so only readable ones are read.
    shown = filtered_state(viewer, record.standing, state)
    record.state = texts.resolve_state(sessions, shown, known=record.texts)
    record.operations = offered_operations(viewer, state)
    return record


def filtered_state(viewer: Viewer, standing: Standing, state: DisputeState) -> DisputeState:
    if not standing.reads_case:
        # The offer's own view: stage, parties, deadlines, the actions it allows; nothing said,
        # offered, asked or decided in the dispute, nor other people's tasks.
        return state.model_copy(
            update={
                "open_tasks": tuple(t for t in state.open_tasks if t.assignee == viewer.actor.id),
                "information_requests": (),
                "offers": (),
                "notes": (),
                "history": (),
                "linked_filings": (),
                "remedies": (),
                "review": None,
                "rulings": (),
                "similar": None,
                "recommendation": None,
            }
        )
    notes = tuple(n for n in state.notes if may_read_note(viewer, standing, n))
    requests = state.information_requests
    tasks = state.open_tasks
    if standing is Standing.PARTY:
        # A request to one side is between that side and the mediator, and so is the task it
        # opens for that side; the other side's tasks are theirs. (Deadlines are the case
        # summary's: the README's "Who reads what".)
        mine = viewer.actor.partner_id
        requests = tuple(r for r in requests if r.party_id == mine)
        others = {*state.respondent_ids, state.claimant_id} - {mine}
        tasks = tuple(t for t in tasks if t.assignee not in others)
    remedies = state.remedies
    if standing is Standing.PARTY:
        # A failed remedy's error is the target system's address and raw answer: staff only.
        remedies = tuple(r.model_copy(update={"error": None}) for r in remedies)
    review = state.review
    if review is not None and not may_see_votes(standing):
        review = review.model_copy(update={"votes": ()})
    return state.model_copy(
        update={
            "notes": notes,
            "information_requests": requests,
            "open_tasks": tasks,
            "remedies": remedies,
            "review": review,
            # Other disputes' records: staff only (partners search the anonymised view).
            "similar": None if standing is Standing.PARTY else state.similar,
            # The rules' reading of the case and the channel data it rests on (other partners'
            # registrations, named accounts, territories): for the neutrals and staff.
            "recommendation": None if standing is Standing.PARTY else state.recommendation,
            # The history is served from the audit trail, filtered entry by entry.
            "history": (),
        }
    )


def offered_operations(viewer: Viewer, state: DisputeState) -> list[Operation]:
    """The actions to show: allowed for the role in this stage by the transition table, and
    plausibly for this person. The workflow still decides; this only avoids dead buttons."""
    allowed = set(state.allowed_actions.get(viewer.role.value, ()))
    me = viewer.actor.id
    review = state.review
    panel = {m.person_id for m in review.panel} if review else set()
    chair = review.chair.person_id if review and review.chair else None
    voted = {v.person_id for v in review.votes} if review else set()
    offered: list[Operation] = []
    for action in allowed:
        op = OPERATIONS.get(action)
        if op is None:
            continue
        if (
            viewer.role is Role.MEDIATOR
            and action is not Action.ACCEPT_ASSIGNMENT
            and me not in (state.mediator_id, state.candidate_mediator_id)
        ):
            continue
        if action is Action.ACCEPT_ASSIGNMENT and state.candidate_mediator_id != me:
            continue
        if action is Action.WITHDRAW and viewer.actor.partner_id != state.claimant_id:
            continue
        if action is Action.CAST_VOTE and (me not in panel or me in voted):
            continue
        if action in (Action.ISSUE_RULING,) and me != chair:
            continue
        if viewer.role is Role.BOARD and action is Action.DISMISS and me != chair:
            continue
        if action is Action.RECUSE and viewer.role is Role.BOARD and me not in {*panel, chair}:
            continue
        if action is Action.ANSWER_INFORMATION and not any(
            r.answered_at is None and r.party_id == viewer.actor.partner_id
            for r in state.information_requests
        ):
            continue
        if action is Action.RESPOND_TO_OFFER and not any(
            o.open and viewer.actor.partner_id not in o.responses for o in state.offers
        ):
            continue
        offered.append(op)
    return sorted(offered, key=lambda op: list(OPERATIONS).index(op.action))
