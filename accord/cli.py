"""`accord`: run the stack, file disputes, list them and their tasks, and act on them.

Every dispute action is a workflow update, so the CLI sees exactly the refusals the web and
API will: the workflow's validators decide, and nothing is recorded when they refuse.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, cast

import typer
from pydantic import TypeAdapter, ValidationError
from sqlmodel import col, or_, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from accord.application import Services, build_filing
from accord.directory import records as directory
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import texts
from accord.disputes.filing import FilingRejected
from accord.disputes.live import live_state
from accord.disputes.operations import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_RULE,
    OPERATIONS,
    DisputeGone,
    Refused,
    StillApplying,
    new_key,
)
from accord.disputes.verification import (
    Findings,
    Head,
    chain_heads,
    check_gone,
    check_trail,
    connect_quietly,
    workflows_without_dispute,
)
from accord.platform import wording
from accord.platform.db import SessionFactory, first_of
from accord.platform.settings import ConfigurationError, Settings
from accord.platform.temporal import connect
from accord.reference import REMEDY_OPTION_HELP
from models.codec import PayloadDecryptionError
from models.enums import (
    Action,
    DisputeCategory,
    DisputeStage,
    NoteVisibility,
    ObjectKind,
    Role,
    TaskState,
    VoteOutcome,
)
from models.payloads import (
    AcceptAssignment,
    Actor,
    AddNote,
    AnswerInformation,
    Appeal,
    AssignMediator,
    CastVote,
    ContestedObject,
    DeclareImpasse,
    Dismiss,
    DisputeState,
    EvidenceRef,
    ExtendDeadline,
    FilingSubmission,
    IssueRuling,
    ProposeSettlement,
    Recuse,
    RedrawPanel,
    Remedy,
    RequestInformation,
    RespondToOffer,
    RetryRemedy,
    UnsealBallot,
    WaiveRemedy,
    Withdraw,
)
from models.tables import (
    Dispute,
    DisputeEvent,
    Partner,
    PartnerContact,
    Person,
    Precedent,
    Task,
)
from models.text import plain_error, problem, relevant
from notifications.outbox import OutboxRefused
from web.idempotency import KeyReused, perform_once

log = logging.getLogger("accord.cli")

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)

As = Annotated[
    str,
    typer.Option(
        "--as",
        help="who acts: a person id or email, or a partner contact's email (`accord people` "
        "and `accord partners --contacts` list them)",
    ),
]
Number = Annotated[str, typer.Argument(help="dispute number, e.g. DSP-2026-000001")]
Reason = Annotated[str, typer.Option(help="why (recorded in the audit trail)")]
UpdateId = Annotated[
    str | None,
    typer.Option(
        "--update-id",
        help="a key of yours for this action: run again with the same key, it is applied once "
        "and answers as the first time (default: a new key, shown if the action is still being "
        "applied when the wait ends)",
    ),
]
DivergenceReason = Annotated[
    str | None,
    typer.Option(help="why it departs from the comparable precedents, when it does (recorded)"),
]


def _one_of(values: tuple[str, ...]) -> Callable[[str], str]:
    """A parser for an option with a fixed set of values that says, when the value is none of
    them, which ones it may be (typer's own says pydantic's "Value error, ..." first)."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"'{value[:60]}' is not one of: {', '.join(values)}")
        return value

    return parse


OUTCOMES = tuple(o.value for o in VoteOutcome)
Outcome = Annotated[
    str,
    typer.Option(parser=_one_of(OUTCOMES), metavar=f"<{'|'.join(OUTCOMES)}>"),
]
DEADLINES = ("acceptance", "mediation", "information")
STAGES = tuple(s.value for s in DisputeStage)


# The option a person typed for each payload field a message may name first
# ('caucus_partner_id: ghost is not a party' is said '--caucus: ghost is not a party').
OPTIONS: dict[str, str] = {
    "claimant_id": "--claimant",
    "respondent_ids": "--respondent",
    "category": "--category",
    "contested_objects": "--object",
    "summary": "--summary",
    "facts": "--facts",
    "desired_remedy": "--remedy",
    "amount_at_stake": "--amount",
    "currency": "--currency",
    "occurred_on": "--occurred-on",
    "filed_by": "--as",
    "submission_id": "--submission-id",
    "impartiality_declaration": "--declaration",
    "reason": "--reason",
    "text": "--text",
    "caucus_partner_id": "--caucus",
    "party_id": "--party",
    "questions": "--questions",
    "request_id": "--request",
    "answer": "--answer",
    "terms": "--terms",
    "remedies": "--remedy",
    "divergence_acknowledgement": "--divergence-reason",
    "offer_id": "--offer",
    "comment": "--comment",
    "business_days": "--days",
    "deadline": "--deadline",
    "person_id": "--person",
    "outcome": "--outcome",
    "reasons": "--reasons",
    "rationale": "--rationale",
    "votes_relied_on": "--relied-on",
    "clauses_applied": "--clause",
    "precedents_cited": "--precedent",
    "against_majority_reason": "--against-majority-reason",
    "grounds": "--grounds",
    "new_evidence": "--evidence",
    "position": "--position",
}
_FIELD_FIRST = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?: ")


def as_typed(text: str) -> str:
    """A message that starts with a payload field, started with the option typed for it."""
    found = _FIELD_FIRST.match(text)
    if found is None or found.group(1) not in OPTIONS:
        return text
    place = f" {int(found.group(2)) + 1}" if found.group(2) else ""
    return f"{OPTIONS[found.group(1)]}{place}: {text[found.end() :]}"


def _where_typed(loc: tuple[Any, ...]) -> str:
    """A validation error's place, its first step as the option typed when there is one."""
    if loc and isinstance(loc[0], str) and loc[0] in OPTIONS:
        rest = wording.where(loc[1:], kinds=True)
        return f"{OPTIONS[loc[0]]} {rest}".rstrip()
    return wording.where(loc, kinds=True)


class CliError(Exception):
    pass


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _refusal(reason: object) -> str:
    """A dispute's refusal with names for ids and words for enum values."""
    try:
        with _services().sessions.read() as session:
            names = directory.names(session)
    except Exception:  # the refusal is said even when the directory cannot be read
        names = wording.NO_NAMES
    return wording.summary(reason, names)


def _run(coro: Coroutine[Any, Any, Any]) -> None:
    """Run one command; every expected failure becomes a one-line error and exit code 2."""
    try:
        asyncio.run(coro)
    except FilingRejected as exc:
        for error in exc.errors:
            typer.secho(f"error: {as_typed(str(error))}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        for err in relevant(exc.errors()):
            where = _where_typed(tuple(err["loc"]))
            # A check of the whole payload names its field first ('respondent_ids: ...').
            said = f"{where}: {plain_error(err)}" if where else as_typed(plain_error(err))
            typer.secho(f"error: {said}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except WorkflowUpdateFailedError as exc:
        fail(f"refused: {as_typed(_refusal(getattr(exc.cause, 'message', exc.cause)))}")
    except Refused as exc:
        fail(f"refused: {as_typed(_refusal(exc))}")
    except DisputeGone as exc:
        fail(str(exc.known(_services().sessions)))
    except (UnknownActor, CliError) as exc:
        fail(str(exc))
    except ConfigurationError as exc:
        fail("; ".join(exc.problems))
    except PayloadDecryptionError as exc:
        fail(f"what Temporal returned cannot be opened: {exc}")
    except RPCError as exc:
        # The engine's own words are for the log; the person is told what it means for them.
        log.warning("Temporal answered %s: %s", exc.status, exc.message)
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            fail(
                "the dispute engine (Temporal) did not answer; is `make run` (or the worker's "
                "Temporal) running at ACCORD_TEMPORAL_ADDRESS? Nothing was changed"
            )
        fail(
            "the dispute engine (Temporal) turned the request down "
            f"({exc.status.name.lower() if exc.status else 'unknown'}); nothing was changed"
        )
    except BrokenPipeError:
        # The reader went away (`accord show ... | head`): nothing is left to say.
        return
    except ConnectionError as exc:
        log.warning("connection failed: %s", exc)
        fail(
            "the dispute engine (Temporal) did not answer; is `make run` (or the worker's "
            "Temporal) running at ACCORD_TEMPORAL_ADDRESS? Nothing was changed"
        )


def _settings() -> Settings:
    return Settings()


def _ready_to_serve(*, intake: bool = False) -> None:
    """Outside development, list every setting that must be fixed, then stop (exit 2)."""
    settings = _settings()
    try:
        settings.check(intake=intake)
    except ConfigurationError as exc:
        what = "ready for production" if settings.environment == "production" else "usable"
        typer.secho(f"error: the configuration is not {what}:", fg="red", err=True)
        for problem in exc.problems:
            typer.secho(f"  - {problem}", fg="red", err=True)
        raise typer.Exit(2) from None


def _services() -> Services:
    from accord.application import build_services

    return build_services(_settings())


async def _client(settings: Settings) -> Client:
    from accord.platform.temporal import connect

    try:
        return await connect(settings)
    except RuntimeError as exc:
        raise CliError(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is `make run` running?"
        ) from None


def _actor(services: Any, login: str) -> Actor:
    with services.sessions.read() as session:
        return resolve_actor(session, login)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# --- operating the stack -----------------------------------------------------------------------


@app.command()
def run() -> None:
    """Start the embedded stack: Temporal dev server, worker, mail capture, demo data."""
    try:
        from accord.runtime.embedded import run_embedded

        asyncio.run(run_embedded(_settings()))
    except KeyboardInterrupt:
        pass


@app.command()
def worker() -> None:
    """Run a worker against the configured Temporal address."""
    from worker import main

    _ready_to_serve()
    main()


@app.command()
def web() -> None:
    """Serve the web app and API on ACCORD_WEB_HOST:ACCORD_WEB_PORT (for scaled-out setups)."""
    from web.serve import main as serve

    _ready_to_serve()
    serve()


@app.command()
def intake() -> None:
    """Run the email intake alone: the SMTP receiver and/or IMAP poller, and the processor."""
    _ready_to_serve(intake=True)
    from accord.platform.logs import configure_logging
    from accord.platform.processes import run_until_signalled
    from accord.platform.tracing import configure_tracing
    from accord.runtime.embedded import run_intake

    settings = _settings()
    configure_logging(settings.json_logs, settings.log_level)
    configure_tracing("accord-intake", settings.otel_endpoint)
    run_until_signalled(lambda stop: run_intake(settings, stop))


def _accounts() -> Any:
    from web.auth import Accounts

    settings = _settings()
    return Accounts(
        _services().sessions, session_max_age=timedelta(seconds=settings.session_max_age_seconds)
    )


@app.command("set-password")
def set_password(
    login: Annotated[str, typer.Option("--for", help="the person's or contact's email")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a web account, or set its password (ends its existing sessions)."""
    services = _services()
    with services.sessions.read() as session:
        try:
            resolve_actor(session, login)
        except UnknownActor as exc:
            fail(str(exc))
    if len(password) < 10:
        fail("--password: use at least 10 characters")
    _accounts().set_password(login, password)
    typer.echo(f"password set for {login.lower()}")


@app.command()
def token(
    login: Annotated[str, typer.Option("--for", help="the account's email")],
    name: Annotated[str, typer.Option(help="what will use the token")],
) -> None:
    """Issue a personal API token (printed once; only its hash is kept)."""
    accounts = _accounts()
    if accounts.viewer_for(login.lower()) is None:
        fail(f"{login}: no active account (create one with `accord set-password --for ...`)")
    try:
        typer.echo(accounts.issue_token(login.lower(), name))
    except ValidationError as exc:
        fail("--name: " + "; ".join(plain_error(e) for e in exc.errors()))


payload_key_app = typer.Typer(
    no_args_is_help=True,
    help="The keys sealing what Temporal stores (ACCORD_PAYLOAD_KEYS): make one, list the ids.",
)
app.add_typer(payload_key_app, name="payload-key")


@payload_key_app.command("new")
def payload_key_new(
    key_id: Annotated[
        str, typer.Option("--id", help="the new key's id (it travels, in clear, in each payload)")
    ] = "",
) -> None:
    """Print a fresh random key as ACCORD_PAYLOAD_KEYS takes it (id:base64-of-32-bytes).

    To rotate, put it first (or name it in ACCORD_PAYLOAD_KEY_ID) and keep the old keys listed
    after it: new payloads are sealed with it, older ones still open with theirs."""
    from models.codec import PayloadKeyError, new_key_entry

    try:
        typer.echo(new_key_entry(key_id or datetime.now(UTC).strftime("k%Y%m%d")))
    except PayloadKeyError as exc:
        fail(f"--id: {exc}")


@payload_key_app.command("ids")
def payload_key_ids() -> None:
    """The ids of the configured keys, the active one marked (never the keys)."""
    try:
        ring = _settings().payload_key_ring()
    except ConfigurationError as exc:
        fail("; ".join(exc.problems))
    for key_id in ring.ids:
        typer.echo(f"{key_id}{'  (active: seals new payloads)' if key_id == ring.active else ''}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from accord.platform.schema import upgrade

    settings = _settings()
    upgrade(settings.resolved_database_url())
    typer.echo(f"schema up to date at {settings.resolved_database_url()}")


@app.command("import-directory")
def import_directory_file(
    path: Annotated[Path, typer.Argument(help="YAML with partners, people, territories, accounts")],
) -> None:
    """Import or update the partner directory and people from a file (safe to repeat)."""
    from accord.directory.records import (
        DirectoryError,
        check_references,
        import_directory,
        parse_directory,
    )
    from accord.playbooks.library import PlaybookError

    try:
        directory = parse_directory(path.read_text(encoding="utf-8"))
        services = _services()
        playbook = services.playbooks.in_force(date.today())
        with services.sessions.begin() as session:
            check_references(session, directory, playbook)
            import_directory(session, directory)
    except OSError as exc:
        fail(f"{path}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"{path}: the file is not UTF-8 text (byte {exc.start})")
    except PlaybookError as exc:
        fail(f"no playbook to check the calendars against: {exc}")
    except DirectoryError as exc:
        for problem in exc.problems:
            typer.secho(f"error: {path}: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"imported {len(directory.partners)} partners, {len(directory.people)} people, "
        f"{len(directory.territories)} territories, {len(directory.accounts)} accounts"
    )


@app.command("reindex-precedents")
def reindex_precedents() -> None:
    """Rewrite every precedent's searchable texts (full and anonymised) and facets, after
    changing ACCORD_PUBLIC_AMOUNT_THRESHOLD or ACCORD_PRECEDENT_ANONYMITY_K, after the directory
    changed (new contacts, a partner's new name), or after upgrading Accord."""
    from accord.precedents.anonymity import load_population
    from accord.precedents.library import index_precedent

    services = _services()
    threshold = services.settings.public_amount_threshold
    k = services.settings.precedent_anonymity_k
    done = 0
    with services.sessions.begin() as session:
        population = load_population(session, k)  # once: the same directory for every record
        for precedent in session.exec(select(Precedent)).all():
            index_precedent(session, precedent, threshold, population=population)
            done += 1
    typer.echo(
        f"reindexed {done} precedents (amounts over {threshold:,.0f} hidden from partners;"
        f" every party label shared by at least {k} partners)"
    )


@app.command("seed-demo")
def seed_demo() -> None:
    """Load the demo partners and people (safe to repeat)."""
    from accord.directory.demo import DEMO
    from accord.directory.records import import_directory

    services = _services()
    with services.sessions.begin() as session:
        import_directory(session, DEMO)
    typer.echo(f"demo directory loaded: {len(DEMO.partners)} partners, {len(DEMO.people)} people")


# --- filing and reading ---------------------------------------------------------------------------


def _parse_object(text: str) -> ContestedObject:
    kind, sep, ref = text.partition(":")
    if not sep:
        raise CliError(f"--object {text!r}: write it as kind:reference, e.g. account:ACME-001")
    try:
        return ContestedObject.model_validate({"kind": kind, "ref": ref})
    except ValidationError as exc:
        said = "; ".join(
            f"{wording.where(e['loc'])}: {plain_error(e)}" if e["loc"] else plain_error(e)
            for e in exc.errors()
        )
        raise CliError(f"--object {text[:100]}: {said}") from None


@app.command("file")
def file_dispute(
    actor: As,
    claimant: Annotated[
        str, typer.Option(metavar="<partner>", help="claimant partner id (`accord partners`)")
    ],
    respondent: Annotated[
        list[str],
        typer.Option(
            metavar="<partner>", help="respondent partner id (repeatable; `accord partners`)"
        ),
    ],
    category: Annotated[
        str,
        typer.Option(
            metavar="<category>",
            help=", ".join(c.value for c in DisputeCategory)
            + " (`accord playbook` gives each one's clause and remedies)",
        ),
    ],
    obj: Annotated[
        list[str],
        typer.Option(
            "--object",
            metavar="<kind:ref>",
            help="contested object, e.g. deal_registration:DR-7 (repeatable); kinds: "
            + ", ".join(k.value for k in ObjectKind),
        ),
    ],
    summary: Annotated[str, typer.Option()],
    facts: Annotated[str, typer.Option()],
    remedy: Annotated[str, typer.Option(help="the remedy you want, in words")],
    amount: Annotated[str, typer.Option(help="amount at stake")],
    currency: Annotated[str, typer.Option()] = "USD",
    occurred_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today")] = None,
    submission_id: Annotated[str | None, typer.Option(help="your idempotency key")] = None,
) -> None:
    """File a dispute on behalf of a partner contact."""

    async def go() -> None:
        settings = _settings()
        services = _services()
        submission = FilingSubmission.model_validate(
            {
                "claimant_id": claimant,
                "respondent_ids": respondent,
                "category": category,
                "contested_objects": [_parse_object(o) for o in obj],
                "summary": summary,
                "facts": facts,
                "desired_remedy": remedy,
                "amount_at_stake": amount,
                "currency": currency,
                "occurred_on": occurred_on or date.today().isoformat(),
                "filed_by": actor,
                "submission_id": submission_id,
            }
        )
        client = await _client(settings)
        service = build_filing(services, client)
        result = await service.file(submission)
        typer.echo(f"{result.number}: {result.message}")

    _run(go())


LISTED = 200
"""The disputes `accord disputes` shows, newest first; it says when there are more."""


@app.command()
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


@app.command()
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


@app.command()
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


@app.command("inbound-retry")
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


@app.command()
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


@app.command()
def verify(
    number: Annotated[
        str | None, typer.Argument(help="dispute number, e.g. DSP-2026-000001")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every dispute's trail (after a restore, say)")
    ] = False,
) -> None:
    """Check a dispute's hash-chained audit trail, or every dispute's with --all, against the
    chain head its workflow holds. Exit 0: intact; 1: gaps recorded, or a trail that could not
    be compared with its head; 2: a chain broken or entries missing."""
    if (number is None) == (not every):
        fail("name one dispute, or pass --all")
    settings = _settings()
    services = _services()
    findings = Findings()

    if number is not None:
        with services.sessions.read() as session:
            events = session.exec(
                select(DisputeEvent)
                .where(DisputeEvent.dispute_number == number)
                .order_by(col(DisputeEvent.seq))
            ).all()
            known = events or session.get(Dispute, number) is not None
            texts_wrong = texts.unmatched(session, events)
        heads = asyncio.run(_chain_heads(settings, [number]))
        head = heads[number]
        if not known:
            if isinstance(head, Head):
                check_gone(number, head, findings)
                _report(findings, "")
            fail(f"no audit trail for {number}")
        check_trail(number, events, head, findings)
        findings.problems += [f"{number}: {problem}" for problem in texts_wrong]
        whole = "audit trail intact" if not findings.gaps else "chain intact"
        _report(findings, f"{number}: {whole} ({len(events)} entries)")
        return

    trails, entries = 0, 0
    with services.sessions.read() as session:
        numbers = list(session.exec(select(Dispute.number)).all())
    heads, gone, unlisted = asyncio.run(_every_chain_head(settings, numbers))
    with services.sessions.read() as session:
        # Filed while the workflows were being listed: not gone.
        filed = set(session.exec(select(Dispute.number).where(col(Dispute.number).in_(gone))))
    for lost, recorded in gone.items():
        if lost not in filed:
            check_gone(lost, recorded, findings)
    findings.unlisted = unlisted
    with services.sessions.read() as session, services.sessions.read() as lookup:
        # One pass over the audit table in key order, streamed: one dispute's trail in memory
        # at a time, however many there are.
        rows = session.exec(
            select(DisputeEvent)
            .order_by(col(DisputeEvent.dispute_number), col(DisputeEvent.seq))
            .execution_options(yield_per=2_000)
        )
        for each, grouped in groupby(rows, key=lambda event: event.dispute_number):
            events = list(grouped)
            trails, entries = trails + 1, entries + len(events)
            check_trail(each, events, heads.pop(each, None), findings)
            findings.problems += [
                f"{each}: {problem}" for problem in texts.unmatched(lookup, events)
            ]
    for each, head in heads.items():  # disputes with no entry left at all
        check_trail(each, [], head, findings)
    # A dispute with no entries was stored and its workflow not started yet (the worker will).
    checked = len(numbers)
    empty = checked - trails
    disputes = "1 dispute" if checked == 1 else f"{checked} disputes"
    none_yet = f"; {empty} {'has' if empty == 1 else 'have'} none yet" if empty else ""
    whole = "every audit trail intact" if not findings.gaps else "every hash chain intact"
    _report(findings, f"{disputes}: {whole} ({entries} entries{none_yet})")


async def _chain_heads(settings: Settings, numbers: list[str]) -> dict[str, Head | str | None]:
    client = await connect_quietly(lambda: connect(settings))
    return await chain_heads(client, numbers)


async def _every_chain_head(
    settings: Settings, numbers: list[str]
) -> tuple[dict[str, Head | str | None], dict[str, Head], str | None]:
    """The heads of the disputes in the database, the workflows whose dispute is not there,
    and why those could not be looked for."""
    client = await connect_quietly(lambda: connect(settings))
    heads = await chain_heads(client, numbers)
    gone, unlisted = await workflows_without_dispute(client, set(numbers))
    return heads, gone, unlisted


def _report(findings: Findings, summary: str) -> None:
    """Problems fail (exit 2); gaps and what could not be compared are told, exit 1; else 0."""
    notes = list(findings.gaps)
    for reason, which in findings.uncompared.items():
        shown = ", ".join(which[:10]) + (f" and {len(which) - 10} more" if len(which) > 10 else "")
        notes.append(
            f"not compared with a chain head held outside the database ({len(which)}): "
            f"{reason}: {shown}"
        )
    if findings.unlisted:
        notes.append(
            "not looked for: disputes deleted from the database with their whole trail (their "
            f"workflows are found by listing them): {findings.unlisted}"
        )
    if findings.problems:
        fail("\n".join([*findings.problems, *notes]))
    compared = f"compared with the chain head of its workflow: {findings.compared}"
    typer.echo("\n".join([f"{summary}; {compared}", *notes]))
    if notes:
        raise typer.Exit(1)


@app.command()
def mail(
    index: Annotated[int | None, typer.Argument(help="show message N in full")] = None,
    to: Annotated[str | None, typer.Option(help="only mail to this address")] = None,
) -> None:
    """Read the mail captured by the embedded stack."""
    from accord.runtime.mailcapture import MailFolder

    folder = MailFolder(_settings().state_dir / "mail")
    messages = [(p, m) for p, m in folder.messages() if to is None or m["To"] == to]
    if index is not None:
        if not 1 <= index <= len(messages):
            fail(f"there are {len(messages)} messages")
        path, message = messages[index - 1]
        for header in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References"):
            typer.echo(f"{header}: {message[header]}")
        body = message.get_body(preferencelist=("plain",))
        typer.echo("\n" + (body.get_content() if body else "(no text part)"))
        typer.echo(f"(raw: {path})")
        return
    if not messages:
        typer.echo("no mail yet")
    for i, (_, m) in enumerate(messages, start=1):
        typer.echo(f"{i:>4}  {m['Date']}  {m['To']:<36} {m['Subject']}")


# --- actions: one command each, all workflow updates ---------------------------------------------


def _act(
    number: str, login: str, key: str | None, action: Action, build: Callable[[Actor], Any]
) -> None:
    """Perform the action once per key (the same key again answers as the first time), waiting
    at most ACCORD_ACTION_WAIT_SECONDS; past it, say how to pick it up."""
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        fail(f"--update-id: {IDEMPOTENCY_KEY_RULE}")
    chosen = key or new_key()

    async def go() -> None:
        settings = _settings()
        services = _services()
        actor = _actor(services, login)
        payload = build(actor)
        client = await _client(settings)
        try:
            result = await perform_once(
                client,
                services.sessions,
                number,
                OPERATIONS[action],
                payload,
                key=chosen,
                wait_seconds=settings.action_wait_seconds,
                limits=texts.limits_of(settings),
            )
        except texts.TextProblem as problem:
            fail(str(problem))
        except StillApplying as pending:
            typer.echo(
                f"{number}: {pending}; run the same command with --update-id {chosen} for its "
                "result"
            )
            return
        except KeyReused as reused:
            fail(f"--update-id {chosen}: {reused}")
        with services.sessions.read() as session:
            names = directory.names(session)
        said = wording.summary(result.message, names)
        typer.echo(f"{result.number}: {said} (stage: {wording.label(result.stage)})")

    _run(go())


@app.command()
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


@app.command()
def recuse(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator or panelist: recuse; someone else is assigned or drawn in your place."""
    _act(number, actor, key, Action.RECUSE, lambda a: Recuse(actor=a, reason=reason))


@app.command()
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


@app.command("request-info")
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


@app.command()
def answer(
    number: Number,
    actor: As,
    request: Annotated[str, typer.Option(help="e.g. info-1")],
    text: Annotated[str, typer.Option("--answer")],
    key: UpdateId = None,
) -> None:
    """Partner: answer an information request."""
    _act(
        number,
        actor,
        key,
        Action.ANSWER_INFORMATION,
        lambda a: AnswerInformation(actor=a, request_id=request, answer=text),
    )


_REMEDIES: TypeAdapter[Remedy] = TypeAdapter(Remedy)


@app.command()
def propose(
    number: Number,
    actor: As,
    terms: Annotated[str, typer.Option()],
    remedy: Annotated[list[str], typer.Option(metavar="<json>", help=REMEDY_OPTION_HELP)],
    divergence_reason: DivergenceReason = None,
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
        ),
    )


@app.command("accept-offer")
def accept_offer(
    number: Number,
    actor: As,
    offer: Annotated[str, typer.Option(help="e.g. offer-1")],
    comment: Annotated[str, typer.Option()] = "",
    key: UpdateId = None,
) -> None:
    """Partner: accept a settlement offer for your side."""
    _act(
        number,
        actor,
        key,
        Action.RESPOND_TO_OFFER,
        lambda a: RespondToOffer(actor=a, offer_id=offer, accept=True, comment=comment),
    )


@app.command("reject-offer")
def reject_offer(
    number: Number,
    actor: As,
    offer: Annotated[str, typer.Option(help="e.g. offer-1")],
    comment: Annotated[str, typer.Option()] = "",
    key: UpdateId = None,
) -> None:
    """Partner: reject a settlement offer."""
    _act(
        number,
        actor,
        key,
        Action.RESPOND_TO_OFFER,
        lambda a: RespondToOffer(actor=a, offer_id=offer, accept=False, comment=comment),
    )


@app.command()
def impasse(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator: declare an impasse; the dispute goes to formal review."""
    _act(
        number,
        actor,
        key,
        Action.DECLARE_IMPASSE,
        lambda a: DeclareImpasse(actor=a, reason=reason),
    )


@app.command()
def dismiss(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Mediator, or the panel's chair: dismiss the dispute with a reason."""
    _act(number, actor, key, Action.DISMISS, lambda a: Dismiss(actor=a, reason=reason))


@app.command()
def withdraw(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Claimant: withdraw the dispute."""
    _act(number, actor, key, Action.WITHDRAW, lambda a: Withdraw(actor=a, reason=reason))


@app.command()
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


@app.command()
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


def unfit_argument(argv: list[str]) -> str | None:
    """Why an argument cannot be taken (models.text; line breaks allowed here, one-line fields
    refuse them in their payload), naming its option, or None. Checked before any command
    runs: an argument is looked up (a login, a dispute number) before any payload is built,
    and bytes that are not UTF-8 (Python makes them lone surrogates) fail every lookup."""
    option: str | None = None
    for position, arg in enumerate(argv, start=1):
        why = problem(arg, multiline=True)
        if why is not None:
            return f"{option or f'argument {position}'}: holds {why}"
        option = arg.split("=", 1)[0] if arg.startswith("--") else None
    return None


def main() -> None:
    """The `accord` console script."""
    code = 0
    unfit = unfit_argument(sys.argv[1:])
    if unfit is not None:
        typer.secho(f"error: {unfit}", fg=typer.colors.RED, err=True)
        sys.stderr.flush()
        os._exit(2)
    try:
        app()
    except SystemExit as exc:  # typer ends every command with one
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            # A stop with its reason (`accord run`: "port 8000 is taken; set ..."): said, as
            # the interpreter would have said it had this not caught it.
            typer.secho(f"error: {exc.code}", fg=typer.colors.RED, err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native runtime can abort while the interpreter finalizes
    # ("Fatal Python error: PyGILState_Release"); every command is complete by now, so leave
    # without finalizing.
    os._exit(code if isinstance(code, int) else 0)


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


@app.command()
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


@app.command()
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
        ),
    )


@app.command("appeal")
def appeal_ruling(
    number: Number,
    actor: As,
    grounds: Annotated[str, typer.Option()],
    evidence: Annotated[
        list[str], typer.Option(metavar="<ref:description>", help="new evidence (repeatable)")
    ],
    key: UpdateId = None,
) -> None:
    """Party: appeal a first ruling once, with grounds and new evidence."""
    refs = []
    for item in evidence:
        ref, sep, description = item.partition(":")
        if not sep:
            fail(f"--evidence {item!r}: write it as reference:description")
        refs.append(EvidenceRef(ref=ref, description=description))
    _act(
        number,
        actor,
        key,
        Action.APPEAL,
        lambda a: Appeal(actor=a, grounds=grounds, new_evidence=tuple(refs)),
    )


@app.command("unseal-ballot")
def unseal_ballot(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Chair: open the ballot once a quorum has voted (recorded, with a reason)."""
    _act(number, actor, key, Action.UNSEAL_BALLOT, lambda a: UnsealBallot(actor=a, reason=reason))


@app.command("redraw-panel")
def redraw_panel(number: Number, actor: As, reason: Reason, key: UpdateId = None) -> None:
    """Admin: draw the review panel again once the board has enough eligible members."""
    _act(number, actor, key, Action.REDRAW_PANEL, lambda a: RedrawPanel(actor=a, reason=reason))


def _remedy_index(position: int) -> int:
    """The payload's place of the remedy `accord show` numbers `position` (from 1)."""
    if position < 1:
        raise CliError("--position: remedies are numbered from 1, as `accord show` lists them")
    return position - 1


@app.command("retry-remedy")
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


@app.command("waive-remedy")
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


# --- the outbox (admins) -------------------------------------------------------------------------

outbox_app = typer.Typer(
    no_args_is_help=True,
    help="Mail the server refused for good, or is still waiting to be sent: list, resend, dismiss.",
)
app.add_typer(outbox_app, name="outbox")


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


# --- the directory and the playbook, told for the command line ----------------------------------


@app.command()
def partners(
    contacts: Annotated[
        bool, typer.Option("--contacts", help="also list each partner's contacts")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The partners in the directory: the ids --claimant and --respondent take, names, tiers,
    regions and contacts."""
    from accord.reference import partners_text

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


@app.command()
def people(
    role: Annotated[Role | None, typer.Option(help="only people with this role")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The people in the directory: the ids --as takes, with their role, function and who
    they work for."""
    from accord.reference import people_text

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


SHOWN_SETTINGS = (
    "temporal_address",
    "temporal_namespace",
    "task_queue",
    "temporal_ui_port",
    "web_host",
    "web_port",
    "base_url",
    "state_dir",
    "playbook_dir",
    "environment",
)
"""The settings `accord setting` prints: where things are, never a secret (nor the database
URL, which may hold a password)."""


@app.command()
def setting(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SHOWN_SETTINGS)}")],
) -> None:
    """Print one setting as Accord reads it (the environment, else .env, else the default),
    e.g. for another tool: temporal --address "$(accord setting temporal_address)"."""
    key = name.strip().lower().removeprefix("accord_")
    if key not in SHOWN_SETTINGS:
        fail(f"setting: not one this prints; use one of: {', '.join(SHOWN_SETTINGS)}")
    typer.echo(str(getattr(_settings(), key)))


@app.command()
def playbook(
    version: Annotated[
        str | None, typer.Option(help="a version other than the one in force today")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The playbook in force: deadlines, categories with their clause and allowed remedies,
    and each remedy's fields with an example --remedy."""
    from accord.playbooks.library import PlaybookError, PlaybookLibrary
    from accord.reference import playbook_text

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


def _paragraphs(text: str | None) -> str | None:
    """Help text with each paragraph on one line, for the help screen to wrap to the terminal
    (a docstring's own line breaks would leave ragged lines)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _plain_help(typer_app: typer.Typer) -> None:
    """Help screens as plain text wrapped to the terminal (80 columns fit): Rich's boxed
    tables cut long option names and words short ("--against-majority-r…") and read square
    brackets as markup."""
    typer_app.rich_markup_mode = None
    typer_app.info.help = _paragraphs(typer_app.info.help)
    for command in typer_app.registered_commands:
        command.help = _paragraphs(command.help or (command.callback and command.callback.__doc__))
        # Listed whole under Commands (wrapped), not cut off at some 45 characters.
        command.short_help = command.short_help or (command.help or "").split("\n\n")[0]
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)
            group.short_help = group.short_help or group.typer_instance.info.help


_plain_help(app)

if __name__ == "__main__":
    main()
