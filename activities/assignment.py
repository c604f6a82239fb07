"""Neutral mediator selection against the directory and current case loads."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func
from sqlmodel import Session, col, select
from temporalio import activity

from accord.db import SessionFactory
from accord.eligibility import Candidate, Stakes, ineligibility, rank
from models.enums import TERMINAL_STAGES, AssignmentState, ObjectKind, Role
from models.payloads import MediatorChoice, MediatorRequest, PanelChoice, PanelMember, PanelRequest
from models.tables import Account, Assignment, Dispute, Partner, Person, Territory

_ACTIVE_ASSIGNMENT = (AssignmentState.OFFERED, AssignmentState.ACCEPTED)


def _owned_objects(session: Session, request: MediatorRequest | PanelRequest) -> Stakes:
    """Who owns or holds the contested accounts and territories, and which parties are the
    vendor's direct sales."""
    owners: dict[str, set[str]] = {}
    holders: dict[str, set[str]] = {}
    for obj in request.contested_objects:
        owner: str | None = None
        if obj.kind is ObjectKind.ACCOUNT:
            account = session.get(Account, obj.ref)
            owner = account.owner_person_id if account else None
        elif obj.kind is ObjectKind.TERRITORY:
            territory = session.get(Territory, obj.ref)
            owner = territory.owner_person_id if territory else None
            if territory and territory.exclusive and territory.partner_id:
                holders.setdefault(territory.partner_id, set()).add(obj.label())
        if owner:
            owners.setdefault(owner, set()).add(obj.label())
    direct_sales = session.exec(
        select(Partner.id).where(
            col(Partner.id).in_(request.party_ids),
            Partner.is_direct_sales == True,  # noqa: E712
        )
    ).all()
    return Stakes(
        object_owners={k: frozenset(v) for k, v in owners.items()},
        exclusive_holders={k: frozenset(v) for k, v in holders.items()},
        direct_sales_parties=frozenset(direct_sales),
    )


def _screen(
    person: Person,
    request: MediatorRequest | PanelRequest,
    loads: Mapping[str, int],
    owned: Stakes,
) -> tuple[Candidate, str | None]:
    """The person as a ranked candidate, and why they cannot be neutral here (or None)."""
    candidate = Candidate(
        person_id=person.id,
        name=person.name,
        organisation=person.organisation,
        function=person.function,
        declared_conflicts=frozenset(person.declared_conflicts),
        active=person.active,
        case_limit=person.case_limit,
        open_cases=loads.get(person.id, 0),
        last_assigned_at=person.last_assigned_at,
    )
    why = ineligibility(
        candidate,
        party_ids=request.party_ids,
        contested_objects=request.contested_objects,
        stakes=owned,
        excluded=request.excluded_person_ids,
    )
    return candidate, why


def open_case_counts(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Assignment.person_id, func.count())
        .join(Dispute, col(Dispute.number) == col(Assignment.dispute_number))
        .where(col(Assignment.state).in_(_ACTIVE_ASSIGNMENT))
        .where(col(Dispute.stage).not_in(TERMINAL_STAGES))
        .group_by(Assignment.person_id)
    ).all()
    return {person_id: count for person_id, count in rows}


class AssignmentActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def assign_mediator(self, request: MediatorRequest) -> MediatorChoice:
        """The most suitable eligible mediator, or nobody with the reasons why.

        Read-only: the offer itself is recorded by the workflow's audit entry, so a retry of
        this activity can never hand out two offers.
        """
        with self.sessions.read() as session:
            query = select(Person).where(Person.role == Role.MEDIATOR)
            if request.chosen_person_id is not None:
                query = query.where(Person.id == request.chosen_person_id)
            people = session.exec(query).all()
            loads = open_case_counts(session)
            owned = _owned_objects(session, request)
        if request.chosen_person_id is not None and not people:
            return MediatorChoice(
                person_id=None, reason=f"person_id: {request.chosen_person_id} is not a mediator"
            )
        eligible: list[tuple[Candidate, Person]] = []
        refusals: list[str] = []
        for person in people:
            candidate, why = _screen(person, request, loads, owned)
            if why:
                refusals.append(why)
            else:
                eligible.append((candidate, person))
        if not eligible:
            detail = "; ".join(refusals) if refusals else "there are no mediators in the directory"
            return MediatorChoice(person_id=None, reason=f"no eligible mediator: {detail}")
        by_id = {c.person_id: p for c, p in eligible}
        best = rank([c for c, _ in eligible])[0]
        person = by_id[best.person_id]
        reason = (
            f"chosen by an admin; screened eligible with {best.open_cases} open cases"
            if request.chosen_person_id
            else f"least loaded eligible mediator ({best.open_cases} open cases)"
            f" of {len(eligible)} eligible"
        )
        return MediatorChoice(
            person_id=person.id,
            name=person.name,
            email=person.email,
            calendar=person.calendar,
            reason=reason,
        )


class PanelActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def draw_panel(self, request: PanelRequest) -> PanelChoice:
        """One eligible board member per function the board has, least loaded first, plus an
        eligible chair; screened exactly like mediators. Read-only, like mediator selection."""
        with self.sessions.read() as session:
            board = session.exec(select(Person).where(Person.role == Role.BOARD)).all()
            sponsor = session.exec(
                select(Person).where(Person.function == "executive_sponsor", Person.active == True)  # noqa: E712
            ).first()
            loads = open_case_counts(session)
            owned = _owned_objects(session, request)
        refusals: list[str] = []

        def best(people: list[Person]) -> Person | None:
            eligible: list[Candidate] = []
            for person in people:
                candidate, why = _screen(person, request, loads, owned)
                if why:
                    refusals.append(why)
                else:
                    eligible.append(candidate)
            if not eligible:
                return None
            top = rank(eligible)[0].person_id
            return next(p for p in people if p.id == top)

        def member(person: Person) -> PanelMember:
            return PanelMember(
                person_id=person.id,
                name=person.name,
                email=person.email,
                function=person.function or "",
            )

        members: list[PanelMember] = []
        missing: list[str] = []
        for function in request.functions:
            holders = [p for p in board if p.function == function]
            if not holders:
                continue  # the board has no such function: "where available"
            chosen = best(holders)
            if chosen is None:
                missing.append(function)
            else:
                members.append(member(chosen))
        chair = best([p for p in board if p.function == "chair"])
        if chair is None:
            missing.append("chair")
        if not members:
            missing.append("any panelist")
        complete = not missing
        reason = (
            f"panel of {len(members)} and chair {chair.name if chair else '-'}"
            if complete
            else f"too few eligible board members: no {', '.join(missing)}"
            + (f" ({'; '.join(refusals)})" if refusals else "")
        )
        return PanelChoice(
            members=tuple(members),
            chair=member(chair) if chair else None,
            complete=complete,
            reason=reason,
            sponsor=member(sponsor) if sponsor else None,
        )
