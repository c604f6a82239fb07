"""Who may see what (SPEC section 1): one place, used by pages, API, exports and downloads.

Acting is decided by the workflow's validators; this module decides reading. A dispute a
viewer may not see is reported as not found, so its existence does not leak either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, false, or_, true
from sqlmodel import Session, col, select

from accord.audit import GAP_ACTION
from models.enums import EvidenceVisibility, NoteVisibility, Role, TaskState
from models.payloads import Actor, NoteView
from models.tables import Dispute, DisputeEvent, DisputeParty, Evidence, Task


@dataclass(frozen=True)
class Viewer:
    """A signed-in user: the directory's actor behind the account."""

    actor: Actor
    login: str

    @property
    def role(self) -> Role:
        return self.actor.role

    @property
    def sees_everything(self) -> bool:
        """Admins and compliance see every dispute (compliance read-only)."""
        return self.actor.role in (Role.ADMIN, Role.COMPLIANCE)

    @property
    def is_neutral(self) -> bool:
        """Mediators and board members: the neutrals restricted evidence is shared with."""
        return self.actor.role in (Role.MEDIATOR, Role.BOARD)


def dispute_scope(viewer: Viewer) -> ColumnElement[bool]:
    """A filter for `select(Dispute)`: the disputes this viewer may see."""
    if viewer.sees_everything:
        return true()
    if viewer.role is Role.PARTNER:
        if viewer.actor.partner_id is None:
            return false()
        # EXISTS rather than IN: the newest-first page then walks the filed_at index and
        # stops after a page of matches (2 ms rather than 70 ms at 100,000 disputes).
        return exists().where(
            col(DisputeParty.dispute_number) == col(Dispute.number),
            col(DisputeParty.partner_id) == viewer.actor.partner_id,
        )
    if viewer.is_neutral:
        # A neutral sees a dispute they were offered, mediate, or sit on the panel of: each of
        # those gives them a task. A task cancelled because they recused or the offer lapsed
        # does not count.
        tasked = exists().where(
            col(Task.dispute_number) == col(Dispute.number),
            col(Task.assignee_id) == viewer.actor.id,
            col(Task.state) != TaskState.CANCELLED,
        )
        if viewer.role is Role.MEDIATOR:
            return or_(col(Dispute.mediator_id) == viewer.actor.id, tasked)
        return tasked
    return false()


def can_see_dispute(session: Session, viewer: Viewer, number: str) -> bool:
    found = session.exec(
        select(Dispute.number).where(Dispute.number == number, dispute_scope(viewer))
    ).first()
    return found is not None


def side_of(session: Session, viewer: Viewer, number: str) -> str | None:
    """'claimant' or 'respondent' for a partner user on this dispute, else None."""
    if viewer.actor.partner_id is None:
        return None
    party = session.get(DisputeParty, (number, viewer.actor.partner_id))
    return party.side if party else None


def may_read_evidence(viewer: Viewer, item: Evidence) -> bool:
    """Given the viewer may see the dispute: may they read this item?"""
    if viewer.sees_everything or viewer.is_neutral:
        return True
    match item.visibility:
        case EvidenceVisibility.PARTIES:
            return True
        case EvidenceVisibility.SIDE:
            return item.side_partner_id is not None and item.side_partner_id == (
                viewer.actor.partner_id
            )
        case EvidenceVisibility.NEUTRALS:
            return item.added_by == viewer.actor.id
    return False


def may_read_note(viewer: Viewer, note: NoteView) -> bool:
    """Caucus notes are private between the mediator and one side; the panel never sees them,
    so what was said in mediation cannot colour the review."""
    if note.visibility is NoteVisibility.SHARED:
        return True
    if viewer.sees_everything or viewer.role is Role.MEDIATOR:
        return True
    return viewer.role is Role.PARTNER and note.caucus_partner_id == viewer.actor.partner_id


def may_read_message(viewer: Viewer, content: dict[str, object]) -> bool:
    """An email from a party is read by that side and the neutrals; one from staff by the
    neutrals only."""
    if viewer.sees_everything or viewer.is_neutral:
        return True
    side = content.get("side_partner_id")
    return side is not None and side == viewer.actor.partner_id


def may_see_votes(viewer: Viewer) -> bool:
    """Individual votes (once unsealed) are for the board, admins and compliance."""
    return viewer.role in (Role.BOARD, Role.ADMIN, Role.COMPLIANCE)


def may_read_raw_audit(viewer: Viewer) -> bool:
    """The audit entries' full content (notes, declarations, vote commitments)."""
    return viewer.sees_everything


def _may_read_note_entry(viewer: Viewer, content: dict[str, object]) -> bool:
    # An entry of a stored note holds `text_ref` and no `text` (accord.texts): who may read it
    # is decided by its visibility alone, so the missing body is an empty one here.
    fields = {"text": "", **{k: v for k, v in content.items() if k != "summary"}}
    try:
        note = NoteView.model_validate(fields)
    except ValueError:
        # An entry of unexpected shape is shown only to those who read the raw trail anyway.
        return may_read_raw_audit(viewer)
    return may_read_note(viewer, note)


def visible_events(
    viewer: Viewer, events: list[DisputeEvent], evidence: dict[str, Evidence]
) -> list[DisputeEvent]:
    """Timeline entries this viewer may see; the others are left out, not redacted in place,
    so their count and timing say nothing either."""
    shown: list[DisputeEvent] = []
    for event in events:
        if event.action == "note_added" and not _may_read_note_entry(viewer, event.content):
            continue
        if event.action == "message_received" and not may_read_message(viewer, event.content):
            continue
        if event.action == "similar_precedents" and viewer.role is Role.PARTNER:
            continue  # other disputes' full records are for staff; partners search anonymised
        if event.action == GAP_ACTION and viewer.role is Role.PARTNER:
            continue  # it names actions refused (the other side's too) and why: staff only
        if event.action == "evidence_added":
            item = evidence.get(str(event.content.get("evidence_id")))
            if item is None or not may_read_evidence(viewer, item):
                continue
        shown.append(event)
    return shown
