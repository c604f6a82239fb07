"""Neutral mediator selection and board panels, each seat reserved as it is chosen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.directory.seats import (
    MEDIATING_STAGES,
    OPEN_ASSIGNMENT,
    lock_people,
    mediator_round,
    newest_mediator_round,
    newest_panel_round,
    open_seats,
    panel_round,
    release_earlier_panels,
    release_mediator,
    release_panel_seat,
    reserve_mediator,
    seat_panelist,
)
from accord.platform.db import SessionFactory, engine_words, lock_people_writers
from accord.platform.wording import label
from accord.rules.eligibility import SALES_FUNCTION, Candidate, Stakes, ineligibility, rank
from models.enums import AssignmentState, ObjectKind, Role
from models.payloads import (
    Ack,
    MediatorChoice,
    MediatorRequest,
    PanelChoice,
    PanelMember,
    PanelRequest,
    SeatRelease,
)
from models.tables import (
    Account,
    Assignment,
    Dispute,
    DisputeEvent,
    PanelSeat,
    Partner,
    Person,
    Territory,
)

_T = TypeVar("_T")


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
    named = {*request.party_ids, *holders}
    partner_names = dict(
        session.exec(select(Partner.id, Partner.name).where(col(Partner.id).in_(named))).all()
    )
    return Stakes(
        object_owners={k: frozenset(v) for k, v in owners.items()},
        exclusive_holders={k: frozenset(v) for k, v in holders.items()},
        direct_sales_parties=frozenset(direct_sales),
        partner_names=partner_names,
    )


def _ordinal_panel(round_no: int) -> str:
    return "the first panel" if round_no == 1 else f"the round {round_no} panel"


def _why_excluded(session: Session, request: MediatorRequest | PanelRequest) -> dict[str, str]:
    """What each person the workflow excludes did on this dispute, in words: 'sat on the
    first panel', 'recused from this panel', 'let the offer to mediate it expire'."""
    excluded = set(request.excluded_person_ids)
    if not excluded:
        return {}
    why: dict[str, str] = {}
    if isinstance(request, PanelRequest):
        recused = session.exec(
            select(DisputeEvent.actor_id, DisputeEvent.content).where(
                DisputeEvent.dispute_number == request.number,
                DisputeEvent.action == "panel_recused",
                col(DisputeEvent.actor_id).in_(excluded),
            )
        ).all()
        for person_id, content in recused:
            round_no = int(content.get("round") or request.round)
            why[person_id] = (
                "recused from this panel"
                if round_no == request.round
                else f"recused from {_ordinal_panel(round_no)}"
            )
        seats = list(
            session.exec(
                select(PanelSeat.person_id, PanelSeat.review_round).where(
                    PanelSeat.dispute_number == request.number,
                    PanelSeat.review_round < request.round,
                    col(PanelSeat.person_id).in_(excluded),
                )
            ).all()
        )
        # Panels drawn before seats were stored (migration 0013) are in the audit trail only.
        drawn = session.exec(
            select(DisputeEvent.content).where(
                DisputeEvent.dispute_number == request.number,
                col(DisputeEvent.action).in_(("panel_drawn", "panel_replacement")),
            )
        ).all()
        for content in drawn:
            round_no = int(content.get("round") or 0)
            if not 0 < round_no < request.round:
                continue
            sat = [*(content.get("members") or []), *(content.get("joined") or [])]
            sat.append(content.get("chair"))
            seats.extend(
                (str(m["person_id"]), round_no)
                for m in sat
                if isinstance(m, Mapping) and m.get("person_id") in excluded
            )
        for person_id, round_no in sorted(seats, key=lambda s: s[1]):
            why.setdefault(person_id, f"sat on {_ordinal_panel(round_no)}")
        return why
    rounds = session.exec(
        select(Assignment.person_id, Assignment.state).where(
            Assignment.dispute_number == request.number,
            col(Assignment.person_id).in_(excluded),
        )
    ).all()
    for person_id, state in rounds:
        if state is AssignmentState.RECUSED:
            why[person_id] = "recused from mediating this dispute"
        elif state is AssignmentState.EXPIRED:
            why.setdefault(person_id, "let the offer to mediate this dispute expire")
    return why


def _screen(
    person: Person,
    request: MediatorRequest | PanelRequest,
    loads: Mapping[str, int],
    owned: Stakes,
    why_excluded: Mapping[str, str] | None = None,
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
        why_excluded=why_excluded,
    )
    return candidate, why


def _reserving(sessions: SessionFactory, number: str, work: Callable[[Session], _T]) -> _T:
    """`work` in a transaction that may count seats and then take one (accord/directory/seats.py).

    Another attempt of the same request (a retry racing a slow first attempt) may insert the
    same seat first; then once more, and `work` finds that seat. A database that cannot serve
    the transaction (a lock timeout, say) is a retryable error that says so, not a raw one.
    """

    def attempt() -> _T:
        with sessions.begin(immediate=True) as session:
            lock_people_writers(session)
            return work(session)

    try:
        try:
            return attempt()
        except IntegrityError:
            return attempt()
    except OperationalError as exc:
        why = engine_words(exc)
        raise ApplicationError(
            f"could not reserve seats on {number} now, the database is busy ({why});"
            " the attempt is retried",
            type="DatabaseBusy",
        ) from None


def _open_dispute(session: Session, number: str) -> Dispute:
    dispute = session.get(Dispute, number)
    if dispute is None:
        raise ApplicationError(
            f"dispute {number} is not in the database", type="UnknownDispute", non_retryable=True
        )
    return dispute


def _round_ended(session: Session, request: MediatorRequest, row: Assignment | None) -> str | None:
    """Why the request's round can no longer be reserved, or None.

    Only the round's live reservation (OFFERED, or ACCEPTED for its own holder) is answered
    again, and only a released row is taken over. A recused or expired round, an accepted one
    an admin's pick would take from its holder, and a round older than the newest are over.
    """
    newest = newest_mediator_round(session, request.number)
    if row is not None and row.state in (AssignmentState.RECUSED, AssignmentState.EXPIRED):
        holder = session.get(Person, row.person_id)
        who = holder.name if holder is not None else row.person_id
        return f"round {request.round} has ended ({who} {row.state.value})"
    if newest is not None and newest > request.round:
        return f"round {request.round} has ended (round {newest} was drawn)"
    if (
        row is not None
        and row.state is AssignmentState.ACCEPTED
        and request.chosen_person_id not in (None, row.person_id)
    ):
        holder = session.get(Person, row.person_id)
        who = holder.name if holder is not None else row.person_id
        return f"round {request.round} is taken: {who} accepted it"
    return None


class AssignmentActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def assign_mediator(self, request: MediatorRequest) -> MediatorChoice:
        """The most suitable eligible mediator, with the round's seat reserved for them; or
        nobody, with the reasons why.

        Loads are counted and the seat taken in one transaction that holds the mediators' rows,
        so filings at once never take anyone past their case limit. Idempotent on (dispute,
        round): a retry finds the round's seat and returns its mediator, and the workflow's
        audit entry then records the offer on that same row. An admin's pick takes over a
        round the workflow has not offered yet.
        """
        return _reserving(
            self.sessions, request.number, lambda session: self._assign(session, request)
        )

    def _assign(self, session: Session, request: MediatorRequest) -> MediatorChoice:
        dispute = _open_dispute(session, request.number)
        query = select(Person).where(Person.role == Role.MEDIATOR)
        if request.chosen_person_id is not None:
            query = query.where(Person.id == request.chosen_person_id)
        people = lock_people(session, query)
        if request.chosen_person_id is not None and not people:
            return MediatorChoice(
                person_id=None, reason=f"person_id: {request.chosen_person_id} is not a mediator"
            )
        row = mediator_round(session, request.number, request.round)
        ended = _round_ended(session, request, row)
        if ended is not None:
            return MediatorChoice(person_id=None, reason=ended)
        held = row if row is not None and row.state in OPEN_ASSIGNMENT else None
        loads = open_seats(session)
        if held is not None and dispute.stage in MEDIATING_STAGES:
            loads[held.person_id] -= 1  # the round's own seat is never held against its holder
        owned = _owned_objects(session, request)
        excluded = _why_excluded(session, request)
        eligible: dict[str, tuple[Candidate, Person]] = {}
        refusals: list[str] = []
        for person in people:
            candidate, why = _screen(person, request, loads, owned, excluded)
            if why:
                refusals.append(why)
            else:
                eligible[person.id] = (candidate, person)
        if not eligible:
            if (
                held is not None
                and held.state is AssignmentState.OFFERED
                and request.chosen_person_id is None
            ):
                # The round's holder may no longer take it (a retry after the directory changed).
                held.state = AssignmentState.RELEASED
                session.add(held)
            detail = "; ".join(refusals) if refusals else "there are no mediators in the directory"
            return MediatorChoice(person_id=None, reason=f"no eligible mediator: {detail}")
        if (
            held is not None
            and held.person_id in eligible
            and (request.chosen_person_id in (None, held.person_id))
        ):
            best, person = eligible[held.person_id]  # a retry: the seat is theirs already
        else:
            best = rank([c for c, _ in eligible.values()])[0]
            person = eligible[best.person_id][1]
            reserve_mediator(
                session,
                number=request.number,
                round_no=request.round,
                person=person,
                at=request.at,
                row=row,
            )
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

    @activity.defn
    def release_seat(self, release: SeatRelease) -> Ack:
        """Give back the seat reserved for a round the workflow decided not to offer.

        Only an OFFERED seat that is still this person's is released; running it again, or
        after the round was taken over or accepted, changes nothing.
        """
        with self.sessions.begin(immediate=True) as session:
            lock_people_writers(session)
            released = release_mediator(
                session,
                number=release.number,
                round_no=release.round,
                person_id=release.person_id,
            )
        what = "released" if released else "nothing to release for"
        return Ack(
            done=f"{what} {release.person_id}'s seat on {release.number} round {release.round}"
        )


def _member(person: Person) -> PanelMember:
    return PanelMember(
        person_id=person.id, name=person.name, email=person.email, function=person.function or ""
    )


def _panel_choice(
    members: list[PanelMember],
    chair: Person | None,
    missing: list[str],
    refusals: list[str],
    notes: list[str] | None = None,
) -> PanelChoice:
    """The panel drawn, complete or not, and in words who sits or what could not be filled."""
    complete = not missing
    reason = (
        f"panel of {len(members)} and chair {chair.name if chair else '-'}"
        if complete
        else f"too few eligible board members: no {', '.join(label(m) for m in missing)}"
        + (f" ({'; '.join(refusals)})" if refusals else "")
    ) + "".join(f"; {note}" for note in notes or ())
    return PanelChoice(
        members=tuple(members),
        chair=_member(chair) if chair else None,
        complete=complete,
        reason=reason,
    )


class PanelActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def draw_panel(self, request: PanelRequest) -> PanelChoice:
        """One eligible board member per function the board has, plus an eligible chair;
        screened exactly like mediators, and seated in the same transaction.

        Least loaded first (mediator rounds and panel seats alike count against a member's case
        limit), then longest since last seated, so panels rotate across the board. Idempotent on
        (dispute, review round, seat): a seat already taken this round keeps its member unless
        the request excludes them (they recused), and then it is given back and drawn again.
        The seats an incomplete draw could fill stay held for the redraw, which keeps them.
        Drawing a round gives back the seats of the rounds before it.
        """
        return _reserving(
            self.sessions, request.number, lambda session: self._draw(session, request)
        )

    def _draw(self, session: Session, request: PanelRequest) -> PanelChoice:
        dispute = _open_dispute(session, request.number)
        at = request.at or datetime.now(UTC)
        newest = newest_panel_round(session, request.number)
        if newest is not None and newest > request.round:
            # A late attempt of a replaced round: its panel was given back and stays so.
            return PanelChoice(
                members=(),
                chair=None,
                complete=False,
                reason=f"review round {request.round} has ended (round {newest} was drawn)",
            )
        board = lock_people(session, select(Person).where(Person.role == Role.BOARD))
        sponsor = session.exec(
            select(Person).where(Person.function == "executive_sponsor", Person.active == True)  # noqa: E712
        ).first()
        release_earlier_panels(session, request.number, request.round, at)
        rows = panel_round(session, request.number, request.round)
        on_board = {p.id: p for p in board}
        sitting: dict[str, Person] = {}
        for seat in (*request.functions, "chair"):
            row = rows.get(seat)
            if row is None or row.released_at is not None:
                continue
            # Refilling seats, the workflow excludes the members who stay as well, but it only
            # asks for the seats that are vacant (and the chair's, which it keeps if sitting).
            if row.person_id in request.excluded_person_ids or row.person_id not in on_board:
                release_panel_seat(session, row, at)  # they left the panel
            else:
                sitting[seat] = on_board[row.person_id]
        loads = open_seats(session)
        if dispute.stage.is_open:
            for person in sitting.values():
                loads[person.id] -= 1  # the round's own seats are never held against them
        owned = _owned_objects(session, request)
        excluded = _why_excluded(session, request)
        refusals: list[str] = []

        def best(people: list[Person]) -> Person | None:
            eligible: list[Candidate] = []
            for person in people:
                candidate, why = _screen(person, request, loads, owned, excluded)
                if why:
                    refusals.append(why)
                else:
                    eligible.append(candidate)
            if not eligible:
                return None
            top = rank(eligible)[0].person_id
            return next(p for p in people if p.id == top)

        def fill(seat: str) -> Person | None:
            if seat in sitting:
                return sitting[seat]  # a retry, or a seat nobody left
            chosen = best([p for p in board if p.function == seat])
            if chosen is not None:
                seat_panelist(
                    session,
                    number=request.number,
                    review_round=request.round,
                    seat=seat,
                    person=chosen,
                    at=at,
                    row=rows.get(seat),
                )
                loads[chosen.id] += 1
            return chosen

        members: list[PanelMember] = []
        missing: list[str] = []
        sitting_out: list[str] = []
        for function in request.functions:
            if function not in sitting and not any(p.function == function for p in board):
                continue  # the board has no such function: "where available"
            if function == SALES_FUNCTION and owned.direct_sales_parties:
                # Against the vendor's direct sales every sales member is barred alike, so the
                # seat is not "available" here: no admin could ever fill it.
                sitting_out.append(
                    f"no {label(function)} seat: {owned.names(owned.direct_sales_parties)}"
                    " (the vendor's direct sales) is a party"
                )
                continue
            chosen = fill(function)
            if chosen is None:
                missing.append(function)
            else:
                members.append(_member(chosen))
        chair = fill("chair")
        if chair is None:
            missing.append("chair")
        if not members:
            missing.append("any panelist")
        return _panel_choice(members, chair, missing, refusals, sitting_out).model_copy(
            update={"sponsor": _member(sponsor) if sponsor else None}
        )

    @activity.defn
    def draw_exception_panel(self, request: PanelRequest) -> PanelChoice:
        """A panel for an exception to the rules of engagement (`request.number` is its EXC
        number): one eligible board member per function and a chair, screened exactly as a
        dispute's panel is (the beneficiary and the partners affected are the parties, the
        account or territory the contested objects). Seats are not reserved: an exception is
        not a case held against a member's limit, though their open cases rank them."""
        with self.sessions.read() as session:
            board = list(
                session.exec(
                    select(Person).where(Person.role == Role.BOARD).order_by(col(Person.id))
                )
            )
            loads = open_seats(session)
            owned = _owned_objects(session, request)
            refusals: list[str] = []
            taken: set[str] = set()

            def fill(function: str) -> Person | None:
                eligible: list[Candidate] = []
                people = [p for p in board if p.function == function and p.id not in taken]
                for person in people:
                    candidate, why = _screen(person, request, loads, owned)
                    if why:
                        refusals.append(why)
                    else:
                        eligible.append(candidate)
                if not eligible:
                    return None
                top = rank(eligible)[0].person_id
                taken.add(top)
                return next(p for p in people if p.id == top)

            members: list[PanelMember] = []
            missing: list[str] = []
            for function in request.functions:
                if not any(p.function == function for p in board):
                    continue  # the board has no such function: "where available"
                chosen = fill(function)
                if chosen is None:
                    missing.append(function)
                else:
                    members.append(_member(chosen))
            chair = fill("chair")
            if chair is None:
                missing.append("chair")
            if not members:
                missing.append("any panelist")
        return _panel_choice(members, chair, missing, list(dict.fromkeys(refusals)))
