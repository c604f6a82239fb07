"""For Accord's admins (the admin role, acting with `--as`): steering a dispute when its
process needs a hand (extend a deadline, offer it to a chosen mediator, draw the panel again,
retry or waive a remedy that keeps failing), the email intake's held and failed messages
(`inbound`, `inbound-retry`), and the mail the server refused (`outbox`).

A dispute action is a workflow update (`accord.cli.common._act`), which the workflow's
validators refuse to anyone whose role may not take it; `inbound-retry` and the outbox's
`resend`, `dismiss` and `send-now` check for the admin role themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal, cast

import typer

from accord.application import Services
from accord.cli.common import (
    As,
    CliError,
    Number,
    Reason,
    UpdateId,
    _act,
    _actor,
    _client,
    _one_of,
    _print_json,
    _run,
    _services,
    fail,
)
from accord.directory.records import UnknownActor
from accord.platform import wording
from models.enums import Action, Role
from models.payloads import (
    AssignMediator,
    ExtendDeadline,
    RedrawPanel,
    RetryRemedy,
    WaiveRemedy,
)
from notifications.outbox import OutboxRefused

commands = typer.Typer()

DEADLINES = ("acceptance", "mediation", "information")


# --- a dispute's process -------------------------------------------------------------------------


@commands.command()
def extend(
    number: Number,
    actor: As,
    days: Annotated[int, typer.Option(help="business days")],
    reason: Reason,
    key: UpdateId = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            parser=_one_of(DEADLINES),
            metavar=f"<{'|'.join(DEADLINES)}>",
            help="the deadline meant; refused if another is running by then",
        ),
    ] = None,
) -> None:
    """Admin: extend the running deadline by business days, with a reason."""
    _act(
        number,
        actor,
        key,
        Action.EXTEND_DEADLINE,
        lambda a: ExtendDeadline(
            actor=a,
            business_days=days,
            reason=reason,
            deadline=cast(Literal["acceptance", "mediation", "information"] | None, deadline),
        ),
    )


@commands.command()
def assign(
    number: Number,
    actor: As,
    person: Annotated[str, typer.Option(help="mediator id")],
    reason: Reason,
    key: UpdateId = None,
) -> None:
    """Admin: offer the dispute to a chosen mediator (screened for conflicts like anyone)."""
    _act(
        number,
        actor,
        key,
        Action.ASSIGN_MEDIATOR,
        lambda a: AssignMediator(actor=a, person_id=person, reason=reason),
    )


@commands.command("redraw-panel")
def redraw_panel(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Admin: draw the review panel again once the board has enough eligible members."""
    _act(number, actor, key, Action.REDRAW_PANEL, lambda a: RedrawPanel(actor=a, reason=reason))


def _remedy_index(position: int) -> int:
    """The payload's place of the remedy `accord show` numbers `position` (from 1)."""
    if position < 1:
        raise CliError("--position: remedies are numbered from 1, as `accord show` lists them")
    return position - 1


@commands.command("retry-remedy")
def retry_remedy(
    number: Number,
    actor: As,
    position: Annotated[
        int, typer.Option(help="which remedy: 1 is the first, as `accord show` numbers them")
    ],
    reason: Annotated[str, typer.Option(help="what changed")] = "",
    key: UpdateId = None,
) -> None:
    """Admin: apply a remedy that kept failing once more."""
    _act(
        number,
        actor,
        key,
        Action.RETRY_REMEDY,
        lambda a: RetryRemedy(actor=a, position=_remedy_index(position), reason=reason),
    )


@commands.command("waive-remedy")
def waive_remedy(
    number: Number,
    actor: As,
    position: Annotated[
        int, typer.Option(help="which remedy: 1 is the first, as `accord show` numbers them")
    ],
    reason: Reason,
    key: UpdateId = None,
) -> None:
    """Admin: give up on a remedy that cannot be applied, with a reason."""
    _act(
        number,
        actor,
        key,
        Action.WAIVE_REMEDY,
        lambda a: WaiveRemedy(actor=a, position=_remedy_index(position), reason=reason),
    )


# --- the email intake ----------------------------------------------------------------------------


@commands.command()
def inbound(
    state: Annotated[
        str, typer.Option(help="received, filed, threaded, answered, quarantined, ignored, failed")
    ] = "failed",
) -> None:
    """Email intake messages in one state, newest first (failed ones wait for an admin)."""
    from intake.processor import listed
    from models.enums import InboundState

    try:
        wanted = InboundState(state)
    except ValueError:
        fail(f"--state: one of {', '.join(s.value for s in InboundState)}")
    rows, total = listed(_services().sessions, wanted)
    if not rows:
        typer.echo(f"no {wanted.value} messages")
    if total > len(rows):
        typer.echo(f"the newest {len(rows)} of {total} {wanted.value} messages", err=True)
    for m in rows:
        typer.echo(
            f"#{m.id}  {m.received_at:%Y-%m-%d %H:%M}  {m.sender or m.envelope_from or '-':<30} "
            f"{(m.subject or '-')[:50]!r}  attempts {m.attempts}\n      {m.reason or '-'}"
        )


@commands.command("inbound-retry")
def inbound_retry(inbound_id: int, actor: As) -> None:
    """Process a held or failed intake message again (admins)."""
    from intake.processor import IntakeProcessor, NotHeld
    from models.enums import Role

    async def go() -> None:
        services = _services()
        who = _actor(services, actor)
        if who.role is not Role.ADMIN:
            raise CliError("processing intake messages again is for admins")
        processor = IntakeProcessor(services, await _client(services.settings))
        try:
            processor.reopen(inbound_id, actor)
        except (LookupError, NotHeld) as exc:
            message = str(exc) if isinstance(exc, NotHeld) else f"no message {inbound_id}"
            raise CliError(message) from None
        try:
            state = await processor.process(inbound_id)
        finally:
            processor.close()
        typer.echo(f"message {inbound_id} processed again: {wording.label(state)}")

    _run(go())


# --- the outbox ----------------------------------------------------------------------------------

outbox_app = typer.Typer(
    no_args_is_help=True,
    help="Mail the server refused for good, or is still waiting to be sent: list, resend, dismiss.",
)
commands.add_typer(outbox_app, name="outbox")


def _outbox_admin(login: str) -> Services:
    services = _services()
    if _actor(services, login).role is not Role.ADMIN:
        raise CliError(f"--as {login}: only admins resend or dismiss mail")
    return services


MessageId = Annotated[int, typer.Argument(help="the message's id (accord outbox list)")]


@outbox_app.command("list")
def outbox_list(
    waiting: Annotated[
        bool, typer.Option(help="list the mail still waiting to be sent instead")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The messages refused for good (failed, or dismissed), or with --waiting those still to
    be sent (with their next try and why the last one failed)."""
    outbox = _services().outbox
    rows = outbox.waiting() if waiting else outbox.undelivered()
    if as_json:
        _print_json([r.model_dump(exclude={"text_body", "html_body"}) for r in rows])
        return
    if not rows:
        typer.echo("no mail waiting" if waiting else "no refused mail")
    for r in rows:
        when = (
            f"next try {r.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
            if waiting and r.next_attempt_at
            else wording.label(r.state)
        )
        typer.echo(
            f"{r.id:>6}  {r.dispute_number or 'intake':<16} {wording.label(r.template):<20} "
            f"{r.recipient:<32}"
            f" {when}, {r.attempts} tries: {r.last_error or '-'}"
        )


@outbox_app.command("resend")
def outbox_resend(
    message_id: Annotated[int, typer.Argument(help="the message's id")], actor: As
) -> None:
    """Admin: send a refused message again (once its address or the server is put right)."""

    def go() -> None:
        row = _outbox_admin(actor).outbox.resend(message_id, datetime.now(UTC))
        typer.echo(f"message {message_id} to {row.recipient}: queued to be sent again")

    _outbox_run(go)


@outbox_app.command("dismiss")
def outbox_dismiss(
    message_id: Annotated[int, typer.Argument(help="the message's id")], actor: As
) -> None:
    """Admin: give up on a refused message; its admin task is closed."""

    def go() -> None:
        row = _outbox_admin(actor).outbox.dismiss(message_id, datetime.now(UTC))
        typer.echo(f"message {message_id} to {row.recipient}: dismissed, it will not be sent")

    _outbox_run(go)


@outbox_app.command("send-now")
def outbox_send_now(actor: As) -> None:
    """Admin: try the mail waiting out a backoff now (the mail server is back)."""

    def go() -> None:
        count = _outbox_admin(actor).outbox.send_waiting_now(datetime.now(UTC))
        typer.echo(f"{count} waiting messages are due now; a running worker sends them")

    _outbox_run(go)


def _outbox_run(command: Callable[[], None]) -> None:
    try:
        command()
    except (OutboxRefused, UnknownActor, CliError) as exc:
        fail(str(exc))
