"""What every benchmark sets up the same way: a work folder, an SMTP sink for outgoing mail,
Settings over a SQLite file (or a given URL), the demo directory with room for every case,
and a Temporal dev server from the wheel."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from accord.application import Services, build_services
from accord.directory.demo import DEMO
from accord.directory.records import import_directory
from accord.platform.schema import upgrade
from accord.platform.settings import REPO_ROOT, Settings
from accord.platform.temporal import data_converter_for
from models import search_attributes
from models.tables import Person


class Sink:
    """Accepts every outgoing message and keeps none."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A database of its own on the PostgreSQL server of `server_url` (a URL to any database
    there), dropped at the end: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    """A loopback port the system just handed out, free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchStack:
    def __init__(self, name: str, database_url: str = "", task_queue: str | None = None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"accord-{name}-bench-"))
        # A port the system just handed out (a random one in 20000-40000 could be in use: the
        # CI of 07bad65 failed so, on a port in the ephemeral range).
        self.smtp_port = free_port()
        self.sink = Controller(Sink(), hostname="127.0.0.1", port=self.smtp_port)
        self.sink.start()
        self.settings = Settings(
            database_url=database_url or f"sqlite:///{self.work / 'accord.db'}",
            state_dir=self.work,
            playbook_dir=REPO_ROOT / "playbooks",
            smtp_port=self.smtp_port,
            task_queue=task_queue or f"accord-{name}-bench",
        )
        upgrade(self.settings.resolved_database_url())
        self.services: Services | None = None

    def seed(self, case_limit: int) -> Services:
        """The demo directory, every person able to take `case_limit` cases."""
        services = build_services(self.settings)
        with services.sessions.begin() as session:
            import_directory(session, DEMO)
            for person in session.exec(select(Person)).all():
                person.case_limit = case_limit
                session.add(person)
        self.services = services
        return services

    async def temporal(self, *extra: str) -> WorkflowEnvironment:
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            data_converter=data_converter_for(self.settings),
            dev_server_extra_args=[
                "--db-filename",
                str(self.work / "temporal.db"),
                "--log-level",
                "error",
                *search_attributes.DEV_SERVER_FLAGS,
                *extra,
            ],
        )

    def stop(self) -> None:
        """Stop the mail sink and remove the run's work folder (its databases: hundreds of MB
        at full size), once its dev server and worker have stopped. A run ending in an error
        keeps the folder, and says where, for a look at its databases and worker log."""
        self.sink.stop()
        if self.services is not None:
            self.services.sessions.engine.dispose()
        if sys.exc_info()[0] is None:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"the run's work folder is kept: {self.work}", file=sys.stderr)


class WriterHolders:
    """Which of Accord's functions hold SQLite's one writer, and for how long: each write
    transaction of `sessions` is timed from its turn to its commit and put down to the function
    of the repository that began it. The share of the writer alone says that a run waits on it;
    this says on whose transactions. Instruments the one SessionFactory while the block runs."""

    _SKIPPED = (str(REPO_ROOT / "accord" / "db.py"), str(REPO_ROOT / "bench"))

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.held: dict[str, list[float]] = {}

    def __enter__(self) -> WriterHolders:
        begin = self.sessions.begin

        @contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            who = self._caller(sys._getframe(2))
            with begin(*args, **kwargs) as session:
                began = time.perf_counter()
                yield session
            self.held.setdefault(who, []).append(time.perf_counter() - began)

        self.sessions.begin = timed
        return self

    def __exit__(self, *exc: object) -> None:
        del self.sessions.begin  # the class's own again

    def _caller(self, frame: Any) -> str:
        root = str(REPO_ROOT)
        while frame is not None:
            path = frame.f_code.co_filename
            if path.startswith(root) and not path.startswith(self._SKIPPED):
                module = Path(path).relative_to(REPO_ROOT).with_suffix("").as_posix()
                return f"{module.replace('/', '.')}.{frame.f_code.co_qualname}"
            frame = frame.f_back
        return "elsewhere"

    def report(self, report: Report, most: int = 6) -> None:
        """The holders with the most time: each one's share of the writer's time, with its
        turns and mean hold."""
        total = sum(sum(times) for times in self.held.values())
        ranked = sorted(self.held.items(), key=lambda kv: -sum(kv[1]))
        for who, times in ranked[:most] if total else ():
            report.figure(
                f"writer held by {who} ({len(times)} turns, "
                f"{1000 * sum(times) / len(times):.1f} ms each)",
                100 * sum(times) / total,
                "%",
            )


# --- the report every benchmark prints -------------------------------------------------------

RESULTS = REPO_ROOT / "bench" / "results.md"
_TICKS = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg has them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (/proc/<pid>/stat, threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS of /proc/<pid>/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def temporal_server_pid() -> int | None:
    """The dev server this process started (`temporal server start-dev`), if any."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"start-dev" in cmdline and Path(cmdline[0].decode()).name == "temporal":
            return int(entry.name)
    return None


def git_commit() -> str:
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return found.stdout.strip() + ("+changes" if dirty else "")


@dataclass(frozen=True)
class Usage:
    """CPU seconds of the bench process (worker, web app and clients) and of the Temporal
    server over one phase of a benchmark, and its wall time."""

    process: float
    server: float
    wall: float


@dataclass(frozen=True)
class Goal:
    """A target: `at_most` (lower is better) or `at_least` (higher is better)."""

    at_most: float | None = None
    at_least: float | None = None

    def met(self, value: float) -> bool:
        if self.at_most is not None and value > self.at_most:
            return False
        return not (self.at_least is not None and value < self.at_least)

    def text(self, unit: str) -> str:
        bound = self.at_most if self.at_most is not None else self.at_least
        return f"{'<=' if self.at_most is not None else '>='} {bound:g} {unit}".rstrip()


class Report:
    """What every benchmark prints, in one shape: each figure with its goal (PASS/MISS), the
    machine (cores, /proc/loadavg before and after) and the CPU seconds per unit of work of the
    bench process and of the Temporal server. Ends with one `bench <name> finished` line.

    `--results` (see `add_arguments`) also writes the figures into bench/results.md, replacing
    that benchmark's previous section (one section per benchmark and database)."""

    def __init__(
        self, name: str, args: argparse.Namespace | None = None, *, label: str = ""
    ) -> None:
        self.name = name
        self.label = label or name
        self.args = args
        self.load_before = loadavg()
        self.started = datetime.now(UTC)
        self.server_pid: int | None = None
        self.lines: list[str] = []
        self.rows: list[tuple[str, str, str, str]] = []
        self.goals = 0
        self.missed = 0

    def attach_server(self) -> None:
        """Find the dev server this process started, to count its CPU and memory."""
        self.server_pid = temporal_server_pid()

    @contextmanager
    def phase(self) -> Iterator[list[Usage]]:
        """Measure CPU of the bench process and the server over the `with` block: the Usage is
        appended to the yielded list when the block ends."""
        out: list[Usage] = []
        me, server = os.getpid(), self.server_pid
        began = time.perf_counter()
        cpu0 = cpu_seconds(me)
        srv0 = cpu_seconds(server) if server else 0.0
        yield out
        out.append(
            Usage(
                process=cpu_seconds(me) - cpu0,
                server=(cpu_seconds(server) - srv0) if server else 0.0,
                wall=time.perf_counter() - began,
            )
        )

    def heading(self, text: str) -> None:
        self.lines.append(f"\n{text}")
        print(f"\n{text}", flush=True)

    def note(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)

    def figure(
        self, label: str, value: float, unit: str, goal: Goal | None = None, *, digits: int = 1
    ) -> None:
        """One measured figure, with its goal and PASS/MISS when it has one."""
        shown = f"{value:,.{digits}f} {unit}".rstrip()
        verdict = target = ""
        if goal is not None:
            self.goals += 1
            ok = goal.met(value)
            self.missed += 0 if ok else 1
            verdict, target = ("PASS" if ok else "MISS"), f"goal {goal.text(unit)}"
        self.rows.append((label, shown, target, verdict))
        line = f"  {label:<50} {shown:>14}   {target:<24} {verdict}".rstrip()
        self.lines.append(line)
        print(line, flush=True)

    def cpu(self, what: str, usage: Usage, units: int, unit: str, goal: Goal | None = None) -> None:
        """CPU per unit of work: the bench process (worker, web app, clients) and the server."""
        if units <= 0:
            return
        self.figure(
            f"{what}: process CPU per {unit}", usage.process / units * 1000, "ms", goal, digits=0
        )
        if self.server_pid:
            self.figure(
                f"{what}: server CPU per {unit}", usage.server / units * 1000, "ms", digits=0
            )

    def machine(self) -> str:
        return f"{os.cpu_count()} cores, load {self.load_before} before, {loadavg()} after"

    def finish(self) -> None:
        """The machine line and the closing line; --results writes bench/results.md."""
        self.load_after = loadavg()
        self.note(f"machine: {self.machine()}")
        self.note(
            f"bench {self.name} finished: {len(self.rows)} figures, {self.goals} goals, "
            f"{self.goals - self.missed} PASS, {self.missed} MISS"
        )
        if self.args is not None and getattr(self.args, "results", False):
            write_results(self)
            print(f"written to {RESULTS.relative_to(REPO_ROOT)} ({self.label})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark takes."""
    parser.add_argument(
        "--results",
        action="store_true",
        help="also record these figures in bench/results.md (replacing this benchmark's section)",
    )


def command_line(args: argparse.Namespace | None) -> str:
    if args is None:
        return ""
    shown = [
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k != "results" and v not in ("", None, False)
    ]
    return " ".join(shown)


def write_results(report: Report) -> None:
    """Replace (or add) this benchmark's section of bench/results.md."""
    start, end = f"<!-- bench:{report.label} -->", f"<!-- /bench:{report.label} -->"
    table = [
        start,
        f"### {report.label}",
        "",
        f"`python -m bench.{report.name} {command_line(report.args)}`".replace(" `", "`"),
        "",
        f"{report.started:%Y-%m-%d %H:%M} UTC, commit {git_commit()}, {report.machine()}",
        "",
        "| figure | value | goal | |",
        "|---|---:|---|---|",
        *(
            f"| {label} | {value} | {goal} | {verdict} |"
            for label, value, goal, verdict in report.rows
        ),
        end,
    ]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + "\n".join(table) + after
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(table) + "\n"
    RESULTS.write_text(text)
