"""The seats neutrals hold on disputes, counted against their case limits (SPEC 3).

A mediator holds a seat while their assignment of a round is OFFERED or ACCEPTED, a board
member while their panel seat is not released; either only while the dispute is open. So a
recusal, an expired or released offer, a new review round and the dispute's close each give
the seat back.

Reserving is a read (who is under their limit) and then a write (the seat), and two filings at
once must never both read the same last free seat. Reservations therefore run in a transaction
begun with `SessionFactory.begin(immediate=True)` (on SQLite one writer at a time, across
processes too) and lock the people they may seat with `lock_people` before counting (on
PostgreSQL `SELECT ... FOR UPDATE`, always in id order, so two draws never wait on each other
in a circle). Counts read after that stay true until the commit.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from models.enums import TERMINAL_STAGES, AssignmentState
from models.tables import Assignment, Dispute, PanelSeat, Person

OPEN_ASSIGNMENT = (AssignmentState.OFFERED, AssignmentState.ACCEPTED)


def lock_people(session: Session, query: SelectOfScalar[Person]) -> list[Person]:
    """The people `query` selects, locked until the transaction ends, in id order."""
    return list(session.exec(query.order_by(col(Person.id)).with_for_update()).all())


def open_seats(session: Session) -> Counter[str]:
    """Person id -> the seats they hold on open disputes: mediator rounds and panel seats."""
    assignments = (
        select(Assignment.person_id, func.count())
        .join(Dispute, col(Dispute.number) == col(Assignment.dispute_number))
        .where(col(Assignment.state).in_(OPEN_ASSIGNMENT))
        .where(col(Dispute.stage).not_in(TERMINAL_STAGES))
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


# --- panels -------------------------------------------------------------------------------


def panel_round(session: Session, number: str, review_round: int) -> dict[str, PanelSeat]:
    """Seat -> its row in this review round, held or released."""
    rows = session.exec(
        select(PanelSeat).where(
            PanelSeat.dispute_number == number, PanelSeat.review_round == review_round
        )
    ).all()
    return {row.seat: row for row in rows}


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
