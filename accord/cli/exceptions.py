"""For the partners who ask the board for an exception to the rules of engagement, the board
that decides it and the admins who steer it: `accord exceptions request|list|show|object|vote|
decide|withdraw|redraw`.

Reading (`list`, `show`) is the operator's, like `accord show`: everything, the opened ballot
included. Asking and acting are as the person named by `--as`, through the same service as
the web (accord.governance.exceptions): the directory is checked now, then the workflow's
rules; each refusal is said in one line naming the option, exit code 2.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from accord.application import build_exceptions
from accord.channel import exceptions as listing
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest
from accord.cli.common import (
    As,
    CliError,
    Reason,
    _actor,
    _client,
    _print_json,
    _run,
    _services,
    _settings,
    fail,
)
from accord.directory.records import UnknownActor
from accord.governance.exceptions import ExceptionForbidden
from accord.platform import wording
from models.enums import ExceptionChoice, ExceptionState
from models.tables import ChannelException, may_be_row_id
from models.text import plain_error, relevant

commands = typer.Typer()
exceptions_app = typer.Typer(
    no_args_is_help=True,
    help="Exceptions to the rules of engagement approved by the board: a partner (or an admin"
    " for it) asks; the partners affected may object; a panel votes sealed; the chair decides.",
)
commands.add_typer(exceptions_app, name="exceptions")

ExceptionId = Annotated[
    int, typer.Argument(help="the exception's id (EXC-<id>; accord exceptions list)")
]
CHOICES = tuple(c.value for c in ExceptionChoice)
Choice = Annotated[str, typer.Option(metavar=f"<{'|'.join(CHOICES)}>", help="approve or deny")]
# The option typed for each field a refusal or a validation error names.
OPTIONS = {
    "partner_id": "--partner",
    "clause": "--clause",
    "account": "--account",
    "territory": "--territory",
    "until": "--until",
    "reason": "--reason",
    "reasons": "--reasons",
    "choice": "--choice",
}


def _option(field: str) -> str:
    return OPTIONS.get(field, field)


def _said(exc: ValidationError) -> list[str]:
    said = []
    for err in relevant(exc.errors()):
        loc = [str(p) for p in err.get("loc", ())]
        message = plain_error(err).removeprefix("Value error, ")
        said.append(f"{_option(loc[0])}: {message}" if loc else message)
    return said


def _invalid(exc: ValidationError) -> typer.Exit:
    for line in _said(exc):
        typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _perform(go: Coroutine[Any, Any, None]) -> None:
    """Run the command; the exceptions' own refusals said in one line, naming the option."""
    try:
        _run(go)
    except ExceptionRefused as exc:
        if exc.field == "action":
            fail(f"refused: {exc.message}")
        fail(f"{_option(exc.field)}: {exc.message}")
    except ExceptionForbidden as exc:
        fail(f"not allowed: {exc}")
    except LookupError as exc:  # ExceptionNotFound, UnknownActor
        fail(str(exc).strip("'\""))


def _check_id(exception_id: int) -> None:
    if not may_be_row_id(exception_id):
        fail(f"no exception EXC-{exception_id}")


@exceptions_app.command("request")
def request(
    actor: As,
    partner: Annotated[str, typer.Option(help="the partner the exception is for")],
    clause: Annotated[str, typer.Option(help="the rule to except, e.g. 'RoE 4.2'")],
    until: Annotated[str, typer.Option(help="the last day it applies (YYYY-MM-DD)")],
    reason: Annotated[str, typer.Option(help="why it is asked for: at least a sentence")],
    account: Annotated[str | None, typer.Option(help="the account it covers")] = None,
    territory: Annotated[str | None, typer.Option(help="or the territory it covers")] = None,
) -> None:
    """Partner (for itself) or admin (for any partner): ask the board for an exception."""

    try:
        asked = ExceptionRequest.model_validate(
            {
                "partner_id": partner,
                "clause": clause,
                "until": until,
                "reason": reason,
                **({"account": account} if account is not None else {}),
                **({"territory": territory} if territory is not None else {}),
            }
        )
    except ValidationError as exc:
        raise _invalid(exc) from None

    async def go() -> None:
        services = _services()
        by = _actor(services, actor)
        client = await _client(_settings())
        row = await build_exceptions(services, client).request(asked, by)
        typer.echo(
            f"EXC-{row.id} requested for {row.partner_id}: {row.clause} at {row.scope_kind}"
            f" {row.scope_ref} until {row.until}; affects {', '.join(row.affected_partner_ids)}"
        )

    _perform(go())


@exceptions_app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="requested, in_review, approved, ...")] = None,
    partner: Annotated[str | None, typer.Option(help="asking for or affected by it")] = None,
    clause: Annotated[str | None, typer.Option(help="e.g. 'RoE 4.2'")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Exceptions, newest first."""
    if state is not None and state not in {s.value for s in ExceptionState}:
        fail(f"--state {state!r}: one of {', '.join(s.value for s in ExceptionState)}")
    with _services().sessions.read() as session:
        rows, total = listing.listed(
            session,
            state=ExceptionState(state) if state else None,
            partner_id=partner,
            clause=clause,
            most=500,
        )
    if as_json:
        _print_json([listing.summary(r) for r in rows])
        return
    if not rows:
        typer.echo("no exceptions")
    for r in rows:
        typer.echo(
            f"EXC-{r.id:<5} {r.partner_id:<12} {r.clause[:40]:<40} {r.scope_kind} {r.scope_ref}"
            f" until {r.until} {wording.label(r.state)}"
        )
    if total > len(rows):
        typer.echo(f"... {total - len(rows)} more (narrow with --state, --partner or --clause)")


@exceptions_app.command("show")
def show(
    exception_id: ExceptionId, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """One exception and its audit history."""
    _check_id(exception_id)
    with _services().sessions.read() as session:
        row = session.get(ChannelException, exception_id)
        if row is None:
            fail(f"no exception EXC-{exception_id}")
        history = [
            listing.event_view(e, insider=True) for e in listing.history(session, row.id or 0)
        ]
    if as_json:
        _print_json({**listing.summary(row), "history": history})
        return
    typer.echo(f"EXC-{row.id}  {wording.label(row.state)}")
    typer.echo(f"  for {row.partner_id}: {row.clause} at {row.scope_kind} {row.scope_ref}")
    typer.echo(f"  until {row.until}; affects {', '.join(row.affected_partner_ids)}")
    typer.echo(f"  asked by {row.requested_by} on {row.requested_at:%Y-%m-%d}: {row.reason}")
    if row.decided_by:
        typer.echo(f"  decided by {row.decided_by}: {row.decision_reason}")
    for h in history:
        typer.echo(f"  {h['step']:>3} {h['at'][:16]} {h['actor']:<28} {h['summary']}")


def _act(exception_id: int, action: str, login: str, data: dict[str, Any]) -> None:
    _check_id(exception_id)

    async def go() -> None:
        services = _services()
        by = _actor(services, login)
        client = await _client(_settings())
        try:
            done = await build_exceptions(services, client).act(exception_id, action, by, data)
        except ValidationError as exc:
            raise _invalid(exc) from None
        typer.echo(f"EXC-{exception_id}: {done.message} ({wording.label(done.state)})")

    try:
        _perform(go())
    except (UnknownActor, CliError) as exc:
        fail(str(exc))


@exceptions_app.command("object")
def object_(exception_id: ExceptionId, actor: As, reason: Reason) -> None:
    """An affected partner: object while the objection window is open."""
    _act(exception_id, "object", actor, {"reason": reason})


@exceptions_app.command("vote")
def vote(
    exception_id: ExceptionId,
    actor: As,
    choice: Choice,
    reasons: Annotated[str, typer.Option(help="why (sealed until the ballot opens)")],
) -> None:
    """A panelist: cast a sealed vote."""
    _act(exception_id, "vote", actor, {"choice": choice, "reasons": reasons})


@exceptions_app.command("decide")
def decide(exception_id: ExceptionId, actor: As, choice: Choice, reason: Reason) -> None:
    """The panel's chair: decide once the ballot is open."""
    _act(exception_id, "decide", actor, {"choice": choice, "reason": reason})


@exceptions_app.command("withdraw")
def withdraw(exception_id: ExceptionId, actor: As, reason: Reason) -> None:
    """The partner who asked, or an admin: take the request back before it is decided."""
    _act(exception_id, "withdraw", actor, {"reason": reason})


@exceptions_app.command("redraw")
def redraw(exception_id: ExceptionId, actor: As, reason: Reason) -> None:
    """Admin: draw the panel again once the board can seat one."""
    _act(exception_id, "redraw", actor, {"reason": reason})
