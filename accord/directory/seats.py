"""The seats neutrals hold on disputes, counted against their case limits (SPEC 3).

A mediator's seat counts only while they mediate: their assignment of a round is OFFERED or
ACCEPTED and the dispute is in triage (the offer), mediation or awaiting a party
(`MEDIATING_STAGES`). Once the dispute leaves mediation (formal review after an impasse, settled,
remedies, closed) their part is over and they are free for the next filing. A board member's
panel seat counts while it is not released and the dispute is open: the review of that round
runs on through the ruling, the appeal window and the remedies, until a new review round
replaces the panel or the dispute closes. So a recusal, an expired or released offer, the end of
mediation, a new review round and the close each give a seat back.

A round that has ended stays ended: an attempt of it that lands late (stuck on a lock past its
timeout while its retry answered and the workflow moved on) reserves nothing, and neither does
an attempt of a round older than the dispute's newest (`newest_mediator_round`,
`newest_panel_round`). Only the round's own live reservation is answered again, and only a
released row is taken over.

Reserving is a read (who is under their limit) and then a write (the seat), and two filings at
once must never both read the same last free seat. Reservations therefore run in a transaction
begun with `SessionFactory.begin(immediate=True)` (on SQLite one writer at a time, across
processes too) that first takes `accord.platform.db.lock_people_writers` (on PostgreSQL one advisory
lock every writer of people rows takes first, the directory import too, so none of them holds some
people while waiting for others), and lock the people they may seat with `lock_people` before
counting (`SELECT ... FOR NO KEY UPDATE` in id order: a row that references a person, such as a
new account's owner, still passes its foreign-key check). Counts read after that stay true until
the commit.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from models.enums import TERMINAL_STAGES, AssignmentState, DisputeStage
from models.tables import Assignment, Dispute, PanelSeat, Person

OPEN_ASSIGNMENT = (AssignmentState.OFFERED, AssignmentState.ACCEPTED)
MEDIATING_STAGES = frozenset(
    {
        DisputeStage.FILED,
        DisputeStage.TRIAGE,
        DisputeStage.MEDIATION,
        DisputeStage.AWAITING_PARTY,
    }
)
"""The stages in which a mediator's open assignment counts against their case limit."""


def lock_people(session: Session, query: SelectOfScalar[Person]) -> list[Person]:
    """The people `query` selects, locked until the transaction ends, in id order.

    FOR NO KEY UPDATE (FOR UPDATE on dialects without it): their rows may change, never their
    keys, so rows that merely reference them are not held up.
    """
    return list(session.exec(query.order_by(col(Person.id)).with_for_update(key_share=True)).all())


def open_seats(session: Session) -> Counter[str]:
    """Person id -> the seats they hold: mediator rounds in mediation, panel seats on open
    disputes."""
    assignments = (
        select(Assignment.person_id, func.count())
        .join(Dispute, col(Dispute.number) == col(Assignment.dispute_number))
        .where(col(Assignment.state).in_(OPEN_ASSIGNMENT))
        .where(col(Dispute.stage).in_(MEDIATING_STAGES))
        .group_by(Assignment.person_id)
    )
    panels = (
        select(PanelSeat.person_id, func.count())
        .join(Dispute, col(Dispute.number) == col(PanelSeat.dispute_number))
        .where(col(PanelSeat.released_at).is_(None))
        .where(col(Dispute.stage).not_in(TERMINAL_STAGES))
        .group_by(PanelSeat.person_id)
    )
    counts: Counter[str] = Counter()
    for query in (assignments, panels):
        for person_id, count in session.exec(query).all():
            counts[person_id] += count
    return counts


# --- mediators ----------------------------------------------------------------------------


def mediator_round(session: Session, number: str, round_no: int) -> Assignment | None:
    """The row of this assignment round, in whatever state."""
    return session.exec(
        select(Assignment).where(Assignment.dispute_number == number, Assignment.round == round_no)
    ).first()


def reserve_mediator(
    session: Session,
    *,
    number: str,
    round_no: int,
    person: Person,
    at: datetime,
    row: Assignment | None,
) -> None:
    """The round's seat is `person`'s, OFFERED; `row` is the round's existing row, if any (a
    seat its holder can no longer take, or an admin's pick taking the round over)."""
    if row is None:
        row = Assignment(
            dispute_number=number,
            round=round_no,
            person_id=person.id,
            state=AssignmentState.OFFERED,
            assigned_at=at,
        )
    else:
        row.person_id = person.id
        row.state = AssignmentState.OFFERED
        row.assigned_at = at
    person.last_assigned_at = at
    session.add_all([row, person])
    session.flush()


def release_mediator(session: Session, *, number: str, round_no: int, person_id: str) -> bool:
    """The round's seat given back, if it is still `person_id`'s and only offered."""
    result = session.execute(
        update(Assignment)
        .where(
            col(Assignment.dispute_number) == number,
            col(Assignment.round) == round_no,
            col(Assignment.person_id) == person_id,
            col(Assignment.state) == AssignmentState.OFFERED,
        )
        .values(state=AssignmentState.RELEASED)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def newest_mediator_round(session: Session, number: str) -> int | None:
    """The highest assignment round the dispute has a row for."""
    return session.exec(
        select(func.max(Assignment.round)).where(Assignment.dispute_number == number)
    ).one()


# --- panels -------------------------------------------------------------------------------


def panel_round(session: Session, number: str, review_round: int) -> dict[str, PanelSeat]:
    """Seat -> its row in this review round, held or released."""
    rows = session.exec(
        select(PanelSeat).where(
            PanelSeat.dispute_number == number, PanelSeat.review_round == review_round
        )
    ).all()
    return {row.seat: row for row in rows}


def newest_panel_round(session: Session, number: str) -> int | None:
    """The highest review round the dispute has panel seats in."""
    return session.exec(
        select(func.max(PanelSeat.review_round)).where(PanelSeat.dispute_number == number)
    ).one()


def release_earlier_panels(session: Session, number: str, review_round: int, at: datetime) -> None:
    """A new review round replaces the panel: the earlier rounds' seats are given back."""
    session.execute(
        update(PanelSeat)
        .where(
            col(PanelSeat.dispute_number) == number,
            col(PanelSeat.review_round) < review_round,
            col(PanelSeat.released_at).is_(None),
        )
        .values(released_at=at)
    )


def release_seats_of(
    session: Session, number: str, at: datetime, person_id: str | None = None
) -> None:
    """The dispute's held panel seats given back: `person_id`'s (they recused), or all of them
    (the ruling was appealed: the first panel's work is done). Written with the audit entry that
    says so, so their reading ends with it (accord.disputes.access), not when the next draw runs."""
    query = update(PanelSeat).where(
        col(PanelSeat.dispute_number) == number, col(PanelSeat.released_at).is_(None)
    )
    if person_id is not None:
        query = query.where(col(PanelSeat.person_id) == person_id)
    session.execute(query.values(released_at=at))


def release_panel_seat(session: Session, row: PanelSeat, at: datetime) -> None:
    row.released_at = at
    session.add(row)


def seat_panelist(
    session: Session,
    *,
    number: str,
    review_round: int,
    seat: str,
    person: Person,
    at: datetime,
    row: PanelSeat | None,
) -> None:
    """`person` takes the seat; `row` is the seat's released row of this round, if any."""
    if row is None:
        row = PanelSeat(
            dispute_number=number,
            review_round=review_round,
            seat=seat,
            person_id=person.id,
            seated_at=at,
        )
    else:
        row.person_id = person.id
        row.seated_at = at
        row.released_at = None
    person.last_assigned_at = at
    session.add_all([row, person])
    session.flush()
