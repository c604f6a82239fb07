"""Probes of issue 16 (items 3, 5, 6, 7) from outside, as a hostile verifier: the work queue's
query strings as a client may send them (raw, badly encoded, repeated, huge), `accord partners`
and `accord people` over a directory holding hostile names, and how `accord run` stops."""

from __future__ import annotations

import json
import os
import signal
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accord.platform.db import SessionFactory
from models.enums import Role, TaskKind, TaskState
from models.tables import Task
from tests.activities.test_activities import dispute_row
from tests.cli.test_cli_reference import invoke
from tests.conftest import Stack
from tests.web.test_web_queue import SAM, offered_to_a_mediator, queue_sessions
from tests.web_harness import api, make_app, signed_in, token_for

# Raw query strings, sent as written (not encoded again by the client), and the parameter each
# must be refused naming.
HOSTILE_QUERIES = (
    ("sort=%ff", "sort"),
    ("sort=%C0%80", "sort"),
    ("sort=due%00", "sort"),
    ("sort=%F0%9D%94%A1ue", "sort"),
    ("sort=DUE", "sort"),
    ("sort=due%27%3B%20DROP%20TABLE%20task%3B--", "sort"),
    ("sort=" + "a" * 60_000, "sort"),
    ("order=-1", "order"),
    ("page=99999999999999999999", "page"),
    ("page=-1", "page"),
    ("order=DESC", "order"),
    ("order=desc&order=desc", "order"),
    ("category=99999999999999999999999", "category"),
    ("category=-1", "category"),
    ("category=pricing%20OR%201%3D1", "category"),
    ("stage=%E2%80%AEtriage", "stage"),
    ("sla=1e309", "sla"),
    ("kind=mediate%0Aaccept_assignment", "kind"),
    ("category=" + "&category=".join(["nope"] * 1_000), "category"),
)


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    """The queues' disputes, tasks and seats (as tests/web/test_web_queue.py)."""
    return queue_sessions(database_url)


async def test_hostile_query_strings_are_a_400_naming_the_parameter_never_a_500(
    stack: Stack,
) -> None:
    app = make_app(stack)
    number, mediator = await offered_to_a_mediator(stack)
    browser = await signed_in(app, mediator)
    try:
        for query, name in HOSTILE_QUERIES:
            page = await browser.get(f"/inbox?{query}")
            assert page.status_code == 400, (query[:80], page.status_code)
            assert f"<strong>{name}</strong>" in page.text or f"{name}:" in page.text, query[:80]
            assert "a" * 1000 not in page.text
    finally:
        await browser.close()
    async with api(app, token_for(stack, mediator)) as client:
        for query, name in HOSTILE_QUERIES:
            answer = await client.get(f"/api/tasks?{query}")
            assert answer.status_code == 400, (query[:80], answer.status_code, answer.text[:300])
            assert [e["field"] for e in answer.json()["errors"]] == [name], query[:80]
            assert len(answer.text) < 5_000
        # Parameters the queue does not know (numbers included) are ignored, as documented.
        for query in ("limit=-1", "offset=99999999999999999999", "%00=x", "=due", "sort"):
            answer = await client.get(f"/api/tasks?{query}")
            assert answer.status_code == 200, (query, answer.status_code, answer.text[:300])
            assert [t["dispute_number"] for t in answer.json()] == [number]


pytestmark = pytest.mark.timeout(300)


# --- accord partners / accord people over hostile names -----------------------------------------

LONG_NAME = ("Very Long Partner Name Incorporated " * 6).strip()[:200]
HOSTILE_PARTNERS = [
    # A name as long as the directory takes (200), and a contact's as long.
    ("longco", LONG_NAME, "L" * 200),
    # A right-to-left override: everything after it on the line is shown reversed.
    ("rlo", "Evil \u202eCorp\u202c Ltd", "Rita \u202eOL"),
    # Line and paragraph separators: a second line forged inside one row.
    ("sep", "Line\u2028gold     NA-East  99\u2029forged", "Sep \u2028Arator"),
    # Characters two columns wide, and zero-width ones: the columns must still line up.
    ("wide", "株式会社テスト商事株式会社テスト商事株式会社", "山田太郎"),
    ("zw", "Zero\u200bWidth\u200b\u200b\u200b\u200b\u200b\u200b\u2066Isolate\u2069", "Z"),
    ("comb", "Co\u0301\u0301\u0301mbining Marks", "C"),
]
HOSTILE_PEOPLE = [
    ("p.rlo", "Mallory \u202eroiR\u202c", "vendor"),
    ("p.long", "X" * 200, "longco"),
    ("p.wide", "山田花子山田花子山田花子山田花子山田花子山田花子山田花子", "wide"),
]
UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def columns(line: str) -> int:
    """How many terminal columns a line takes (wide characters two, combining marks none)."""
    import unicodedata

    width = 0
    for char in line:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


@pytest.fixture
def hostile_directory(tmp_path: Path) -> str:
    from accord.directory.records import import_directory, parse_directory
    from accord.platform.db import SessionFactory, make_engine
    from accord.platform.schema import upgrade

    url = f"sqlite:///{tmp_path / 'accord.db'}"
    upgrade(url)
    directory = {
        "partners": [
            {
                "id": pid,
                "name": name,
                "tier": "gold",
                "regions": ["NA-East", "EU\u2028West"],
                "calendar": "US-NY",
                "contacts": [{"name": contact, "email": f"c@{pid}.example"}],
            }
            for pid, name, contact in HOSTILE_PARTNERS
        ],
        "people": [
            {
                "id": pid,
                "name": name,
                "email": f"{pid}@vendor.example",
                "role": "mediator",
                "calendar": "US-NY",
                "organisation": organisation,
            }
            for pid, name, organisation in HOSTILE_PEOPLE
        ],
    }
    factory = SessionFactory(make_engine(url))
    with factory.begin() as session:
        import_directory(session, parse_directory(json.dumps(directory)))
    return url


def readable(out: str, ids: list[str]) -> None:
    lines = out.split("\n")
    wide = [line for line in lines if columns(line) > 80]
    assert wide == [], f"{len(wide)} lines wider than 80 columns, e.g. {wide[0]!r}"
    unseen = sorted(
        {f"U+{ord(c):04X}" for c in out if unicodedata.category(c) in UNSEEN} - {"U+000A"}
    )
    assert unseen == [], f"invisible or line-moving characters printed as they are: {unseen}"
    # Every id starts a line of its own, once: no name pushed a row's start elsewhere.
    for pid in ids:
        assert len([line for line in lines if line.startswith(f"{pid} ")]) == 1, (pid, out)


def test_hostile_names_keep_the_partners_and_people_tables_readable(
    hostile_directory: str,
) -> None:
    """A 200-character name made every row of `accord partners` 200 columns wide (the last
    column wrapped alone, far to the right); a right-to-left override, a line separator or a
    zero-width character in a name went to the terminal as it was."""
    out = invoke("partners", DATABASE_URL=hostile_directory)
    readable(out, [pid for pid, _, _ in HOSTILE_PARTNERS])
    out = invoke("partners", "--contacts", DATABASE_URL=hostile_directory)
    readable(out.split("Contacts (they act with")[0], [pid for pid, _, _ in HOSTILE_PARTNERS])
    readable(out, [])
    out = invoke("people", DATABASE_URL=hostile_directory)
    readable(out, [pid for pid, _, _ in HOSTILE_PEOPLE])
    # What was hidden is shown, so that an admin sees it and can mend the directory.
    assert "\\u202e" in out
    # The names are all there, wrapped within their column, not cut.
    assert out.count("X") == 200
    # --json keeps them exactly as stored.
    rows = json.loads(invoke("people", "--json", DATABASE_URL=hostile_directory))
    assert {r["id"]: r["name"] for r in rows}["p.rlo"] == "Mallory \u202eroiR\u202c"


# --- the SLA state on business time --------------------------------------------------------------

FRIDAY_4PM_NEW_YORK = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def _deadline(calendar: Any, start: datetime, days: int, purpose: str) -> Any:
    from models.payloads import Deadline, WarningPoint

    due, _ = calendar.add_business_days(start, days)
    return Deadline(
        purpose=purpose,
        calendar=calendar.name,
        starts_at=start,
        due_at=due,
        business_days=days,
        warnings=tuple(
            WarningPoint(fraction=f, at=calendar.point_at_fraction(start, due, f))
            for f in (0.5, 0.8)
        ),
        explanation=f"{days} business days",
    )


def test_the_sla_state_is_on_business_time_across_a_weekend_and_after_an_extension(
    database_url: str,
) -> None:
    """The workflow warns the owner of a deadline at 50 % and 80 % of its *business* time (a
    weekend or a holiday does not count); the queue called a task 'warned' at 50 % and 80 % of
    the wall-clock time between its opening and its deadline. Offered on a Friday at 4 pm in
    New York, 2 business days (due Tuesday at close): the queue said 'warned: half the time
    used' on Sunday, with one working hour of seventeen gone, and 'warned: 80%' at Tuesday's
    opening, with ten hours of seventeen gone."""
    from accord.platform.db import SessionFactory, make_engine
    from accord.playbooks.calendar import BusinessCalendar
    from accord.playbooks.library import PlaybookLibrary
    from activities.records import RecordActivities
    from models.enums import AssignmentState, DisputeStage, Role, TaskKind
    from models.payloads import Actor, EventRecord, TaskOpen
    from models.tables import Assignment, Dispute, DisputeParty
    from tests.conftest import REPO_ROOT, seed
    from web.queue import Sla, work_queue

    playbook = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").all()[-1]
    new_york = BusinessCalendar("US-NY", playbook.calendars["US-NY"])
    number, start = "DSP-2026-000001", FRIDAY_4PM_NEW_YORK
    offered = _deadline(new_york, start, 2, "acceptance")
    assert offered.due_at == datetime(2026, 12, 8, 22, 0, tzinfo=UTC)  # Tuesday 5 pm

    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    system = Actor(id="system", role=Role.SYSTEM, name="Accord")
    with factory.begin() as session:
        session.add(
            dispute_row(
                number,
                amount="500",
                summary="A conflict",
                facts="Facts.",
                desired_remedy="Remedy.",
                playbook_version=playbook.version,
                filed_at=start,
                updated_at=start,
            )
        )
        session.flush()
        session.add(DisputeParty(dispute_number=number, partner_id="northwind", side="claimant"))
        session.add(DisputeParty(dispute_number=number, partner_id="contoso", side="respondent"))
        session.add(
            Assignment(
                dispute_number=number,
                round=1,
                person_id="sam.okafor",
                state=AssignmentState.OFFERED,
                assigned_at=start,
            )
        )
        session.flush()

    def project(step: int, action: str, deadline: Any, at: datetime, **more: Any) -> None:
        record = EventRecord(
            number=number,
            step=step,
            at=at,
            actor=system,
            action=action,
            content={},
            stage=DisputeStage.TRIAGE,
            deadline=deadline,
            **more,
        )
        with factory.begin() as session:
            dispute = session.get(Dispute, number)
            assert dispute is not None
            RecordActivities._project(session, dispute.stage, record)

    task = TaskOpen(
        key=f"{number}:accept-1",
        number=number,
        kind=TaskKind.ACCEPT_ASSIGNMENT,
        title=f"accept the assignment: {number}",
        assignee_id="sam.okafor",
        assignee_role=Role.MEDIATOR,
        due_at=offered.due_at,
        at=start,
    )
    project(1, "mediator_offered", offered, start, open_tasks=(task,))

    def sla(now: datetime) -> Sla:
        with factory.read() as session:
            (item,) = work_queue(session, SAM, now=now)
        return item.sla

    at = lambda d, h, m=0: datetime(2026, 12, d, h, m, tzinfo=UTC)  # noqa: E731
    assert sla(at(6, 23)) is Sla.ON_TIME  # Sunday: 1 working hour of 17 gone
    assert sla(at(7, 20)) is Sla.ON_TIME  # Monday 3 pm: 7 of 17
    assert sla(at(7, 21, 31)) is Sla.WARNED_50  # Monday 4:31 pm: the workflow's 50 % warning
    assert sla(at(8, 15)) is Sla.WARNED_50  # Tuesday 10 am: 10 of 17
    assert sla(at(8, 18, 37)) is Sla.WARNED_80  # Tuesday 1:37 pm: its 80 % warning
    assert sla(at(8, 22)) is Sla.OVERDUE

    # An admin extends the deadline by 5 business days on Tuesday at 2 pm: the warnings not
    # sent yet move with it (the workflow's Deadline says where), and the queue follows them.
    extended = _deadline(new_york, at(8, 19), 5, "acceptance")
    project(2, "deadline_extended", extended, at(8, 19))
    assert sla(at(8, 20)) is Sla.ON_TIME
    assert sla(extended.warnings[1].at + timedelta(minutes=1)) is Sla.WARNED_80


# --- Ctrl-C while `make run` is starting ---------------------------------------------------------


def console_script_module() -> str:
    """The module the `accord` console script (what `make run` runs) starts in."""
    import tomllib

    from tests.conftest import REPO_ROOT

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return str(scripts["accord"]).split(":")[0]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("after", [0.3, 1.0])
def test_ctrl_c_while_make_run_starts_says_one_line_not_a_traceback(
    run_env: tuple[dict[str, str], int, Path],
    after: float,
) -> None:
    """Ctrl-C in the first seconds of `make run` (the CLI's modules still loading) printed a
    KeyboardInterrupt traceback of 40 to 60 lines, through whichever import of SQLAlchemy or
    pydantic it interrupted."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO_ROOT
    from tests.processes import dev_servers_of, wait_until

    env, _, state = run_env
    process = subprocess.Popen(
        [sys.executable, "-m", console_script_module(), "run"],
        env=env,
        cwd=REPO_ROOT,
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(after)
    os.killpg(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert process.returncode in (0, 130), (process.returncode, out)
    wait_until(lambda: not dev_servers_of(state), "a dev server outlived Ctrl-C at start-up")


INTERRUPTED_INSIDE_A_FINALIZER = """
import importlib.abc, signal, sys

class Interrupt(importlib.abc.MetaPathFinder):
    # SIGINT arrives while the CLI's import of SQLAlchemy runs a finalizer (a __del__, or
    # importlib's own module-lock weakref callback): Python prints "Exception ignored" for a
    # KeyboardInterrupt raised there and goes on, as if Ctrl-C had never been pressed.
    def find_spec(self, name, path, target=None):
        if name == LOADING:
            sys.meta_path.remove(self)

            class Dying:
                def __del__(self):
                    signal.raise_signal(signal.SIGINT)

            Dying()
        return None

LOADING = sys.argv[1]
sys.meta_path.insert(0, Interrupt())
sys.argv = ["accord", *sys.argv[2:]]
from accord.cli.console import main
main()
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("loading", "command"),
    [("sqlalchemy", "playbook"), ("accord.runtime.embedded", "run")],
    ids=["the CLI", "make run's stack"],
)
def test_ctrl_c_landing_in_a_finalizer_while_modules_load_still_stops_the_command(
    run_env: tuple[dict[str, str], int, Path], loading: str, command: str
) -> None:
    """CI of f16a997: Ctrl-C 0.3 s into `make run` landed in importlib's module-lock callback;
    the KeyboardInterrupt was "ignored" there, the run went on starting, and it was still
    running two minutes later. Deterministic here: the signal is raised inside a finalizer
    while the console script loads the CLI, or while `accord run` loads the stack."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    from tests.processes import dev_servers_of

    env, _, state = run_env
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_INSIDE_A_FINALIZER, loading, command],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 130, (done.returncode, out)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "Playbook" not in out and "Starting Accord" not in out, "it went on as if not stopped"
    assert "accord: stopped while starting (Ctrl-C); nothing was done" in out, out
    assert not dev_servers_of(state)


# --- the README's `temporal workflow list` with the address in .env ------------------------------


async def test_the_readme_temporal_workflow_list_honours_an_address_set_in_dot_env(
    tmp_path: Path,
) -> None:
    """Settings come "from the environment (or `.env`)" (README), but the README's command read
    the address from the shell alone (`${ACCORD_TEMPORAL_ADDRESS:-127.0.0.1:7233}`): with the
    address in `.env`, as docs/operations.md sets settings up, it asked 127.0.0.1:7233."""
    import re
    import shlex
    import subprocess
    import sys

    from temporalio.testing import WorkflowEnvironment

    from models import search_attributes
    from tests.conftest import CONVERTER, REPO_ROOT
    from tests.processes import deployed_environment

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^\.venv/bin/temporal workflow list(?:.*\\\n)*.*$", readme, re.M)
    assert match, "the README has no `.venv/bin/temporal workflow list` example"
    accord = f"{shlex.quote(sys.executable)} -m accord.cli.console"
    command = match.group(0).split("  #")[0].replace(".venv/bin/accord", accord)
    environment = deployed_environment(PYTHONPATH=str(REPO_ROOT))
    for name in ("ACCORD_TEMPORAL_ADDRESS", "ACCORD_TEMPORAL_NAMESPACE"):
        environment.pop(name, None)
    (tmp_path / ".env").write_text(
        "ACCORD_TEMPORAL_ADDRESS=127.0.0.1:1\nACCORD_TEMPORAL_NAMESPACE=accord-dot-env\n"
    )

    # What the command passes, without asking any server: a stand-in prints its arguments.
    stand_in = tmp_path / "temporal-args"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stand_in.chmod(0o755)
    said = subprocess.run(
        ["bash", "-c", command.replace(".venv/bin/temporal", str(stand_in), 1)],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert said.returncode == 0, said.stderr
    args = said.stdout.splitlines()
    assert args[args.index("--address") + 1] == "127.0.0.1:1", args
    assert args[args.index("--namespace") + 1] == "accord-dot-env", args

    # And against a server: the namespace of `.env` on the address of `.env`.
    env = await WorkflowEnvironment.start_local(
        namespace="accord-dot-env",
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=CONVERTER,
        dev_server_extra_args=["--log-level", "error", *search_attributes.DEV_SERVER_FLAGS],
    )
    try:
        address = env.client.service_client.config.target_host
        (tmp_path / ".env").write_text(
            f"ACCORD_TEMPORAL_ADDRESS={address}\nACCORD_TEMPORAL_NAMESPACE=accord-dot-env\n"
        )
        temporal = shlex.quote(str(Path(sys.executable).parent / "temporal"))
        done = subprocess.run(
            ["bash", "-c", command.replace(".venv/bin/temporal", temporal, 1)],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    finally:
        await env.shutdown()


# --- accord show: a text cannot forge lines of its own ------------------------------------------

FORGED = "70/30 split\r\n  offer        offer-9 open: Northwind pays everything\u202e"


async def test_offer_terms_cannot_forge_a_line_of_accord_show(stack: Stack) -> None:
    """Offer terms are prose (line breaks kept); `accord show` printed them as they were, so a
    line break in them made a line of its own that read as another offer, and a right-to-left
    override reversed the rest of the terminal line."""
    from tests.cli.test_cli import accord
    from tests.workflows.test_dispute_paths import in_mediation

    number = (await stack.file()).number
    mediator = await in_mediation(stack, number)
    remedy = '{"kind":"written_warning","partner_id":"contoso","text":"Register first."}'
    code, out = await accord(
        stack, "propose", number, "--as", mediator, "--terms", FORGED, "--remedy", remedy
    )
    assert code == 0, out
    await stack.wait_for_event(number, "settlement_proposed")
    for _ in range(100):
        code, out = await accord(stack, "show", number)
        if "offer-1" in out:
            break
    assert code == 0, out
    offers = [line for line in out.splitlines() if line.lstrip().startswith("offer ")]
    assert len(offers) == 1, out
    assert "\r" not in out and "\u202e" not in out, out
    assert "Northwind pays everything" in out  # still shown, on a continuation line


# --- more tasks than a page holds ----------------------------------------------------------------


async def test_the_api_says_when_the_queue_goes_on_past_its_first_page(stack: Stack) -> None:
    """`GET /api/tasks` answered the first 200 tasks and nothing else: no sign that more
    existed and no way to ask for them (the inbox page said so; the API, which scripts read,
    did not)."""
    from web.queue import QUEUE_LIMIT

    app = make_app(stack)
    number = (await stack.file()).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    await stack.wait_for_event(number, "mediator_offered")
    mediator = state.candidate_mediator_id
    assert mediator is not None
    made = datetime.now(UTC)
    with stack.sessions.begin() as session:
        for n in range(QUEUE_LIMIT + 4):
            session.add(
                Task(
                    key=f"{number}:extra-{n:03d}",
                    dispute_number=number,
                    kind=TaskKind.ACCEPT_ASSIGNMENT,
                    title="accept",
                    assignee_id=mediator,
                    assignee_role=Role.MEDIATOR,
                    due_at=made + timedelta(days=30, minutes=n),
                    state=TaskState.OPEN,
                    created_at=made,
                )
            )
    async with api(app, token_for(stack, f"{mediator}@vendor.example")) as client:
        first = await client.get("/api/tasks", params={"sort": "due"})
        assert first.status_code == 200
        assert len(first.json()) == QUEUE_LIMIT
        assert 'rel="next"' in first.headers.get("link", ""), dict(first.headers)
        second = await client.get("/api/tasks", params={"sort": "due", "page": "2"})
        assert second.status_code == 200, second.text
        keys = [t["key"] for t in first.json()] + [t["key"] for t in second.json()]
        assert len(keys) == len(set(keys)) == QUEUE_LIMIT + 5  # the offer's own task too
        assert 'rel="next"' not in second.headers.get("link", "")
        for page in ("0", "-1", "1.5", "99999999999999999999", "\uff12", "2\x00", "two"):
            refused = await client.get("/api/tasks", params={"page": page})
            assert refused.status_code == 400, (page, refused.status_code)
            assert [e["field"] for e in refused.json()["errors"]] == ["page"]
    browser = await signed_in(app, f"{mediator}@vendor.example")
    try:
        inbox = await browser.get("/inbox")
        assert "page=2" in inbox.text
        assert (await browser.get("/inbox?page=2")).status_code == 200
        assert (await browser.get("/inbox?page=-1")).status_code == 400
    finally:
        await browser.close()


# --- a party's response to an offer runs on the mediation clock ---------------------------------


def test_a_response_to_an_offer_counts_down_to_the_mediation_deadline_that_stands(
    sessions: Any,
) -> None:
    """An offer is open until mediation ends: the party's task to respond opens with the
    mediation deadline as it stood. Extended by an admin, or moved after a paused clock, the
    mediation deadline moved, but the party's queue kept counting down to the old one (and
    called the task overdue while the mediation ran on); while a party owes information the
    mediation clock stands still, yet the party's task was counted down all the same."""
    from models.tables import Dispute
    from tests.web.test_web_queue import CONTOSO, NOW, hours, task
    from web.queue import Sla, work_queue

    extended = NOW + hours(200)
    with sessions.begin() as session:
        mediation = session.get(Dispute, "DSP-2026-000001")
        mediation.stage_deadline = extended
        session.add(mediation)
        # Dispute 3 waits on Contoso's answer (the clock is paused); an offer made before.
        session.add(
            task(
                "offer-1-contoso",
                "DSP-2026-000003",
                TaskKind.RESPOND_TO_OFFER,
                "contoso",
                due=NOW + hours(1),
                role=Role.PARTNER,
            )
        )
    with sessions.read() as session:
        rows = {
            (i.task.dispute_number[-1], i.task.kind): i
            for i in work_queue(session, CONTOSO, now=NOW + hours(50))
        }
    offer = rows[("1", TaskKind.RESPOND_TO_OFFER)]
    assert (offer.due_at, offer.sla) == (extended, Sla.ON_TIME)
    paused = rows[("3", TaskKind.RESPOND_TO_OFFER)]
    assert (paused.due_at, paused.sla) == (None, Sla.NONE)


# --- a dev server that cannot start ---------------------------------------------------------------


def _run_to_its_end(env: dict[str, str]) -> tuple[int | None, str, float]:
    import subprocess
    import time

    from tests.processes import spawn_run

    started = time.monotonic()
    process = spawn_run(env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = process.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        return None, out, time.monotonic() - started
    return process.returncode, out, time.monotonic() - started


@pytest.mark.timeout(300)
def test_a_temporal_ui_port_taken_stops_the_run_with_what_to_do(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    """The dev server refuses to start when its UI port is taken ("can't set UI port ...:
    address already in use", in state/temporal.log); `accord run` said "Starting Accord
    (embedded)..." and nothing else for 60 s, then that the server "did not start listening"."""
    import socket

    from tests.processes import dev_servers_of

    env, _, state = run_env
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["ACCORD_TEMPORAL_UI_PORT"])))
        taken.listen(1)
        code, out, took = _run_to_its_end(env)
    assert code not in (None, 0), (code, out)
    assert "ACCORD_TEMPORAL_UI_PORT" in out, out
    assert took < 30, took
    assert not dev_servers_of(state)


@pytest.mark.timeout(300)
def test_a_dev_server_that_stops_at_start_is_said_at_once_with_its_reason(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    """A dev server that ends as it starts (here: its database file is not a database) was
    waited for 60 s in silence, then said not to listen; its own reason was in
    state/temporal.log only."""
    from tests.processes import dev_servers_of

    env, _, state = run_env
    state.mkdir(parents=True)
    (state / "temporal.db").write_bytes(b"this is not a SQLite database\n" * 100)
    code, out, took = _run_to_its_end(env)
    assert code not in (None, 0), (code, out)
    assert "temporal.log" in out and "stopped" in out, out
    assert took < 30, took
    assert not dev_servers_of(state)
