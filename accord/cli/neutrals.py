"""For the neutrals, who decide and do not take a side: the mediator (accept the assignment,
recuse, notes and caucus notes, requests for information, settlement proposals, an impasse, a
dismissal) and the review board's panel (sealed votes, the chair's ruling and unsealing the
ballot).

Each action is a workflow update performed as the person named by `--as`
(`accord.cli.common._act`); a remedy is given as JSON (`--remedy`), as `accord playbook`
shows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError

from accord.cli.common import As, Number, Reason, UpdateId, _act, _one_of, fail
from accord.cli.reference import REMEDY_OPTION_HELP
from accord.platform import wording
from models.enums import Action, NoteVisibility, VoteOutcome
from models.payloads import (
    AcceptAssignment,
    AddNote,
    CastVote,
    DeclareImpasse,
    Dismiss,
    IssueRuling,
    ProposeSettlement,
    Recuse,
    Remedy,
    RequestInformation,
    UnsealBallot,
)
from models.text import plain_error

commands = typer.Typer()

DivergenceReason = Annotated[
    str | None,
    typer.Option(help="why it departs from the comparable precedents, when it does (recorded)"),
]
DepartureReason = Annotated[
    str | None,
    typer.Option(
        help="why it departs from what the rules of engagement recommend, when it does (recorded)"
    ),
]
OUTCOMES = tuple(o.value for o in VoteOutcome)
Outcome = Annotated[
    str,
    typer.Option(parser=_one_of(OUTCOMES), metavar=f"<{'|'.join(OUTCOMES)}>"),
]


# --- the mediator --------------------------------------------------------------------------------


@commands.command()
def accept(
    number: Number,
    actor: As,
    declaration: Annotated[str, typer.Option(help="your impartiality declaration")],
    key: UpdateId = None,
) -> None:
    """Mediator: accept the assignment, declaring impartiality."""
    _act(
        number,
        actor,
        key,
        Action.ACCEPT_ASSIGNMENT,
        lambda a: AcceptAssignment(actor=a, impartiality_declaration=declaration),
    )


@commands.command()
def recuse(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator or panelist: recuse; someone else is assigned or drawn in your place."""
    _act(number, actor, key, Action.RECUSE, lambda a: Recuse(actor=a, reason=reason))


@commands.command()
def note(
    number: Number,
    actor: As,
    text: Annotated[str, typer.Option()],
    caucus: Annotated[
        str | None, typer.Option(help="partner id: private caucus with that side")
    ] = None,
    key: UpdateId = None,
) -> None:
    """Mediator: add a shared note, or a caucus note for one side."""
    _act(
        number,
        actor,
        key,
        Action.ADD_NOTE,
        lambda a: AddNote(
            actor=a,
            text=text,
            visibility=NoteVisibility.CAUCUS if caucus else NoteVisibility.SHARED,
            caucus_partner_id=caucus,
        ),
    )


@commands.command("request-info")
def request_info(
    number: Number,
    actor: As,
    party: Annotated[str, typer.Option(help="partner id")],
    questions: Annotated[str, typer.Option()],
    key: UpdateId = None,
) -> None:
    """Mediator: ask a party for information (pauses the mediation clock)."""
    _act(
        number,
        actor,
        key,
        Action.REQUEST_INFORMATION,
        lambda a: RequestInformation(actor=a, party_id=party, questions=questions),
    )


@commands.command()
def propose(
    number: Number,
    actor: As,
    terms: Annotated[str, typer.Option()],
    remedy: Annotated[list[str], typer.Option(metavar="<json>", help=REMEDY_OPTION_HELP)],
    divergence_reason: DivergenceReason = None,
    departure_reason: DepartureReason = None,
    key: UpdateId = None,
) -> None:
    """Mediator: propose a settlement with typed remedies."""
    remedies = _remedies_from_json(remedy)
    _act(
        number,
        actor,
        key,
        Action.PROPOSE_SETTLEMENT,
        lambda a: ProposeSettlement(
            actor=a,
            remedies=remedies,
            terms=terms,
            divergence_acknowledgement=divergence_reason,
            departure_reason=departure_reason,
        ),
    )


@commands.command()
def impasse(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator: declare an impasse; the dispute goes to formal review."""
    _act(
        number,
        actor,
        key,
        Action.DECLARE_IMPASSE,
        lambda a: DeclareImpasse(actor=a, reason=reason),
    )


@commands.command()
def dismiss(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator, or the panel's chair: dismiss the dispute with a reason."""
    _act(number, actor, key, Action.DISMISS, lambda a: Dismiss(actor=a, reason=reason))


# --- the review board's panel --------------------------------------------------------------------


@commands.command()
def vote(
    number: Number,
    actor: As,
    outcome: Outcome,
    reasons: Annotated[str, typer.Option(help="your written reasons (at least a sentence)")],
    remedy: Annotated[
        list[str] | None, typer.Option(metavar="<json>", help=REMEDY_OPTION_HELP)
    ] = None,
    key: UpdateId = None,
) -> None:
    """Panelist: cast a sealed vote with written reasons."""
    remedies = _remedies_from_json(remedy or [])
    _act(
        number,
        actor,
        key,
        Action.CAST_VOTE,
        lambda a: CastVote(
            actor=a, outcome=VoteOutcome(outcome), remedies=remedies, reasons=reasons
        ),
    )


@commands.command()
def rule(
    number: Number,
    actor: As,
    outcome: Outcome,
    rationale: Annotated[str, typer.Option()],
    relied_on: Annotated[
        list[str],
        typer.Option(metavar="<person>", help="panelist whose vote it rests on (repeatable)"),
    ],
    clause: Annotated[
        list[str],
        typer.Option(
            metavar="<clause>",
            help="playbook clause applied, by its reference, e.g. 'RoE 3.1' (repeatable)",
        ),
    ],
    remedy: Annotated[
        list[str] | None, typer.Option(metavar="<json>", help=REMEDY_OPTION_HELP)
    ] = None,
    precedent: Annotated[
        list[str] | None, typer.Option(metavar="<number>", help="precedent cited (repeatable)")
    ] = None,
    against_majority_reason: Annotated[str | None, typer.Option()] = None,
    divergence_reason: DivergenceReason = None,
    departure_reason: DepartureReason = None,
    key: UpdateId = None,
) -> None:
    """Chair: issue the panel's ruling once a majority has voted."""
    remedies = _remedies_from_json(remedy or [])
    _act(
        number,
        actor,
        key,
        Action.ISSUE_RULING,
        lambda a: IssueRuling(
            actor=a,
            outcome=VoteOutcome(outcome),
            remedies=remedies,
            rationale=rationale,
            votes_relied_on=tuple(relied_on),
            clauses_applied=tuple(clause),
            precedents_cited=tuple(precedent or ()),
            against_majority_reason=against_majority_reason,
            divergence_acknowledgement=divergence_reason,
            departure_reason=departure_reason,
        ),
    )


@commands.command("unseal-ballot")
def unseal_ballot(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Chair: open the ballot once a quorum has voted (recorded, with a reason)."""
    _act(number, actor, key, Action.UNSEAL_BALLOT, lambda a: UnsealBallot(actor=a, reason=reason))


# --- remedies given as JSON (--remedy) -----------------------------------------------------------

_REMEDIES: TypeAdapter[Remedy] = TypeAdapter(Remedy)


def _remedies_from_json(remedy: list[str]) -> tuple[Remedy, ...]:
    parsed: list[Remedy] = []
    for place, text in enumerate(remedy, start=1):
        try:
            parsed.append(_REMEDIES.validate_json(text))
        except ValidationError as exc:
            fail("; ".join(_remedy_error(place, e) for e in exc.errors()))
    return tuple(parsed)


def _remedy_error(place: int, error: Any) -> str:
    """'--remedy 2 (commission split) shares: ...'; a message that names its own field (a
    remedy's kind) follows the option: '--remedy 1 kind: ...'."""
    where = wording.where(error["loc"], kinds=True)
    said = plain_error(error)
    if where:
        return f"--remedy {place} {where}: {said}"
    if _NAMES_ITS_FIELD.match(said):
        return f"--remedy {place} {said}"
    return f"--remedy {place}: {said}"


_NAMES_ITS_FIELD = re.compile(r"^[a-z_]+: ")
