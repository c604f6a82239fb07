"""For Accord's admins (the admin role, acting with `--as`): steering a dispute when its
process needs a hand (extend a deadline, offer it to a chosen mediator, draw the panel again,
retry or waive a remedy that keeps failing), the email intake's held and failed messages
(`inbound`, `inbound-retry`), and the mail the server refused (`outbox`).

A dispute action is a workflow update (`accord.cli.common._act`), which the workflow's
validators refuse to anyone whose role may not take it; `inbound-retry` and the outbox's
`resend`, `dismiss` and `send-now` check for the admin role themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from accord.application import Services, build_filing
from accord.channel import alerts as channel_alerts_service
from accord.channel import imports as channel_imports
from accord.channel.rows import PLURALS, salesforce_kind
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
    _settings,
    as_typed,
    fail,
)
from accord.directory.records import UnknownActor
from accord.disputes import conversion
from accord.platform import wording
from models.enums import Action, AlertKind, AlertState, ChannelKind, ImportFormat, ImportState, Role
from models.payloads import (
    AssignMediator,
    ExtendDeadline,
    Money,
    PartnerId,
    RedrawPanel,
    RetryRemedy,
    WaiveRemedy,
)
from models.tables import may_be_row_id
from models.text import plain_error
from notifications import alerts as alert_notices
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


# --- channel data --------------------------------------------------------------------------------

channel_app = typer.Typer(
    no_args_is_help=True,
    help="The channel's own data for conflict prevention: import registrations, opportunities,"
    " leads, accounts and territories from CSV or a Salesforce export; list the imports.",
)
commands.add_typer(channel_app, name="channel")

KINDS = {kind.value: kind for kind in ChannelKind} | {p: k for k, p in PLURALS.items()}


def _channel_admin(login: str) -> Services:
    services = _services()
    if _actor(services, login).role is not Role.ADMIN:
        raise CliError(f"--as {login}: only admins work with channel data")
    return services


def _kind_of(path: Path, data: bytes, fmt: ImportFormat, kind: str | None) -> ChannelKind:
    if kind is not None:
        if kind not in KINDS:
            raise CliError(f"--kind {kind!r}: one of {', '.join(k.value for k in ChannelKind)}")
        return KINDS[kind]
    if fmt is ImportFormat.SALESFORCE:
        try:
            found = salesforce_kind(data)
        except ValueError as exc:
            raise CliError(f"{path.name}: {exc}") from None
        if found is not None:
            return found
        raise CliError(
            f"{path.name}: its first record's attributes.type is none Accord reads;"
            " say which with --kind"
        )
    stem = path.stem.lower()
    for name, candidate in KINDS.items():
        if stem.startswith(name):
            return candidate
    raise CliError(
        f"{path.name}: say what it holds with --kind ({', '.join(k.value for k in ChannelKind)})"
    )


@channel_app.command("import")
def channel_import(
    path: Annotated[Path, typer.Argument(help="a .csv file, or a Salesforce export (.json)")],
    actor: As,
    kind: Annotated[
        str | None,
        typer.Option(
            help="registration, opportunity, lead, account or territory (read from"
            " the file name or the export's record type when not given)"
        ),
    ] = None,
    salesforce: Annotated[
        bool | None,
        typer.Option(
            "--salesforce/--csv", help="the file's format (by default, from its extension)"
        ),
    ] = None,
) -> None:
    """Admin: import one file, all or nothing. Rows not changed since the last import (same or
    older modification time) are left as they are. Progress is shown as it goes."""
    try:
        services = _channel_admin(actor)
    except (UnknownActor, CliError) as exc:
        fail(str(exc))
    if path.exists() and not path.is_file():
        # A directory, a FIFO (reading one waits for a writer for ever), a device.
        fail(f"{path}: is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror})")
    fmt = (
        (ImportFormat.SALESFORCE if salesforce else ImportFormat.CSV)
        if salesforce is not None
        else (ImportFormat.SALESFORCE if path.suffix.lower() == ".json" else ImportFormat.CSV)
    )
    try:
        chosen = _kind_of(path, data, fmt, kind)
    except CliError as exc:
        fail(str(exc))
    shown = _ProgressLine(path.name)
    try:
        done = channel_imports.import_file(
            services.sessions,
            kind=chosen,
            fmt=fmt,
            file_name=path.name,
            data=data,
            started_by=_actor(services, actor).id,
            progress=shown,
            engagement=services.playbooks.in_force(date.today()).engagement,
        )
    except channel_imports.ImportRefused as refused:
        shown.end()
        count = len(refused.problems)
        typer.secho(
            f"error: {path.name} was not imported, nothing of it was written"
            f" ({count:,} problem{'s' if count != 1 else ''}, import {refused.record.id}):",
            fg=typer.colors.RED,
            err=True,
        )
        for problem in refused.problems[: channel_imports.SHOWN_PROBLEMS]:
            typer.echo(f"  {problem.said(path.name, fmt)}", err=True)
        if count > channel_imports.SHOWN_PROBLEMS:
            typer.echo(f"  ... and {count - channel_imports.SHOWN_PROBLEMS:,} more", err=True)
        raise typer.Exit(2) from None
    shown.end()
    told = 0
    if done.id is not None and done.alerts_raised:
        told = alert_notices.tell_raised(services.outbox, services.sessions, done.id, _now())
    typer.echo(
        f"{path.name}: {done.rows_total} {PLURALS[chosen]} read; {done.created} new,"
        f" {done.updated} updated, {done.unchanged} unchanged (import {done.id})"
        + (
            f"; {done.alerts_raised} new alerts, {told} partner emails"
            if done.alerts_raised
            else ""
        )
    )


class _ProgressLine:
    """Progress on stderr: rewritten in place on a terminal, a line every tenth otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.terminal = sys.stderr.isatty()
        self.said: tuple[ImportState, int] | None = None
        self.open = False

    def __call__(self, state: ImportState, done: int, total: int) -> None:
        if state is ImportState.DONE or max(done, total) < channel_imports.PROGRESS_EVERY:
            return  # a small file is done before a progress line would help
        step = f"{done:,} of {total:,}" if total else f"{done:,}"
        line = (
            f"{self.name}: {'checking' if state is ImportState.READING else 'writing'} rows, {step}"
        )
        if self.terminal:
            sys.stderr.write(f"\r{line}\x1b[K")
            self.open = True
        else:
            tenth = (10 * done // total) if total else done // channel_imports.PROGRESS_EVERY
            if (state, tenth) != self.said:
                self.said = (state, tenth)
                sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False


@channel_app.command("imports")
def channel_import_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The last 50 imports: what each read, wrote or why it was refused."""
    services = _services()
    now = datetime.now(UTC)
    with services.sessions.read() as session:
        records = channel_imports.recent(session)
    if as_json:
        _print_json(
            [r.model_dump() | {"state": channel_imports.state_now(r, now).value} for r in records]
        )
        return
    if not records:
        typer.echo("no imports yet")
    for r in records:
        state = channel_imports.state_now(r, now)
        outcome = (
            f"{r.created} new, {r.updated} updated, {r.unchanged} unchanged"
            if state is ImportState.DONE
            else f"{r.problem_count} problems"
            if state is ImportState.REFUSED
            else f"{r.rows_done:,} of {r.rows_total:,} rows"
            if r.rows_total
            else f"{r.rows_done:,} rows"
        )
        typer.echo(
            f"{r.id:>6}  {r.started_at:%Y-%m-%d %H:%M} {r.kind.value:<13} {r.file_name[:40]:<40}"
            f" {wording.label(state):<9} {outcome}"
        )


@channel_app.command("alerts")
def channel_alerts(
    kind: Annotated[
        str | None,
        typer.Option(help="same_customer, exclusive_territory or direct_on_registered_account"),
    ] = None,
    state: Annotated[str, typer.Option(help="open, dismissed, converted or all")] = "open",
    partner: Annotated[str | None, typer.Option(help="only those involving this partner")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The conflict alerts imports raised, highest score first: the two objects, the partners,
    the score and why."""
    if kind is not None and kind not in {k.value for k in AlertKind}:
        fail(f"--kind {kind!r}: one of {', '.join(k.value for k in AlertKind)}")
    if state != "all" and state not in {s.value for s in AlertState}:
        fail(f"--state {state!r}: one of {', '.join(s.value for s in AlertState)} or all")
    chosen_kind = AlertKind(kind) if kind is not None else None
    chosen_state = None if state == "all" else AlertState(state)
    with _services().sessions.read() as session:
        rows, total = channel_alerts_service.listed(
            session, kind=chosen_kind, state=chosen_state, partner_id=partner, most=500
        )
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        typer.echo("no alerts")
    for r in rows:
        objects = " and ".join(r.pair_key.split("|"))
        typer.echo(
            f"{r.id:>6}  {r.score:.2f}  {wording.label(r.kind):<30} {objects}"
            f" ({', '.join(r.partner_ids)}) {wording.label(r.state)}"
        )
        for reason in r.reasons:
            typer.echo(f"        - {reason}")
    if total > len(rows):
        typer.echo(f"... {total - len(rows)} more (narrow with --kind or --partner)")


@channel_app.command("dismiss")
def channel_dismiss(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (accord channel alerts)")],
    actor: As,
    reason: Reason,
) -> None:
    """Admin: dismiss an open alert with a reason; an import finding the same overlap again
    leaves it dismissed."""
    if not may_be_row_id(alert_id):
        fail(f"no alert {alert_id}")
    try:
        services = _channel_admin(actor)
        dismissal = channel_alerts_service.Dismissal(reason=reason)
        alert = channel_alerts_service.dismiss(
            services.sessions,
            alert_id,
            by=_actor(services, actor).id,
            dismissal=dismissal,
            now=datetime.now(UTC),
        )
    except ValidationError as exc:
        fail(f"--reason: {plain_error(exc.errors()[0])}")
    except (channel_alerts_service.AlertRefused, UnknownActor, CliError) as exc:
        fail(str(exc))
    alert_notices.tell_dismissed(services.outbox, services.sessions, alert_id, _now())
    typer.echo(f"alert {alert.id} dismissed: {alert.decision_reason}")


@channel_app.command("convert")
def channel_convert(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (accord channel alerts)")],
    actor: As,
    claimant: Annotated[
        str, typer.Option(help="which of the alert's partners files (the other responds)")
    ],
    amount: Annotated[
        str | None,
        typer.Option(help="the amount at stake (default: the largest amount registered)"),
    ] = None,
) -> None:
    """Admin: make an open alert a dispute, pre-filled from it, its snapshot as evidence."""
    if not may_be_row_id(alert_id):
        fail(f"no alert {alert_id}")

    async def go() -> None:
        services = _channel_admin(actor)
        by = _actor(services, actor)
        try:
            given = ConvertOptions.model_validate(
                {"claimant_id": claimant, "amount_at_stake": amount}
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            option = "--amount" if error["loc"][:1] == ("amount_at_stake",) else "--claimant"
            fail(f"{option}: {plain_error(error)}")
        client = await _client(_settings())
        result = await conversion.convert(
            build_filing(services, client),
            services.sessions,
            alert_id,
            conversion.Conversion(
                claimant_id=given.claimant_id, amount_at_stake=given.amount_at_stake
            ),
            by=by,
            now=datetime.now(UTC),
        )
        typer.echo(f"alert {alert_id} is now {result.number}: {result.message}")

    try:
        _run(go())
    except (channel_alerts_service.AlertRefused, UnknownActor, CliError) as exc:
        fail(as_typed(str(exc)))


class ConvertOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    claimant_id: PartnerId
    amount_at_stake: Money | None = None


def _now() -> datetime:
    return datetime.now(UTC)
