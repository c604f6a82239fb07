"""The README's "Who reads what" table, checked cell by cell against the rules that decide it.

Each row names where a person stands; the test puts such a person in a dispute (real rows in
the read model: parties, assignment rounds, panel seats, tasks), asks `accord.disputes.access.standing`
where they stand, and computes every column with the function that decides it: accord.disputes.access
for notes, evidence, messages, votes, the timeline and the audit trail, and the web's
`filtered_state` (built on it) for offers, information requests and rulings. The README cannot
drift from the code, nor the code from the README, without this failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlmodel import Session

from accord.directory.records import Directory, PersonRecord, resolve_actor
from accord.disputes.access import (
    Standing,
    Viewer,
    may_read_evidence,
    may_read_message,
    may_read_note,
    may_read_raw_audit,
    standing,
    visible_events,
)
from accord.platform.db import SessionFactory, make_engine
from accord.platform.settings import REPO_ROOT
from models.enums import (
    AssignmentState,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    NoteVisibility,
    Role,
    TaskKind,
    TaskState,
    VoteOutcome,
)
from models.payloads import (
    DisputeState,
    InformationRequestView,
    NoteView,
    OfferView,
    PanelMember,
    ReviewView,
    RulingView,
    VoteView,
)
from models.tables import (
    Assignment,
    Dispute,
    DisputeEvent,
    DisputeParty,
    Evidence,
    PanelSeat,
    Task,
)
from tests.conftest import seed
from web.views import filtered_state

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
REVIEWED = "DSP-2026-900001"
"""In formal review: a mediator's accepted round, an earlier one released, panel seats."""
IN_TRIAGE = "DSP-2026-900002"
"""In triage: offered to a mediator who has not accepted yet."""
CLAIMANT, RESPONDENT = "northwind", "contoso"


@dataclass(frozen=True)
class Situation:
    login: str
    number: str


SITUATIONS = {
    "claimant side": Situation("nora@northwind.example", REVIEWED),
    "respondent side": Situation("carl@contoso.example", REVIEWED),
    "mediator, while assigned": Situation("greta.hoffmann", REVIEWED),
    "mediator, offered (not accepted yet)": Situation("maria.lopez", IN_TRIAGE),
    "panel member, while seated": Situation("board.sales", REVIEWED),
    "chair, while seated": Situation("board.chair", REVIEWED),
    "compliance": Situation("carol.compliance", REVIEWED),
    "admin": Situation("alex.admin", REVIEWED),
    "executive sponsor, an admin (as in the demo)": Situation("eve.sponsor", REVIEWED),
    "executive sponsor on the board, while the escalation stands": Situation(
        "vera.sponsor", REVIEWED
    ),
    "former mediator (released, recused)": Situation("kenji.sato", REVIEWED),
    "former panel member (recused, or the panel appealed)": Situation("board.marketing", REVIEWED),
}
"""The README's rows: where each stands, by the rows `scenario` writes."""


def readme_table() -> tuple[list[str], dict[str, list[str]]]:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("\n## Who reads what\n")
    body = text[start : text.find("\n## ", start + 1)]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    assert len(lines) > 2, "no table under '## Who reads what'"

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    assert set(cells(lines[1])[0]) <= set("-:"), lines[1]
    rows = {cells(line)[0]: cells(line)[1:] for line in lines[2:]}
    return header[1:], rows


def scenario(sessions: SessionFactory) -> None:
    seed(
        sessions,
        Directory(
            people=[
                PersonRecord(
                    id="vera.sponsor",
                    name="Vera Sponsor",
                    email="vera.sponsor@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function="executive_sponsor",
                )
            ]
        ),
    )
    with sessions.begin() as session:
        for number, stage in (
            (REVIEWED, DisputeStage.FORMAL_REVIEW),
            (IN_TRIAGE, DisputeStage.TRIAGE),
        ):
            session.add(
                Dispute(
                    number=number,
                    category=DisputeCategory.TERRITORY,
                    claimant_id=CLAIMANT,
                    respondent_ids=[RESPONDENT],
                    party_key=f"{RESPONDENT}|{CLAIMANT}",
                    contested_objects=[{"kind": "territory", "ref": "US-NY-METRO"}],
                    summary="Sold into an exclusive territory",
                    facts="The order came from Manhattan.",
                    desired_remedy="A warning",
                    amount_at_stake=Decimal("10.00"),
                    currency="USD",
                    occurred_on=NOW.date(),
                    stage=stage,
                    playbook_version="2026.1",
                    filed_by="nora@northwind.example",
                    filed_at=NOW,
                    updated_at=NOW,
                )
            )
            session.flush()
            for partner, side in ((CLAIMANT, "claimant"), (RESPONDENT, "respondent")):
                session.add(DisputeParty(dispute_number=number, partner_id=partner, side=side))
        rounds = [
            (REVIEWED, 1, "kenji.sato", AssignmentState.RELEASED),
            (REVIEWED, 2, "greta.hoffmann", AssignmentState.ACCEPTED),
            (IN_TRIAGE, 1, "maria.lopez", AssignmentState.OFFERED),
        ]
        for number, round_no, person, state in rounds:
            session.add(
                Assignment(
                    dispute_number=number,
                    round=round_no,
                    person_id=person,
                    state=state,
                    assigned_at=NOW,
                )
            )
        seats = [("sales", "board.sales", None), ("chair", "board.chair", None)]
        seats.append(("marketing", "board.marketing", NOW))  # released: recused
        for seat, person, released in seats:
            session.add(
                PanelSeat(
                    dispute_number=REVIEWED,
                    review_round=1,
                    seat=seat,
                    person_id=person,
                    seated_at=NOW,
                    released_at=released,
                )
            )
        for who in ("vera.sponsor", "eve.sponsor"):
            session.add(
                Task(
                    key=f"{REVIEWED}:escalate-{who}",
                    dispute_number=REVIEWED,
                    kind=TaskKind.EXECUTIVE_REVIEW,
                    title="Review overdue",
                    assignee_id=who,
                    assignee_role=Role.ADMIN,
                    due_at=None,
                    state=TaskState.OPEN,
                    created_at=NOW,
                )
            )


def live_state(number: str) -> DisputeState:
    """What the workflow's query answers, with one of each thing a person may read."""
    member = PanelMember(
        person_id="board.sales", name="Beatrice Sales", email="b@v", function="sales"
    )
    return DisputeState(
        number=number,
        stage=DisputeStage.APPEAL_WINDOW,
        category=DisputeCategory.TERRITORY,
        claimant_id=CLAIMANT,
        respondent_ids=(RESPONDENT,),
        mediator_id="greta.hoffmann",
        candidate_mediator_id=None,
        playbook_version="2026.1",
        deadlines=(),
        clock_paused=False,
        open_tasks=(),
        information_requests=tuple(
            InformationRequestView(
                id=f"info-{i}",
                party_id=party,
                questions="When?",
                requested_at=NOW,
                due_at=NOW,
                answered_at=None,
                answer=None,
            )
            for i, party in enumerate((CLAIMANT, RESPONDENT), start=1)
        ),
        offers=(
            OfferView(
                id="offer-1", remedies=(), terms="Split", proposed_at=NOW, responses={}, open=True
            ),
        ),
        notes=(),
        history=(),
        linked_filings=(),
        review=ReviewView(
            round=1,
            panel=(member,),
            chair=member,
            votes=(VoteView(person_id="board.sales", cast_at=NOW, outcome=VoteOutcome.UPHOLD),),
            sealed=False,
            quorum=1,
        ),
        rulings=(
            RulingView(
                round=1,
                chair_id="board.chair",
                outcome=VoteOutcome.UPHOLD,
                remedies=(),
                rationale="RoE 4.2",
                votes_relied_on=("board.sales",),
                clauses_applied=("RoE 4.2",),
                precedents_cited=(),
                against_majority_reason=None,
                issued_at=NOW,
                final=False,
            ),
        ),
        outcome=None,
        allowed_actions={},
    )


def both(own: bool, other: bool) -> str:
    """A column that depends on whose it is: the viewer's own side's (or own item), another's."""
    return "yes" if own and other else "own side's" if own else "no"


def column_rules(
    viewer: Viewer, where: Standing | None, number: str
) -> dict[str, Callable[[], str]]:
    """Column heading -> the cell the code gives this viewer (standing `where`)."""
    mine = viewer.actor.partner_id or CLAIMANT
    theirs = RESPONDENT if mine == CLAIMANT else CLAIMANT

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    def note(visibility: NoteVisibility, partner: str | None) -> bool:
        view = NoteView(
            at=NOW, author="x", text="t", visibility=visibility, caucus_partner_id=partner
        )
        return where is not None and may_read_note(viewer, where, view)

    def evidence(visibility: EvidenceVisibility, side: str | None, by: str) -> bool:
        item = Evidence(visibility=visibility, side_partner_id=side, added_by=by)
        return where is not None and may_read_evidence(viewer, where, item)

    def message(side: str | None) -> bool:
        return where is not None and may_read_message(viewer, where, {"side_partner_id": side})

    def state() -> DisputeState | None:
        return None if where is None else filtered_state(viewer, where, live_state(number))

    def requests() -> str:
        shown = {r.party_id for r in s.information_requests} if (s := state()) else set()
        return both(mine in shown, theirs in shown)

    def timeline() -> bool:
        event = DisputeEvent(action="stage_mediation", content={})
        return where is not None and bool(visible_events(viewer, where, [event], {}))

    return {
        "case summary": lambda: yes(where is not None),
        "facts": lambda: yes(where is not None and where.reads_case),
        "shared notes": lambda: yes(note(NoteVisibility.SHARED, None)),
        "caucus notes": lambda: both(
            note(NoteVisibility.CAUCUS, mine), note(NoteVisibility.CAUCUS, theirs)
        ),
        "evidence for the parties": lambda: yes(
            evidence(EvidenceVisibility.PARTIES, None, "someone@else.example")
        ),
        "evidence for one side": lambda: both(
            evidence(EvidenceVisibility.SIDE, mine, "someone@else.example"),
            evidence(EvidenceVisibility.SIDE, theirs, "someone@else.example"),
        ),
        "evidence for the neutrals": lambda: (
            "yes"
            if evidence(EvidenceVisibility.NEUTRALS, None, "someone@else.example")
            else "their own"
            if evidence(EvidenceVisibility.NEUTRALS, None, viewer.actor.id)
            else "no"
        ),
        "parties' emails": lambda: both(message(mine), message(theirs)),
        "offers": lambda: yes(bool((s := state()) and s.offers)),
        "information requests": requests,
        "votes (once unsealed)": lambda: yes(bool((s := state()) and s.review and s.review.votes)),
        "rulings": lambda: yes(bool((s := state()) and s.rulings)),
        "timeline": lambda: yes(timeline()),
        "full audit trail": lambda: yes(where is not None and may_read_raw_audit(viewer)),
    }


@pytest.fixture
def sessions(sqlite_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(sqlite_url))
    seed(factory)
    scenario(factory)
    return factory


def code_table(session: Session) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    for row, situation in SITUATIONS.items():
        viewer = Viewer(actor=resolve_actor(session, situation.login), login=situation.login)
        where = standing(session, viewer, situation.number)
        rules = column_rules(viewer, where, situation.number)
        table[row] = {column: rule() for column, rule in rules.items()}
    return table


def test_the_readme_says_who_reads_what_as_the_code_decides(sessions: SessionFactory) -> None:
    header, rows = readme_table()
    with sessions.read() as session:
        code = code_table(session)
    assert set(rows) == set(code), "the README's rows are not the situations this test checks"
    columns = next(iter(code.values()))
    assert header == list(columns), "the README's columns are not the ones this test checks"
    wrong = [
        f"{row} / {column}: README says {cell!r}, the code {code[row][column]!r}"
        for row, cells in rows.items()
        for column, cell in zip(header, cells, strict=True)
        if re.sub(r"\s+", " ", cell) != code[row][column]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_table_is_the_one_the_issue_asks_for(sessions: SessionFactory) -> None:
    """Compliance and admins read caucus notes; the panel never does."""
    _, rows = readme_table()
    header, _ = readme_table()
    caucus = header.index("caucus notes")
    assert rows["compliance"][caucus] == rows["admin"][caucus] == "yes"
    assert rows["panel member, while seated"][caucus] == "no"
    assert rows["chair, while seated"][caucus] == "no"
