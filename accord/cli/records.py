"""For everyone who reads, compliance first: the disputes (`disputes`, `show`), the tasks
waiting on someone (`tasks`), and the directory and the rules in force told for the command
line (`partners`, `people`, `playbook`: the ids, categories and remedies the other commands
take). Nothing here changes a record.

The disputes and tasks are read from the database the workflows' activities maintain, never
from a workflow: they answer with the worker stopped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from sqlmodel import col, or_, select

from accord.cli.common import (
    CliError,
    Number,
    _one_of,
    _print_json,
    _run,
    _services,
    _settings,
    fail,
)
from accord.cli.reference import partners_text, people_text, playbook_text
from accord.directory import records as directory
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import texts
from accord.disputes.live import live_state
from accord.disputes.operations import DisputeGone
from accord.platform import wording
from accord.platform.db import SessionFactory, first_of
from accord.rules.consistency import clause_ref
from models.enums import DisputeStage, Role, TaskState
from models.payloads import DisputeState
from models.tables import Dispute, Partner, PartnerContact, Person, Task

commands = typer.Typer()

STAGES = tuple(s.value for s in DisputeStage)

LISTED = 200
"""The disputes `accord disputes` shows, newest first; it says when there are more."""


@commands.command()
def disputes(
    stage: Annotated[
        str | None,
        typer.Option(
            parser=_one_of(STAGES),
            metavar="<stage>",
            help="only this stage: " + ", ".join(STAGES),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List disputes from the read model, newest first."""
    services = _services()
    with services.sessions.read() as session:
        # The number after the time: disputes filed in one instant keep one order.
        query = select(Dispute).order_by(col(Dispute.filed_at).desc(), col(Dispute.number).desc())
        if stage:
            query = query.where(Dispute.stage == DisputeStage(stage))
        rows, total = first_of(session, query, LISTED)
        if total > len(rows):
            # On stderr: `--json` stays one document.
            typer.echo(
                f"the newest {LISTED} of {total} disputes{' in ' + stage if stage else ''};"
                " the web list (/disputes) pages through them all",
                err=True,
            )
        names = directory.names(session)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        typer.echo("no disputes")
    for r in rows:
        due = f"due {wording.when(r.stage_deadline)}" if r.stage_deadline else "no deadline"
        mediator = f"mediator {names.person(r.mediator_id)}" if r.mediator_id else "no mediator"
        typer.echo(
            wording.terminal_line(
                f"{r.number}  {wording.label(r.stage):<17} {wording.label(r.category):<24} "
                f"{names.partner(r.claimant_id)} v {names.partner_list(r.respondent_ids):<20} "
                f"{due}  {mediator}"
            )
        )


@commands.command()
def tasks(
    who: Annotated[str | None, typer.Option("--for", help="a person id or contact email")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="include done and cancelled")] = False,
) -> None:
    """Human tasks, soonest due first."""
    from sqlalchemy.orm import aliased

    from web.queue import standing_due

    services = _services()
    # The deadline that stands, as the work queue counts down to it: the dispute's when an
    # admin extended it, none while the mediation clock is paused.
    d = aliased(Dispute)
    due = standing_due(d)
    with services.sessions.read() as session:
        query = (
            select(Task, due)
            .select_from(Task)
            .outerjoin(d, col(d.number) == col(Task.dispute_number))
            .order_by(due.is_(None), due, col(Task.dispute_number), col(Task.key))
        )
        if not show_all:
            query = query.where(Task.state == TaskState.OPEN)
        if who:
            try:
                actor = resolve_actor(session, who)
            except UnknownActor as exc:
                fail(str(exc))
                return
            mine = [actor.id] + ([actor.partner_id] if actor.partner_id else [])
            query = query.where(
                or_(
                    col(Task.assignee_id).in_(mine),
                    (col(Task.assignee_id).is_(None)) & (Task.assignee_role == actor.role),
                )
            )
        rows = session.exec(query).all()
        names = directory.names(session)
    if not rows:
        typer.echo("no tasks")
    now = datetime.now(UTC)
    for t, due_at in rows:
        if t.state is not TaskState.OPEN:
            sla = wording.label(t.state)
        elif due_at is None:
            sla = "no deadline"
        else:
            sla = "BREACHED" if due_at < now else f"due in {_human(due_at - now)}"
        who_does = names.person(t.assignee_id) if t.assignee_id else "(admins)"
        line = f"{t.dispute_number}  {wording.label(t.kind):<30} {who_does:<26} {sla}"
        typer.echo(wording.terminal_line(line))


def _human(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return (
        f"{hours // 24}d {hours % 24}h"
        if hours >= 24
        else f"{hours}h {int(delta.total_seconds() // 60) % 60}m"
    )


def show_state(sessions: SessionFactory, number: str) -> DisputeState:
    """The dispute's live state from the database (`accord.disputes.live`), as the pages read it: it
    answers with the worker stopped and never waits for a history to replay. A dispute not on
    record is said as such."""
    with sessions.read() as session:
        found = live_state(session, number, history=True)
        if found is None and session.get(Dispute, number) is None:
            raise DisputeGone(number)
    if found is None:
        raise CliError(f"{number}: its live state is not recorded yet (it is with its next step)")
    return texts.resolve_state(sessions, found)


@commands.command()
def show(number: Number, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A dispute's live state: stage, parties, deadlines with explanations, tasks, history."""

    async def go() -> None:
        sessions = _services().sessions
        state = show_state(sessions, number)
        if as_json:
            _print_json(state.model_dump(mode="json"))
            return
        with sessions.read() as session:
            names = directory.names(session)
        for line in describe(state, names, datetime.now(UTC)):
            typer.echo(wording.terminal_line(line))

    _run(go())


def describe(state: DisputeState, names: wording.Names, now: datetime) -> list[str]:
    """`accord show`: a dispute's state as lines a person reads (names, not ids)."""
    w = wording
    lines = [
        f"{state.number}  {w.label(state.stage)}  "
        f"({w.label(state.category)}, playbook {state.playbook_version})",
        f"  claimant     {names.partner(state.claimant_id)}",
        f"  respondents  {names.partner_list(state.respondent_ids)}",
        f"  mediator     {names.person(state.mediator_id) if state.mediator_id else 'none yet'}"
        + (
            f" (offered to {names.person(state.candidate_mediator_id)})"
            if state.candidate_mediator_id
            else ""
        ),
    ]
    advice = state.recommendation
    if advice is not None and advice.outcome is not None:
        remedies = w.join(w.label(k) for k in advice.remedies)
        lines.append(
            f"  recommended  {w.label(advice.outcome)}"
            + (f" with {remedies}" if remedies else "")
            + f" ({clause_ref(advice.clause or '')}, rules of engagement, {advice.purpose})"
        )
    elif advice is not None and advice.tables:
        lines.append(f"  recommended  nothing: no rule of engagement applies ({advice.purpose})")
    if state.clock_paused:
        lines.append("  clock        PAUSED: a party owes information")
    for d in state.deadlines:
        due = f"{w.when(d.due_at)} ({w.countdown(d.due_at, now)})"
        lines.append(f"  deadline     {w.purpose(d.purpose)}: {due}")
        lines.append(f"               {d.explanation}")
    for t in state.open_tasks:
        lines.append(
            f"  task         {w.label(t.kind)} for "
            + (names.person(t.assignee) if t.assignee else "admins")
            + (f", due {w.when(t.due_at)}" if t.due_at else "")
        )
    for o in state.offers:
        answers = "; ".join(
            f"{names.partner(p)} {'accepted' if yes else 'rejected'}"
            for p, yes in o.responses.items()
        )
        lines.append(
            f"  offer        {o.id} {'open' if o.open else 'closed'}: {o.terms}"
            + (f" ({answers})" if answers else "")
        )
        lines += [f"               {i}. {w.remedy(r, names)}" for i, r in enumerate(o.remedies, 1)]
    for r in state.information_requests:
        lines.append(
            f"  info         {r.id} to {names.partner(r.party_id)}: \u201c{r.questions}\u201d"
            + (f" answered \u201c{r.answer}\u201d" if r.answer else "")
        )
    if state.review is not None:
        review = state.review
        chair = review.chair.name if review.chair else "-"
        members = w.join(m.name for m in review.panel)
        lines.append(
            f"  panel        round {review.round}: {members}; chair {chair}; quorum {review.quorum}"
        )
        for v in review.votes:
            shown = "sealed" if v.outcome is None else w.label(v.outcome)
            lines.append(
                f"  vote         {names.person(v.person_id)}: {shown} ({w.when(v.cast_at)})"
            )
    for decided in state.rulings:
        lines.append(
            f"  ruling       round {decided.round}{' (final)' if decided.final else ''}: "
            f"{w.label(decided.outcome)} by {names.person(decided.chair_id)}: {decided.rationale}"
        )
        lines += [
            f"               {i}. {w.remedy(r, names)}" for i, r in enumerate(decided.remedies, 1)
        ]
    awarded = state.remedies_decided()
    for rp in state.remedies:
        known = rp.position < len(awarded) and awarded[rp.position].kind is rp.kind
        what = w.remedy(awarded[rp.position], names) if known else w.capital(w.label(rp.kind))
        lines.append(
            f"  remedy       {rp.position + 1}: {what}, {w.label(rp.state)}"
            + (f" via {w.adapter(rp.adapter)}" if rp.adapter else "")
            + (f" ({w.failure(rp.error)})" if rp.error else "")
        )
    lines.append("  history")
    # Columns as wide as their longest entry: a party's contact is named with their
    # organisation, often longer than a fixed column would allow.
    actors = [names.person(h.actor) for h in state.history]
    actions = [w.label(h.action) for h in state.history]
    actor_width = max(map(len, actors), default=0)
    action_width = max(map(len, actions), default=0)
    for h, actor, action in zip(state.history, actors, actions, strict=True):
        lines.append(
            f"    {h.seq:>3} {h.at:%Y-%m-%d %H:%M:%S} {actor:<{actor_width}} "
            f"{action:<{action_width}} {w.summary(h.summary, names)}"
        )
    possible = [
        f"{w.label(role)}: {', '.join(w.label(a) for a in acts)}"
        for role, acts in state.allowed_actions.items()
        if acts
    ]
    lines.append("  possible now " + ("; ".join(possible) if possible else "nothing (closed)"))
    return lines


# --- the directory and the playbook, told for the command line -----------------------------------


@commands.command()
def partners(
    contacts: Annotated[
        bool, typer.Option("--contacts", help="also list each partner's contacts")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The partners in the directory: the ids --claimant and --respondent take, names, tiers,
    regions and contacts."""
    services = _services()
    with services.sessions.read() as session:
        if as_json:
            rows = session.exec(select(Partner).order_by(col(Partner.id))).all()
            people = session.exec(select(PartnerContact).order_by(col(PartnerContact.id))).all()
            _print_json(
                [
                    p.model_dump(mode="json")
                    | {
                        "contacts": [
                            c.model_dump(mode="json", exclude={"id", "partner_id"})
                            for c in people
                            if c.partner_id == p.id
                        ]
                    }
                    for p in rows
                ]
            )
            return
        lines = partners_text(session, with_contacts=contacts)
    typer.echo("\n".join(lines))


@commands.command()
def people(
    role: Annotated[Role | None, typer.Option(help="only people with this role")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The people in the directory: the ids --as takes, with their role, function and who
    they work for."""
    services = _services()
    with services.sessions.read() as session:
        if as_json:
            query = select(Person).order_by(col(Person.role), col(Person.id))
            if role:
                query = query.where(Person.role == role)
            _print_json([p.model_dump(mode="json") for p in session.exec(query).all()])
            return
        lines = people_text(session, role)
    typer.echo("\n".join(lines))


@commands.command()
def playbook(
    version: Annotated[
        str | None, typer.Option(help="a version other than the one in force today")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The playbook in force: deadlines, categories with their clause and allowed remedies,
    and each remedy's fields with an example --remedy."""
    from accord.playbooks.library import PlaybookError, PlaybookLibrary

    settings = _settings()
    try:
        library = PlaybookLibrary.from_dir(settings.playbook_dir)
        chosen = library.get(version) if version else library.in_force(date.today())
    except PlaybookError as exc:
        fail(str(exc))
    if as_json:
        _print_json(chosen.model_dump(mode="json"))
        return
    typer.echo("\n".join(playbook_text(chosen)))
