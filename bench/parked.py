"""Parked-disputes benchmark: N open disputes waiting on their timers on one machine, the memory
of the worker and of the Temporal server, and how late timers fire.

    make bench-parked                     # N=50,000
    python -m bench.parked --disputes 2000 --probes 100
    python -m bench.parked --disputes 2000 --cache 200   # ACCORD_WORKER_MAX_CACHED_WORKFLOWS

A real dev server (SQLite file, WAL) and a real worker in its own process (`python worker.py`,
so its RSS is the worker's alone). The N disputes are filed through the filing service directly
(the product's filing path without HTTP: the API's cost is bench.web's; 20 at a time), and each
parks once its mediator is offered: an acceptance deadline of business days, with warnings at
50 % and 80 %, all timers. Their RSS is read once every one of them is parked.

Timer lateness needs timers that fall due during the run, which business days never do. So the
worker is restarted (every parked dispute leaves its cache, as after a deploy) with each mediator
on a calendar of their own, whose working day starts a minute or so from now (a fixed-offset
time zone written for the run) and lasts `--window` seconds; then `--probes` disputes are filed.
Their acceptance timers (50 %, 80 %, the deadline) fire during the run, staggered by mediator,
with the N disputes still parked. Lateness is read from each probe's history: timer due (started
+ its duration) to the workflow task that handled the firing completing; also the server's own
firing delay.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import struct
import subprocess
import sys
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import yaml
from sqlalchemy import func, update
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from accord.application import Services, build_filing
from accord.directory.demo import DEMO
from accord.platform.settings import REPO_ROOT
from bench.common import BenchStack, Goal, Report, add_arguments, cpu_seconds, pct, rss_mb
from bench.lifecycle import submission
from models.enums import OutboxState, TaskKind, TaskState
from models.tables import OutboxMessage, Person, Task

MEDIATORS = [p.id for p in DEMO.people if p.role.value == "mediator"]
COUNTRIES = ("GB", "US", "DE", "FR", "JP", "AU", "BR")


def tzif(offset_seconds: int) -> bytes:
    """A TZif (RFC 8536, version 1) zone with one fixed offset and no transitions."""
    counts = struct.pack(
        ">6l", 0, 0, 0, 0, 1, 4
    )  # ut/std indicators, leaps, transitions, types, chars
    return b"TZif" + b"\0" * 16 + counts + struct.pack(">lBB", offset_seconds, 0, 0) + b"BNC\0"


def offset_for_midnight_at(instant: datetime) -> int:
    """The UTC offset (seconds, within -12 h..+14 h) at which `instant` is local midnight."""
    seconds = instant.hour * 3600 + instant.minute * 60 + instant.second
    offset = (-seconds) % 86_400
    return offset - 86_400 if offset > 14 * 3600 else offset


def quiet_country(days: int = 4) -> str:
    """A holiday calendar with no holiday in the next few days (a probe's working day must not
    be skipped as a holiday)."""
    today = datetime.now(UTC).date()
    window = [today + timedelta(days=d) for d in range(-1, days)]
    for country in COUNTRIES:
        found = holidays.country_holidays(country, years={d.year for d in window})
        if not any(d in found for d in window):
            return country
    raise SystemExit("every candidate holiday calendar has a holiday in the next days")


def day_end(window_seconds: int) -> str:
    """The end of a working day that starts at midnight and lasts `window_seconds`."""
    return (datetime.min + timedelta(seconds=window_seconds)).time().isoformat()


def write_playbook(target: Path, zones: Path, window_seconds: int) -> None:
    """The repository's playbook plus one calendar per mediator (BENCH-k, zone Bench/Pk)."""
    source = yaml.safe_load((REPO_ROOT / "playbooks" / "2026.1.yaml").read_text())
    country = quiet_country()
    for k in range(len(MEDIATORS)):
        source["calendars"][f"BENCH-{k}"] = {
            "time_zone": f"Bench/P{k}",
            "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "working_hours": ["00:00", day_end(window_seconds)],
            "holidays": {"country": country},
        }
        zone = zones / "Bench" / f"P{k}"
        zone.parent.mkdir(parents=True, exist_ok=True)
        if not zone.exists():
            zone.write_bytes(tzif(0))
    target.mkdir(parents=True, exist_ok=True)
    (target / "2026.1.yaml").write_text(yaml.safe_dump(source, sort_keys=False))


def _die_with_parent() -> None:
    """In the worker's process before it runs: SIGTERM when the bench ends, however it ends."""
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class WorkerProcess:
    """`python worker.py` on the bench's settings, in a process of its own."""

    def __init__(self, bench: BenchStack, address: str, zones: Path, cache: int | None) -> None:
        s = bench.settings
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONTZPATH": os.pathsep.join([str(zones), *zoneinfo.TZPATH]),
            "ACCORD_DATABASE_URL": s.resolved_database_url(),
            "ACCORD_STATE_DIR": str(s.state_dir),
            "ACCORD_PLAYBOOK_DIR": str(s.playbook_dir),
            "ACCORD_SMTP_PORT": str(s.smtp_port),
            "ACCORD_TASK_QUEUE": s.task_queue,
            "ACCORD_TEMPORAL_ADDRESS": address,
            "ACCORD_WORKER_HEALTH_PORT": "0",
            "ACCORD_LOG_LEVEL": "WARNING",
        }
        if cache is not None:
            self.env["ACCORD_WORKER_MAX_CACHED_WORKFLOWS"] = str(cache)
        self.log = s.state_dir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0.0

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "worker.py")],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> float:
        value = rss_mb(self.pid)
        self.peak_rss = max(self.peak_rss, value)
        return value

    def check(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text()[-3000:]
            raise SystemExit(f"the worker exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def parked_count(services: Services) -> int:
    """Disputes whose mediator has been offered the case: parked on the acceptance timers."""
    with services.sessions.read() as session:
        return session.exec(
            select(func.count())
            .select_from(Task)
            .where(Task.kind == TaskKind.ACCEPT_ASSIGNMENT, Task.state == TaskState.OPEN)
        ).one()


async def file_all(
    services: Services, client: Client, prefix: str, n: int, concurrency: int, first: int = 0
) -> list[str]:
    contacts = {p.id: p.contacts[0].email for p in DEMO.partners if p.contacts}
    filing = build_filing(services, client)
    semaphore = asyncio.Semaphore(concurrency)
    numbers: list[str] = []

    async def one(i: int) -> None:
        async with semaphore:
            result = await filing.file(submission(i, prefix, {"contacts": contacts}))
            numbers.append(result.number)

    await asyncio.gather(*(one(i) for i in range(first, first + n)))
    return numbers


def mail_pending(services: Services) -> int:
    with services.sessions.read() as session:
        return session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.state == OutboxState.PENDING)
        ).one()


async def until_mail_sent(services: Services, worker: WorkerProcess) -> float:
    """Wait until the worker's relay has sent the mail the filings enqueued; the seconds it took.
    Sending it is work, not holding parked disputes: the idle figures come after it."""
    began = time.perf_counter()
    while (left := await asyncio.to_thread(mail_pending, services)) > 0:
        worker.check()
        print(f"  {left:,} emails still to send", file=sys.stderr, end="\r")
        await asyncio.sleep(1)
    print(file=sys.stderr)
    return time.perf_counter() - began


async def until_parked(services: Services, worker: WorkerProcess, total: int) -> None:
    last = -1
    while True:
        worker.check()
        worker.rss()
        count = await asyncio.to_thread(parked_count, services)
        if count != last:
            print(f"  {count:,} of {total:,} parked", file=sys.stderr, end="\r")
            last = count
        if count >= total:
            print(file=sys.stderr)
            return
        await asyncio.sleep(1)


async def lateness(client: Client, numbers: list[str], horizon: datetime) -> dict[str, Any]:
    """Timers of the probes due before `horizon`: fired or not, and how late."""
    handled: list[float] = []
    server: list[float] = []
    due_count = 0
    for number in numbers:
        history = await client.get_workflow_handle(number).fetch_history()
        events = list(history.events)
        started: dict[str, datetime] = {}
        cancelled: set[str] = set()
        for e in events:
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                a = e.timer_started_event_attributes
                started[a.timer_id] = (
                    e.event_time.ToDatetime(tzinfo=UTC) + a.start_to_fire_timeout.ToTimedelta()
                )
            elif e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
                cancelled.add(e.timer_canceled_event_attributes.timer_id)
        fired: dict[str, int] = {
            e.timer_fired_event_attributes.timer_id: i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
        }
        for timer_id, due in started.items():
            if due > horizon or (timer_id in cancelled and timer_id not in fired):
                continue
            due_count += 1
            if timer_id not in fired:
                continue
            at = fired[timer_id]
            server.append((events[at].event_time.ToDatetime(tzinfo=UTC) - due).total_seconds())
            done = next(
                (
                    e
                    for e in events[at:]
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                ),
                None,
            )
            if done is not None:
                handled.append((done.event_time.ToDatetime(tzinfo=UTC) - due).total_seconds())
    return {"due": due_count, "handled": handled, "server": server}


async def main(args: argparse.Namespace) -> None:
    report = Report("parked", args)
    bench = BenchStack("parked", database_url=args.database_url, task_queue="accord-parked")
    zones = bench.work / "zones"
    playbooks = bench.work / "playbooks"
    write_playbook(playbooks, zones, args.window)
    zoneinfo.reset_tzpath(to=[str(zones), *zoneinfo.TZPATH])
    bench.settings = bench.settings.model_copy(update={"playbook_dir": playbooks})
    services = bench.seed(case_limit=10_000_000)
    env = await bench.temporal(
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"
    )
    report.attach_server()
    server_pid = report.server_pid or 0
    client = env.client
    address = client.service_client.config.target_host
    worker = WorkerProcess(bench, address, zones, args.cache)
    second: WorkerProcess | None = None
    try:
        worker.start()
        cpu_worker0, cpu_server0 = cpu_seconds(worker.pid), cpu_seconds(server_pid)
        began = time.perf_counter()
        # In waves: more disputes on the move at once than the worker's cache holds would
        # measure cache thrashing, not parking.
        for wave in range(0, args.disputes, args.batch):
            size = min(args.batch, args.disputes - wave)
            await file_all(services, client, "DR-PARK", size, args.concurrency, first=wave)
            await until_parked(services, worker, wave + size)
        parked_in = time.perf_counter() - began
        park_worker_cpu = cpu_seconds(worker.pid) - cpu_worker0
        park_server_cpu = cpu_seconds(server_pid) - cpu_server0
        drained = await until_mail_sent(services, worker)
        # Parked and idle: what holding them costs, in memory and in CPU per minute.
        idle0 = (cpu_seconds(worker.pid), cpu_seconds(server_pid))
        await asyncio.sleep(args.idle)
        idle_worker = (cpu_seconds(worker.pid) - idle0[0]) / args.idle * 60
        idle_server = (cpu_seconds(server_pid) - idle0[1]) / args.idle * 60
        worker_rss, server_rss = worker.rss(), rss_mb(server_pid)

        # The probes: a restarted worker, each mediator on a calendar whose day starts soon.
        worker.stop()
        lead = timedelta(seconds=args.lead + args.probes * 0.5)
        first = datetime.now(UTC).replace(microsecond=0) + lead
        step = timedelta(
            seconds=args.stagger if args.stagger is not None else args.window / len(MEDIATORS)
        )
        for k, _ in enumerate(MEDIATORS):
            (zones / "Bench" / f"P{k}").write_bytes(tzif(offset_for_midnight_at(first + k * step)))
        zoneinfo.ZoneInfo.clear_cache()
        with services.sessions.begin() as session:
            for k, mediator in enumerate(MEDIATORS):
                session.execute(
                    update(Person).where(Person.id == mediator).values(calendar=f"BENCH-{k}")
                )
        second = WorkerProcess(bench, address, zones, args.cache)
        second.start()
        probes = await file_all(services, client, "DR-PROBE", args.probes, args.concurrency)
        await until_parked(services, second, args.disputes + args.probes)
        if datetime.now(UTC) >= first:
            report.note(
                "warning: the probes were filed after their working day began; raise --lead"
            )
        horizon = first + (len(MEDIATORS) - 1) * step + timedelta(seconds=args.window)
        # A timer is due a few ms after the instant asked for (it starts when its task completes).
        horizon += timedelta(seconds=3)
        while datetime.now(UTC) < horizon + timedelta(seconds=5):
            second.check()
            second.rss()
            await asyncio.sleep(1)
        late = await lateness(client, probes, horizon)
        second_rss, second_server_rss = second.rss(), rss_mb(server_pid)
    finally:
        worker.stop()
        if second is not None:
            second.stop()
        await env.shutdown()
        bench.stop()

    handled, server = late["handled"], late["server"]
    report.heading(
        f"Parked benchmark — {args.disputes:,} disputes filed through the filing service, "
        f"{args.concurrency} at a time, worker in its own process"
        + (f", max_cached_workflows {args.cache}" if args.cache is not None else "")
    )
    report.note(
        f"filed in waves of {args.batch}, all parked after {parked_in:.0f}s; their mail all"
        f" sent {drained:.0f}s later, before the idle figures"
    )
    report.note(
        f"timers fired: {len(server)} of {late['due']} due during the run "
        f"({args.probes} probes on {len(MEDIATORS)} staggered calendars, {args.window} s day)"
    )
    report.heading("Figures")
    report.figure("disputes filed and parked", args.disputes / parked_in, "disputes/s")
    report.figure(
        f"worker RSS with {args.disputes:,} disputes parked", worker_rss, "MB", Goal(at_most=300)
    )
    report.figure("worker RSS, peak while filing and parking", worker.peak_rss, "MB")
    report.figure(f"Temporal server RSS with {args.disputes:,} parked", server_rss, "MB")
    report.figure(
        "worker CPU per dispute filed and parked",
        park_worker_cpu / args.disputes * 1000,
        "ms",
        digits=0,
    )
    report.figure(
        "server CPU per dispute filed and parked",
        park_server_cpu / args.disputes * 1000,
        "ms",
        digits=0,
    )
    report.figure("worker CPU while parked (idle)", idle_worker, "s/min", digits=2)
    report.figure("server CPU while parked (idle)", idle_server, "s/min", digits=2)
    report.figure("restarted worker RSS after the probes' timers", second_rss, "MB")
    report.figure("Temporal server RSS at the end", second_server_rss, "MB")
    if handled:
        ms = [v * 1000 for v in handled]
        report.figure("timer lateness p50 (due to handled)", pct(ms, 50), "ms", digits=0)
        report.figure(
            "timer lateness p95 (due to handled)", pct(ms, 95), "ms", Goal(at_most=1000), digits=0
        )
        report.figure(
            "timer lateness max (due to handled)", max(ms), "ms", Goal(at_most=1000), digits=0
        )
    if server:
        report.figure(
            "server's firing delay p95", pct([v * 1000 for v in server], 95), "ms", digits=0
        )
    report.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disputes", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="disputes filed per wave, each parked before the next",
    )
    parser.add_argument("--probes", type=int, default=100, help="disputes whose timers fire")
    parser.add_argument(
        "--window",
        type=int,
        default=120,
        choices=range(10, 3600),
        metavar="SECONDS",
        help="seconds of the probes' working day (10-3599)",
    )
    parser.add_argument(
        "--lead", type=float, default=30, help="seconds before the probes' day starts (+0.5 s each)"
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=None,
        help="seconds between the mediators' days (default: the window shared out among them)",
    )
    parser.add_argument("--idle", type=float, default=10, help="seconds measured parked and idle")
    parser.add_argument(
        "--cache",
        type=int,
        default=None,
        help="the worker's max_cached_workflows (default: settings)",
    )
    parser.add_argument("--database-url", default="")
    add_arguments(parser)
    asyncio.run(main(parser.parse_args()))
