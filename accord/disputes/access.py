"""Who may see what (SPEC section 1): one place, used by pages, API, exports and downloads.

Acting is decided by the workflow's validators; this module decides reading. A dispute a
viewer may not see is reported as not found, so its existence does not leak either.

Reading follows the dispute's current assignment as the read model records it (SPEC section
6), never the viewer's role alone nor the tasks they once had:
- a mediator reads a dispute while their round is ACCEPTED (`Assignment`); a release by an
  admin or a recusal moves the round on, and with it everything they could read;
- a mediator only offered the dispute (their round OFFERED, the dispute in triage) reads the
  case summary they decide on, nothing confidential (`Standing.OFFERED`);
- a board member reads it while they hold a seat on its panel (`PanelSeat` not released); a
  recusal releases the seat, and so does an appeal for the whole first panel;
- the executive sponsor reads an escalated review while their task on it stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, exists, false, or_, true
from sqlmodel import Session, col, select

from accord.rules.audit import GAP_ACTION
from models.enums import (
    AssignmentState,
    DisputeStage,
    EvidenceVisibility,
    NoteVisibility,
    Role,
    TaskKind,
    TaskState,
)
from models.payloads import Actor, NoteView
from models.tables import Assignment, Dispute, DisputeEvent, DisputeParty, Evidence, PanelSeat, Task


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


class Standing(StrEnum):
    """Where a viewer stands in one dispute now; what they may read of it follows from this."""

    OVERSIGHT = "oversight"
    """Admins and compliance: all of it."""
    PARTY = "party"
    """A partner user of a party: the shared record and their own side's."""
    MEDIATOR = "mediator"
    """The mediator who accepted the assignment and was not released and did not recuse."""
    PANELIST = "panelist"
    """A member of the dispute's current panel (or the executive sponsor of its review)."""
    OFFERED = "offered"
    """Offered the mediation, not accepted yet: the case summary only (`reads_case`)."""

    @property
    def neutral(self) -> bool:
        """The neutrals restricted evidence and the parties' messages are shared with."""
        return self in (Standing.MEDIATOR, Standing.PANELIST)

    @property
    def reads_case(self) -> bool:
        """Beyond the case summary: the facts, timeline, notes, offers, evidence, messages.

        The summary an offered mediator decides on (whether to accept, and whether they can
        declare themselves impartial) is the dispute's parties, category, contested objects,
        amount, dates, one-line summary, stage and deadline; not the claimant's full account
        (`WITHHELD_FROM_SUMMARY`), nor anything said or filed in the dispute since."""
        return self is not Standing.OFFERED


WITHHELD_FROM_SUMMARY = ("facts", "desired_remedy")
"""The dispute's own fields an offered mediator does not read (Standing.reads_case)."""

OFFER_STAGES = (DisputeStage.TRIAGE,)
"""An offer stands only while the dispute is in triage: a reserved seat the workflow has not
offered yet (an admin's pick while mediation runs on), or an offer left behind by a withdrawal,
reads nothing."""


def _mediates(person_id: str) -> ColumnElement[bool]:
    # Released and recused rounds change state; a later round of theirs counts on its own.
    return exists().where(
        col(Assignment.dispute_number) == col(Dispute.number),
        col(Assignment.person_id) == person_id,
        col(Assignment.state) == AssignmentState.ACCEPTED,
    )


def _offered(person_id: str) -> ColumnElement[bool]:
    return and_(
        col(Dispute.stage).in_(OFFER_STAGES),
        exists().where(
            col(Assignment.dispute_number) == col(Dispute.number),
            col(Assignment.person_id) == person_id,
            col(Assignment.state) == AssignmentState.OFFERED,
        ),
    )


def _seated(person_id: str) -> ColumnElement[bool]:
    seat = exists().where(
        col(PanelSeat.dispute_number) == col(Dispute.number),
        col(PanelSeat.person_id) == person_id,
        col(PanelSeat.released_at).is_(None),
    )
    # Panels drawn before seats were recorded (migration 0013) have no seat rows at all: their
    # members read by their review tasks, as they did then, until a new round seats a panel.
    unseated = and_(
        ~exists().where(col(PanelSeat.dispute_number) == col(Dispute.number)),
        exists().where(
            col(Task.dispute_number) == col(Dispute.number),
            col(Task.assignee_id) == person_id,
            col(Task.kind).in_((TaskKind.CAST_VOTE, TaskKind.ISSUE_RULING)),
            col(Task.state) != TaskState.CANCELLED,
        ),
    )
    sponsor = exists().where(
        col(Task.dispute_number) == col(Dispute.number),
        col(Task.assignee_id) == person_id,
        col(Task.kind) == TaskKind.EXECUTIVE_REVIEW,
        col(Task.state) != TaskState.CANCELLED,
    )
    return or_(seat, unseated, sponsor)


def dispute_scope(viewer: Viewer, *, summary: bool = True) -> ColumnElement[bool]:
    """A filter for `select(Dispute)`: the disputes this viewer may see. With `summary=False`,
    only those they read beyond the case summary (a search of the full text)."""
    if viewer.sees_everything:
        return true()
    me = viewer.actor.id
    if viewer.role is Role.PARTNER:
        if viewer.actor.partner_id is None:
            return false()
        # EXISTS rather than IN: the newest-first page then walks the filed_at index and
        # stops after a page of matches (2 ms rather than 70 ms at 100,000 disputes).
        return exists().where(
            col(DisputeParty.dispute_number) == col(Dispute.number),
            col(DisputeParty.partner_id) == viewer.actor.partner_id,
        )
    if viewer.role is Role.MEDIATOR:
        return or_(_mediates(me), _offered(me)) if summary else _mediates(me)
    if viewer.role is Role.BOARD:
        return _seated(me)
    return false()


def standing(session: Session, viewer: Viewer, number: str) -> Standing | None:
    """Where the viewer stands in dispute `number` now; None: not theirs to see, or no such
    dispute (told apart by nobody)."""
    me = viewer.actor.id
    query = select(Dispute.number).where(Dispute.number == number)
    if viewer.sees_everything:
        found = session.exec(query).first()
        return Standing.OVERSIGHT if found is not None else None
    if viewer.role is Role.PARTNER:
        found = session.exec(query.where(dispute_scope(viewer))).first()
        return Standing.PARTY if found is not None else None
    if viewer.role is Role.MEDIATOR:
        row = session.exec(
            select(_mediates(me), _offered(me)).where(Dispute.number == number)
        ).first()
        if row is None:
            return None
        mediates, offered = row
        return Standing.MEDIATOR if mediates else Standing.OFFERED if offered else None
    if viewer.role is Role.BOARD:
        seated = session.exec(select(_seated(me)).where(Dispute.number == number)).first()
        return Standing.PANELIST if seated else None
    return None


def can_see_dispute(session: Session, viewer: Viewer, number: str) -> bool:
    return standing(session, viewer, number) is not None


def side_of(session: Session, viewer: Viewer, number: str) -> str | None:
    """'claimant' or 'respondent' for a partner user on this dispute, else None."""
    if viewer.actor.partner_id is None:
        return None
    party = session.get(DisputeParty, (number, viewer.actor.partner_id))
    return party.side if party else None


def may_read_evidence(viewer: Viewer, standing: Standing, item: Evidence) -> bool:
    """Given where the viewer stands in the item's dispute: may they read this item?"""
    if standing is Standing.OVERSIGHT or standing.neutral:
        return True
    if standing is not Standing.PARTY:
        return False
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


def may_read_note(viewer: Viewer, standing: Standing, note: NoteView) -> bool:
    """Caucus notes are private between the mediator and one side; the panel never sees them,
    so what was said in mediation cannot colour the review."""
    if not standing.reads_case:
        return False
    if note.visibility is NoteVisibility.SHARED:
        return True
    if standing in (Standing.OVERSIGHT, Standing.MEDIATOR):
        return True
    return standing is Standing.PARTY and note.caucus_partner_id == viewer.actor.partner_id


def may_read_message(viewer: Viewer, standing: Standing, content: dict[str, object]) -> bool:
    """An email from a party is read by that side and the neutrals; one from staff by the
    neutrals only."""
    if standing is Standing.OVERSIGHT or standing.neutral:
        return True
    if standing is not Standing.PARTY:
        return False
    side = content.get("side_partner_id")
    return side is not None and side == viewer.actor.partner_id


def may_see_votes(standing: Standing) -> bool:
    """Individual votes (once unsealed) are for the panel, admins and compliance."""
    return standing in (Standing.PANELIST, Standing.OVERSIGHT)


def may_read_raw_audit(viewer: Viewer) -> bool:
    """The audit entries' full content (notes, declarations, vote commitments)."""
    return viewer.sees_everything


def _may_read_note_entry(viewer: Viewer, standing: Standing, content: dict[str, object]) -> bool:
    # An entry of a stored note holds `text_ref` and no `text` (accord.disputes.texts): who may read
    # it is decided by its visibility alone, so the missing body is an empty one here.
    fields = {"text": "", **{k: v for k, v in content.items() if k != "summary"}}
    try:
        note = NoteView.model_validate(fields)
    except ValueError:
        # An entry of unexpected shape is shown only to those who read the raw trail anyway.
        return may_read_raw_audit(viewer)
    return may_read_note(viewer, standing, note)


PARTY_READS = {
    "no_eligible_mediator": "no mediator could be offered yet; the admins are choosing one",
    "panel_incomplete": "the review panel is not complete yet; the admins are completing it",
    "remedy_overdue": "the remedy deadline passed with remedies still outstanding; "
    "the admins are on it",
}
"""What a party reads of the engine's own troubles. The entries themselves name the screening
behind them (who declared a conflict with whom, who is at their case limit) or a partner
system's address and raw answer: staff matters, and a secret in a webhook's URL."""


def party_reads(event: DisputeEvent) -> DisputeEvent:
    """The entry as a party reads it: a transient copy (the stored entry is hashed and never
    changed) whose content is only a summary that says what is held up and who is on it."""
    summary = PARTY_READS.get(event.action)
    if event.action == "remedy_failed":
        which, said, _ = str(event.content.get("summary", "")).partition(" could not be applied")
        summary = f"{which if said else 'a remedy'} could not be applied yet; the admins will "
        summary += "apply it again or waive it"
    if summary is None:
        return event
    return DisputeEvent(**{**event.model_dump(), "content": {"summary": summary}})


def visible_events(
    viewer: Viewer, standing: Standing, events: list[DisputeEvent], evidence: dict[str, Evidence]
) -> list[DisputeEvent]:
    """Timeline entries this viewer may see; the others are left out, not redacted in place,
    so their count and timing say nothing either. The engine's own troubles are told to a
    party without their detail (`party_reads`)."""
    if not standing.reads_case:
        return []  # the timeline is what was said and done in the dispute: beyond the summary
    shown: list[DisputeEvent] = []
    for event in events:
        if event.action == "note_added" and not _may_read_note_entry(
            viewer, standing, event.content
        ):
            continue
        if event.action == "message_received" and not may_read_message(
            viewer, standing, event.content
        ):
            continue
        if event.action == "similar_precedents" and standing is Standing.PARTY:
            continue  # other disputes' full records are for staff; partners search anonymised
        if event.action == "recommendation" and standing is Standing.PARTY:
            continue  # the rules' reading of the channel data: for the neutrals and staff
        if event.action == GAP_ACTION and standing is Standing.PARTY:
            continue  # it names actions refused (the other side's too) and why: staff only
        if event.action == "evidence_added":
            item = evidence.get(str(event.content.get("evidence_id")))
            if item is None or not may_read_evidence(viewer, standing, item):
                continue
        shown.append(party_reads(event) if standing is Standing.PARTY else event)
    return shown
