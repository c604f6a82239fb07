"""One chaos run: disputes in flight on a real stack while its parts are broken, then a count of
what survived.

The stack is the production shape on one machine: a Temporal dev server on a database file, the
worker (`accord worker`) and the intake (`accord intake`) as processes of their own, an SMTP
server, and the database (SQLite by default, PostgreSQL with --database-url). The disputes are
driven from this process through the engine, as the web app drives them. Injected while they
run: the worker killed with SIGKILL at random moments, the dev server killed and restarted,
the mail server down, the database unreachable, the hostile mail of `chaos.hostile`. Found
afterwards: each dispute at the end its path must reach, nothing lost, no email and no remedy
twice, nothing left pending in the outbox or the intake, every audit chain intact.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, func, select
from temporalio.client import Client

from accord.application import build_filing, build_services
from accord.directory.demo import DEMO
from accord.directory.records import Directory, PersonRecord, import_directory, resolve_actor
from accord.platform.schema import upgrade
from accord.platform.settings import REPO_ROOT, Settings
from accord.platform.temporal import connect
from accord.rules.audit import first_broken_link
from chaos.disputes import Case, Driver, Refused, submission
from chaos.disputes import Path as DisputePath
from chaos.hostile import HEADER_BOMB, hostile_mail, send_hostile
from chaos.processes import AccordProcess, DatabaseOutage, DevServer, MailServer
from models.enums import InboundState, OutboxState, Role
from models.payloads import Actor
from models.tables import (
    Dispute,
    DisputeEvent,
    InboundMessage,
    LedgerCommissionSplit,
    OutboxMessage,
    Person,
)
from workflows.dispute import DisputeWorkflow

UNFINISHED_INTAKE = (InboundState.RECEIVED,)
"""The intake state a message may not be left in: claimed or backing off, it stays here."""

CUT_WINDOW = 2.0
"""Seconds after the server accepted an email within which a SIGKILL of the worker may have
come before the relay recorded it as sent: the copy another relay sends after the lease runs
out (same Message-ID) is then the outbox's documented at-least-once, counted apart; any other
copy is a finding. The record commits within milliseconds ahead of the other writers; the
rest is room for a loaded machine. While the database is away the relay keeps trying to record,
so an outage that began in this window extends it to the outage's end (`cut_by_kill`)."""

FUNCTIONS = ("sales", "marketing", "product", "finance", "partner_management", "chair")


@dataclass(frozen=True)
class Plan:
    """What to run and what to break; `make chaos` runs the full plan, `make test` a small one."""

    disputes: int = 200
    concurrency: int = 40
    worker_kills: int = 20
    kill_interval: tuple[float, float] = (3.0, 10.0)
    """Seconds between one kill and the next, drawn at random in this range."""
    server_restarts: int = 1
    smtp_down_seconds: float = 300.0
    database_down_seconds: float = 60.0
    hostile_mail: bool = True
    database_url: str = ""
    """Empty: a SQLite file in the run's folder."""
    patience_seconds: float = 900.0
    """How long one dispute may take to reach a step before the run calls it stuck."""
    drain_seconds: float = 300.0
    """How long the outbox and intake get, once everything is back, to empty."""
    seed: int = 0


@dataclass
class Report:
    plan: Plan
    backend: str
    injected: list[tuple[str, str]] = field(default_factory=list)
    found: list[tuple[str, int, int]] = field(default_factory=list)
    """(check, expected, found)."""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(expected == got for _, expected, got in self.found)

    def table(self) -> str:
        width = max(len(name) for name, _ in self.injected + [(c, "") for c, *_ in self.found])
        lines = [
            f"chaos run: {self.plan.disputes} disputes on {self.backend}, {self.seconds:.0f} s,"
            f" {'PASSED' if self.ok else 'FAILED'}",
            "",
            f"| {'injected':<{width}} | amount |",
            f"|{'-' * (width + 2)}|--------|",
            *(f"| {name:<{width}} | {amount:>6} |" for name, amount in self.injected),
            "",
            f"| {'found':<{width}} | expected | found |",
            f"|{'-' * (width + 2)}|----------|-------|",
            *(
                f"| {name:<{width}} | {expected:>8} | {got:>5} |"
                for name, expected, got in self.found
            ),
        ]
        if self.problems:
            lines += ["", "problems:", *(f"  - {p}" for p in self.problems[:40])]
            if len(self.problems) > 40:
                lines.append(f"  ... and {len(self.problems) - 40} more")
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChaosRun:
    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.run_id = uuid.uuid4().hex[:6]
        self.random = random.Random(plan.seed or None)
        self.database_url = plan.database_url or f"sqlite:///{work / 'accord.db'}"
        self.server = DevServer(work, free_port())
        self.mail = MailServer(free_port())
        self.intake_port = free_port()
        self.settings = Settings(
            database_url=self.database_url,
            state_dir=work,
            playbook_dir=REPO_ROOT / "playbooks",
            smtp_port=self.mail.port,
            temporal_address=self.server.address,
            task_queue=f"accord-chaos-{self.run_id}",
            intake_smtp_port=self.intake_port,
            admin_email="channel-admins@vendor.example",
            # The processes below get no ACCORD_ variable of this one's: the development key,
            # here as there, whatever this shell sets.
            payload_keys=None,
            payload_key_id="",
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")},
            "DATABASE_URL": self.database_url,
            "ACCORD_STATE_DIR": str(work),
            "ACCORD_PLAYBOOK_DIR": str(REPO_ROOT / "playbooks"),
            "ACCORD_SMTP_PORT": str(self.mail.port),
            "ACCORD_TEMPORAL_ADDRESS": self.server.address,
            "ACCORD_TASK_QUEUE": self.settings.task_queue,
            "ACCORD_ADMIN_EMAIL": self.settings.admin_email,
            "ACCORD_OUTBOX_RELAY_INTERVAL_SECONDS": "1",
            "ACCORD_INTAKE_SMTP_PORT": str(self.intake_port),
            # Time compressed like the outages: a message failing its attempts (the header
            # bomb) reaches the failed state in a minute rather than in the default 7.5.
            "ACCORD_INTAKE_RETRY_SECONDS": "1",
            "ACCORD_WORKER_HEALTH_PORT": "0",
        }
        self.worker = AccordProcess("worker", env, work / "worker.log")
        self.intake = AccordProcess("intake", env, work / "intake.log")
        self.outage = DatabaseOutage(self.database_url)
        self.report = Report(plan, "PostgreSQL" if "postgres" in self.database_url else "SQLite")
        self.done = asyncio.Event()
        self.hostile_accepted: list[str] = []

    # --- set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        upgrade(self.database_url)
        services = build_services(self.settings)
        alternates = Directory(
            people=[
                PersonRecord(
                    id=f"alt.{f}",
                    name=f"Alt {f.title()}",
                    email=f"alt.{f}@vendor.example",
                    role=Role.BOARD,
                    calendar="US-NY",
                    function=f,
                )
                for f in FUNCTIONS
            ]
        )
        with services.sessions.begin() as session:
            import_directory(session, DEMO)
            import_directory(session, alternates)
            # Room for every dispute of the run with every mediator and board member.
            for person in session.exec(select(Person)).all():
                person.case_limit = 100_000
                session.add(person)
        self.services = services

    def actors(self) -> tuple[dict[str, Actor], dict[str, str]]:
        contacts = {p.id: p.contacts[0].email for p in DEMO.partners}
        with self.services.sessions.read() as session:
            people = [p.id for p in session.exec(select(Person)).all()]
            actors = {login: resolve_actor(session, login) for login in people}
            actors |= {email: resolve_actor(session, email) for email in contacts.values()}
        return actors, contacts

    # --- faults -------------------------------------------------------------------------------

    async def _kill_workers(self) -> None:
        low, high = self.plan.kill_interval
        while not self.done.is_set() and self.worker.kills < self.plan.worker_kills:
            try:
                await asyncio.wait_for(self.done.wait(), self.random.uniform(low, high))
                return
            except TimeoutError:
                pass
            await asyncio.to_thread(self.worker.kill9)
            await asyncio.sleep(self.random.uniform(0.2, 2.0))
            await asyncio.to_thread(self.worker.start)

    async def _outages(self) -> None:
        async def later(delay: float, what: Callable[[], Awaitable[None]]) -> None:
            await asyncio.sleep(delay)
            try:
                await what()
            except Exception as failure:
                self.report.problems.append(f"injecting {what.__name__} failed: {failure!r}")

        parts = []
        if self.plan.smtp_down_seconds:
            parts.append(later(2, self._smtp_down))
        if self.plan.database_down_seconds:
            parts.append(later(4, self._database_down))
        for i in range(self.plan.server_restarts):
            parts.append(later(8 + 10 * i, self._restart_server))
        if self.plan.hostile_mail:
            parts.append(later(1, self._hostile))
        await asyncio.gather(*parts)

    async def _smtp_down(self) -> None:
        await asyncio.to_thread(self.mail.down)
        await asyncio.sleep(self.plan.smtp_down_seconds)
        await asyncio.to_thread(self.mail.up)
        self.report.injected.append(("SMTP server down (s)", f"{self.plan.smtp_down_seconds:.0f}"))

    async def _database_down(self) -> None:
        await asyncio.to_thread(self.outage.begin)
        await asyncio.sleep(self.plan.database_down_seconds)
        await asyncio.to_thread(self.outage.end)
        self.report.injected.append(
            ("database unreachable (s)", f"{self.plan.database_down_seconds:.0f}")
        )

    async def _restart_server(self) -> None:
        await asyncio.to_thread(self.server.restart)

    async def _hostile(self) -> None:
        self.hostile_accepted = await send_hostile(
            "127.0.0.1", self.intake_port, self.settings.intake_address, self.run_id
        )
        self.report.injected.append(
            (
                f"hostile emails (of {len(hostile_mail('', ''))}) accepted by the intake",
                str(len(self.hostile_accepted)),
            )
        )
        if not self.hostile_accepted:
            self.report.problems.append("the intake accepted none of the hostile mail")

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        await asyncio.to_thread(self.prepare)
        await asyncio.to_thread(self.server.start)
        self.mail.up()
        self.worker.start()
        if self.plan.hostile_mail:
            self.intake.start()
        try:
            # The server was just started: connect waits for its frontend to be healthy.
            client = await connect(self.settings)
            cases = await self._file_all(client)
            actors, contacts = self.actors()
            driver = Driver(client, self.services.sessions, actors, contacts)
            faults = asyncio.gather(self._kill_workers(), self._outages())
            await self._drive_all(driver, cases)
            self.done.set()
            await faults
            self.report.injected[:0] = [
                ("disputes in flight", str(len(cases))),
                ("worker killed with SIGKILL", str(self.worker.kills)),
                ("Temporal dev server killed and restarted", str(self.server.restarts)),
            ]
            if not self.worker.alive():
                self.worker.start()
            await self._check(client, cases, driver)
        finally:
            self.done.set()
            self.worker.stop()
            self.intake.stop()
            self.mail.down()
            self.server.kill()
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _file_all(self, client: Client) -> list[Case]:
        filing = build_filing(self.services, client)
        contacts = {p.id: p.contacts[0].email for p in DEMO.partners}
        semaphore = asyncio.Semaphore(self.plan.concurrency)

        async def one(i: int) -> Case:
            async with semaphore:
                sub = submission(i, self.run_id, contacts)
                result = await filing.file(sub)
                return Case(
                    index=i,
                    number=result.number,
                    path=DisputePath.of(i),
                    claimant=sub.claimant_id,
                    respondent=sub.respondent_ids[0],
                    deal_ref=sub.contested_objects[0].ref,
                )

        return list(await asyncio.gather(*(one(i) for i in range(self.plan.disputes))))

    async def _drive_all(self, driver: Driver, cases: list[Case]) -> None:
        semaphore = asyncio.Semaphore(self.plan.concurrency)

        async def one(case: Case) -> None:
            async with semaphore:
                try:
                    await driver.drive(case, self.plan.patience_seconds)
                except Refused as refused:
                    self.report.problems.append(str(refused))

        await asyncio.gather(*(one(case) for case in cases))

    # --- what survived ------------------------------------------------------------------------

    async def _wait_for_quiet(self) -> tuple[int, int]:
        """Wait for the outbox and the intake to empty; returns what is still pending in each."""
        deadline = time.monotonic() + self.plan.drain_seconds
        while True:
            with self.services.sessions.read() as session:
                outbox = session.exec(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(col(OutboxMessage.state) != OutboxState.SENT)
                ).one()
                intake = session.exec(
                    select(func.count())
                    .select_from(InboundMessage)
                    .where(col(InboundMessage.state).in_(UNFINISHED_INTAKE))
                ).one()
            if (outbox == 0 and intake == 0) or time.monotonic() > deadline:
                return outbox, intake
            await asyncio.sleep(1)

    def _trace(self, message_id: str, to: str) -> list[str]:
        """What a duplicate needs for its diagnosis, on a CI run whose files are gone: when each
        copy was delivered, the kills and outages around them (seconds from the first delivery of
        the run), the outbox row, and the worker's log lines about that row."""
        recording = self.mail.recording
        with recording.lock:
            origin = min((at for *_, at in recording.deliveries), default=0.0)
            copies = [
                at for mid, rcpt, _, at in recording.deliveries if (mid, rcpt) == (message_id, to)
            ]
        lines = [
            "delivered at " + ", ".join(f"{at - origin:.2f}" for at in copies),
            "worker killed at " + ", ".join(f"{at - origin:.2f}" for at in self.worker.killed_at),
            "database away "
            + ", ".join(f"{a - origin:.2f}-{b - origin:.2f}" for a, b in self.outage.spans),
        ]
        with self.services.sessions.read() as session:
            row = session.exec(
                select(OutboxMessage).where(OutboxMessage.message_id == message_id)
            ).first()
        if row is None:
            return [*lines, "no outbox row has this Message-ID"]
        lines.append(f"outbox row {row.id}: {row.state.value}, {row.attempts} attempts")
        mark = f"outbox message {row.id}:"
        log = self.worker.log.read_text(errors="replace") if self.worker.log.exists() else ""
        lines += [line.strip()[:300] for line in log.splitlines() if mark in line][:10]
        return lines

    async def _check(self, client: Client, cases: list[Case], driver: Driver) -> None:
        ended = 0
        lost = 0
        for case in cases:
            handle = client.get_workflow_handle_for(DisputeWorkflow.run, case.number)
            try:
                outcome = await asyncio.wait_for(handle.result(), self.plan.patience_seconds)
            except Exception as failure:
                lost += 1
                self.report.problems.append(f"{case.number}: did not finish: {failure!r}")
                continue
            stage, expected = case.path.end
            if outcome.stage is stage and outcome.outcome == expected:
                ended += 1
            else:
                self.report.problems.append(
                    f"{case.number} ({case.path.value}): ended {outcome.stage.value}/"
                    f"{outcome.outcome}, expected {stage.value}/{expected}"
                )
        outbox, intake = await self._wait_for_quiet()
        with self.services.sessions.read() as session:
            stored = session.exec(select(func.count()).select_from(InboundMessage)).one()
            failed = session.exec(
                select(func.count())
                .select_from(InboundMessage)
                .where(col(InboundMessage.state) == InboundState.FAILED)
            ).one()
            numbers = [c.number for c in cases]
            splits = Counter(
                session.exec(
                    select(LedgerCommissionSplit.dispute_number).where(
                        col(LedgerCommissionSplit.dispute_number).in_(numbers)
                    )
                ).all()
            )
            stale = 0
            broken = 0
            for case in cases:
                row = session.get(Dispute, case.number)
                if row is None or row.stage is not case.path.end[0]:
                    stale += 1
                    self.report.problems.append(
                        f"{case.number}: read model shows {row.stage.value if row else 'nothing'}"
                    )
                events = session.exec(
                    select(DisputeEvent)
                    .where(DisputeEvent.dispute_number == case.number)
                    .order_by(col(DisputeEvent.seq))
                ).all()
                if first_broken_link(events) is not None:
                    broken += 1
                    self.report.problems.append(f"{case.number}: audit chain broken")
        twice = sum(max(0, splits[c.number] - c.path.remedies_applied) for c in cases)
        missing_remedies = sum(max(0, c.path.remedies_applied - splits[c.number]) for c in cases)
        resent, duplicates = self.mail.recording.cut_by_kill(
            self.worker.killed_at, CUT_WINDOW, self.outage.spans
        )
        for (message_id, to), n in list(duplicates.items())[:10]:
            self.report.problems.append(f"email {message_id} to {to} delivered {n + 1} times")
            self.report.problems.extend(f"    {line}" for line in self._trace(message_id, to))
        self.report.found = [
            ("disputes at their correct end", len(cases), ended),
            ("disputes lost (never finished)", 0, lost),
            ("read model out of step with the workflow", 0, stale),
            ("audit chains broken", 0, broken),
            ("emails delivered twice", 0, sum(duplicates.values())),
            ("remedies applied twice", 0, twice),
            ("remedies missing", 0, missing_remedies),
            ("outbox messages stuck (not sent)", 0, outbox),
            ("intake messages stuck (never processed)", 0, intake),
            (
                "hostile emails accepted but not stored",
                0,
                max(0, len(self.hostile_accepted) - stored),
            ),
            # Only the header bomb may end failed (over its parsing budget), shown to the admins.
            ("intake messages failed", int(HEADER_BOMB in self.hostile_accepted), failed),
        ]
        self.report.injected.append(("engine calls retried by the people", str(driver.retries)))
        self.report.injected.append(
            ("emails sent again after a kill cut their send", str(sum(resent.values())))
        )


async def run_chaos(plan: Plan, keep: bool = False) -> Report:
    work = Path(tempfile.mkdtemp(prefix="accord-chaos-"))
    try:
        return await ChaosRun(plan, work).run()
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept the run's folder: {work}")


__all__ = ["Plan", "Report", "hostile_mail", "run_chaos"]
