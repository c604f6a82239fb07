"""For whoever runs Accord: the processes (`run`, `worker`, `web`, `intake`), the schema, web
accounts and API tokens, the payload keys, the directory and the precedents' index, the
settings as Accord reads them, the mail the embedded stack captured, and `verify`, the audit
trails checked against their workflows (after a restore, say).

These commands act with the deployment's own configuration and database, not as a person of
the directory: none takes `--as`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlmodel import col, select

from accord.cli import interrupts
from accord.cli.common import _services, _settings, fail
from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes import texts
from accord.disputes.verification import (
    Findings,
    Head,
    chain_heads,
    check_gone,
    check_trail,
    connect_quietly,
    workflows_without_dispute,
)
from accord.platform.settings import ConfigurationError, Settings
from accord.platform.temporal import connect
from models.tables import Dispute, DisputeEvent, Precedent
from models.text import plain_error

commands = typer.Typer()


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


# --- operating the stack -------------------------------------------------------------------------


@commands.command()
def run() -> None:
    """Start the embedded stack: Temporal dev server, worker, mail capture, demo data."""
    interrupts.hold()  # the stack's modules load here (accord.cli.interrupts)
    from accord.runtime.embedded import run_embedded

    interrupts.release()
    try:
        asyncio.run(run_embedded(_settings()))
    except KeyboardInterrupt:
        pass


@commands.command()
def worker() -> None:
    """Run a worker against the configured Temporal address."""
    from worker import main

    _ready_to_serve()
    main()


@commands.command()
def web() -> None:
    """Serve the web app and API on ACCORD_WEB_HOST:ACCORD_WEB_PORT (for scaled-out setups)."""
    from web.serve import main as serve

    _ready_to_serve()
    serve()


@commands.command()
def intake() -> None:
    """Run the email intake alone: the SMTP receiver and/or IMAP poller, and the processor."""
    _ready_to_serve(intake=True)
    from accord.platform.logs import configure_logging
    from accord.platform.processes import run_until_signalled
    from accord.platform.tracing import configure_tracing
    from accord.runtime.embedded import run_intake

    settings = _settings()
    configure_logging(settings.json_logs, settings.log_level, secrets=settings.secret_values())
    configure_tracing("accord-intake", settings.otel_endpoint)
    run_until_signalled(lambda stop: run_intake(settings, stop))


def _accounts() -> Any:
    from web.auth import Accounts

    settings = _settings()
    return Accounts(
        _services().sessions, session_max_age=timedelta(seconds=settings.session_max_age_seconds)
    )


@commands.command("set-password")
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


@commands.command()
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
commands.add_typer(payload_key_app, name="payload-key")


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


@commands.command()
def migrate(
    lock_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=60,
            help="PostgreSQL: seconds a statement waits for a table's lock before the migration"
            " is tried again (requests on that table wait behind it meanwhile)",
        ),
    ] = 3.0,
    tries: Annotated[
        int, typer.Option(min=1, max=1000, help="How often a migration is tried before giving up")
    ] = 20,
) -> None:
    """Bring the database schema up to date, while the product runs (each migration its own
    transaction; indexes built and rows filled without blocking reads and writes)."""
    from accord.platform.schema import MigrationBlocked, upgrade

    settings = _settings()
    try:
        upgrade(
            settings.resolved_database_url(),
            lock_timeout=lock_timeout,
            tries=tries,
            said=lambda line: typer.echo(line, err=True),
        )
    except MigrationBlocked as blocked:
        fail(str(blocked))
    typer.echo(f"schema up to date at {settings.database_url_shown()}")


@commands.command()
def reconcile() -> None:
    """After restoring the database from a backup older than Temporal's: take every dispute
    number Temporal knows out of the counter, and store again each running dispute whose row
    the backup did not have (from its workflow). Run it before the web and intake start.
    Exit 0: level with Temporal; 1: disputes that could not be stored again (named); 2:
    Temporal not reachable or unable to list workflows."""
    from temporalio.service import RPCError

    from accord.application import build_filing

    settings = _settings()
    services = _services()

    async def run() -> Any:
        client = await connect_quietly(lambda: connect(settings))
        if client is None:
            return None
        return await build_filing(services, client).reconcile_with_temporal()

    try:
        done = asyncio.run(run())
    except RPCError as error:
        fail(f"Temporal could not list the dispute workflows: {error.message}; nothing changed")
    if done is None:
        fail(f"Temporal does not answer at {settings.temporal_address}; nothing changed")
    numbers = ", ".join(f"DSP-{y}-{n:06d}" for y, n in sorted(done.numbers.items())) or "none"
    typer.echo(f"newest dispute numbers Temporal knows: {numbers} (new filings come after them)")
    typer.echo(
        "stored again from their workflows (they go on): " + (", ".join(done.adopted) or "none")
    )
    if done.unreadable:
        typer.echo(
            "running, missing here, and their workflows' input cannot be read with this"
            " process's payload keys (ACCORD_PAYLOAD_KEYS): " + ", ".join(done.unreadable)
        )
    if done.lost:
        typer.echo(
            "closed while the backup was older, missing here and not rebuilt (their histories"
            f" stay in Temporal; accord verify --all lists them): {', '.join(done.lost)}"
        )
    if done.unreadable or done.lost:
        raise typer.Exit(1)


@commands.command("import-directory")
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


@commands.command("reindex-precedents")
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


@commands.command("seed-demo")
def seed_demo() -> None:
    """Load the demo partners and people (safe to repeat)."""
    from accord.directory.demo import DEMO
    from accord.directory.records import import_directory

    services = _services()
    with services.sessions.begin() as session:
        import_directory(session, DEMO)
    typer.echo(f"demo directory loaded: {len(DEMO.partners)} partners, {len(DEMO.people)} people")


# --- the audit trails, against the chain heads their workflows hold ------------------------------


@commands.command()
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


# --- the mail the embedded stack captured, and the settings as Accord reads them -----------------


@commands.command()
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


@commands.command()
def setting(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SHOWN_SETTINGS)}")],
) -> None:
    """Print one setting as Accord reads it (the environment, else .env, else the default),
    e.g. for another tool: temporal --address "$(accord setting temporal_address)"."""
    key = name.strip().lower().removeprefix("accord_")
    if key not in SHOWN_SETTINGS:
        fail(f"setting: not one this prints; use one of: {', '.join(SHOWN_SETTINGS)}")
    typer.echo(str(getattr(_settings(), key)))
