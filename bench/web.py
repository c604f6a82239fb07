"""Web benchmark: server time of the busiest pages with 100,000 disputes in the database, of
filing through the API (one at a time, and 20 concurrent clients), and of the human-action round
trip (20 people adding notes through the API to 1,000 open disputes), and of a busy dispute's
page and API answer with the worker running and stopped.

    make bench-web
    python -m bench.web --disputes 100000 --requests 200 --filings 200 --concurrency 20
    python -m bench.web --open-disputes 1000 --actions 400 --people 20
    python -m bench.web --think 1  # the same, each person pausing a mean 1 s before each action
    python -m bench.web --database-url postgresql://postgres@127.0.0.1:5432/accord_bench  # an empty database
    python -m bench.web --only search --filings 0  # the pages named, no filings
    python -m bench.web --busy-only  # the busy dispute's page alone (goal p95 <= 100 ms)

The read model is filled directly with SQL (disputes, parties, a timeline of audit entries
each, open tasks), as years of use would leave it. The app runs under uvicorn on loopback,
with a real dev server and worker for the filings. "Server time" is measured inside the
process, from the request's first byte to the response's last, by a wrapper around the app;
client-side latency is printed beside it.

The open disputes for the action round trip are real workflows: those filed through the API
above, the rest filed through the filing service directly (in bulk, 20 at a time: the API's
cost is what the filing figures measure), each assignment accepted by its mediator.

The busy dispute is driven through the real worker as `bench.history` drives it (`--busy-notes`
notes, evidence, replies, a review, an appeal, the final ruling): its page and API answer are
timed with the worker running, then again with the worker stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import socket
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlmodel import col, select
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from accord.application import Services, build_filing
from accord.directory.demo import DEMO
from accord.directory.records import resolve_actor
from accord.platform.heap import freeze_start_up
from accord.platform.servers import http_server
from accord.rules.audit import GENESIS, event_hash
from accord.runtime.wiring import build_worker
from bench.common import BenchStack, Goal, Report, add_arguments, pct
from bench.history import busy_dispute, seed_alternates
from bench.lifecycle import submission
from models.enums import DisputeCategory, DisputeStage, OutboxState, Role, TaskKind, TaskState
from models.payloads import AcceptAssignment
from models.tables import Dispute, DisputeEvent, DisputeParty, OutboxMessage, Task
from web.app import create_app
from web.auth import Accounts, seed_demo_accounts
from web.health import metrics_app
from workflows.dispute import DisputeWorkflow

PARTNERS = [p.id for p in DEMO.partners if not p.is_direct_sales]
MEDIATORS = ["greta.hoffmann", "kenji.sato", "maria.lopez", "sam.okafor"]
WORDS = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
]
STAGES = [DisputeStage.MEDIATION, DisputeStage.CLOSED, DisputeStage.TRIAGE, DisputeStage.CLOSED]


GOALS: dict[str, tuple[Goal | None, Goal | None]] = {
    # group: (server p50, server p95), from issue 17
    "search": (None, Goal(at_most=50)),
    "search (partner, own)": (None, Goal(at_most=50)),
    "search (list's text field)": (None, Goal(at_most=50)),
    "dispute page (live dispute)": (None, Goal(at_most=100)),
    "busy dispute page": (None, Goal(at_most=100)),
    "busy dispute API": (None, Goal(at_most=100)),
    "busy dispute page, worker stopped": (None, Goal(at_most=100)),
    "busy dispute API, worker stopped": (None, Goal(at_most=100)),
    "filing (API, one at a time)": (Goal(at_most=50), None),
    "filing (API, concurrent)": (None, Goal(at_most=150)),
    "action: add note": (Goal(at_most=50), Goal(at_most=200)),
}
"""Goals by figure; the goals of the concurrent filings and of the action round trip are set for
20 clients and 20 people (each figure's label says how many it ran with)."""


def goal_key(group: str) -> str:
    """A figure's key in GOALS: 'filing (API, 4 concurrent)' -> 'filing (API, concurrent)',
    'action: add note (4 people)' -> 'action: add note' (with or without a pause)."""
    if group.startswith("action: add note ("):
        return "action: add note"
    return re.sub(r"^filing \(API, \d+ concurrent\)$", "filing (API, concurrent)", group)


class ServerTimer:
    """ASGI wrapper recording, per path group, the time from request start to response end."""

    def __init__(self, app: Any, metrics: Any = None) -> None:
        self.app = app
        # The web process serves /metrics on a port of its own (web.serve); here, beside the app.
        self.metrics = metrics
        self.times: dict[str, list[float]] = {}
        self.group = "other"

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        group = self.group
        started = time.perf_counter()

        async def timed_send(message):  # type: ignore[no-untyped-def]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.setdefault(group, []).append((time.perf_counter() - started) * 1000)

        app = self.metrics if self.metrics and scope["path"] == "/metrics" else self.app
        await app(scope, receive, timed_send)


def fill(services: Services, disputes: int, events_each: int) -> list[str]:
    """Bulk-load the read model; returns the dispute numbers."""
    engine = services.sessions.engine
    rng = random.Random(7)
    now = datetime.now(UTC)
    numbers: list[str] = []
    batch = 5_000
    for start in range(0, disputes, batch):
        rows, parties, events, tasks = [], [], [], []
        for i in range(start, min(disputes, start + batch)):
            number = f"DSP-2025-{i + 1:06d}"
            numbers.append(number)
            claimant, respondent = rng.sample(PARTNERS, 2)
            stage = STAGES[i % len(STAGES)]
            filed = now - timedelta(minutes=disputes - i)
            mediator = MEDIATORS[i % len(MEDIATORS)]
            word = rng.choice(WORDS)
            rows.append(
                {
                    "number": number,
                    "category": rng.choice(list(DisputeCategory)).value,
                    "claimant_id": claimant,
                    "respondent_ids": [respondent],
                    "party_key": "|".join(sorted([claimant, respondent])),
                    "contested_objects": [{"kind": "account", "ref": f"{word.upper()}-{i}"}],
                    "summary": f"{respondent} sold into the {word} account held by {claimant}",
                    "facts": f"Facts of dispute {i} about {word}.",
                    "desired_remedy": "Commission to the registered partner",
                    "amount_at_stake": rng.randint(1_000, 500_000),
                    "currency": "USD",
                    "occurred_on": filed.date(),
                    "stage": stage.value,
                    "stage_deadline": filed + timedelta(days=15) if stage.is_open else None,
                    "deadline_explanation": "15 business days on the US-NY calendar",
                    "mediator_id": mediator,
                    "playbook_version": "2026.1",
                    "filed_by": "bench@example",
                    "filed_at": filed,
                    "updated_at": filed,
                    "closed_at": filed + timedelta(days=5) if not stage.is_open else None,
                    "outcome": "settled" if not stage.is_open else None,
                }
            )
            parties += [
                {"dispute_number": number, "partner_id": claimant, "side": "claimant"},
                {"dispute_number": number, "partner_id": respondent, "side": "respondent"},
            ]
            prev = GENESIS
            for seq in range(1, events_each + 1):
                at = filed + timedelta(seconds=seq)
                content = {"summary": f"step {seq} of {number}"}
                digest = event_hash(
                    prev_hash=prev,
                    number=number,
                    seq=seq,
                    at=at,
                    actor_id="accord",
                    actor_role="system",
                    action="bench_step",
                    content=content,
                )
                events.append(
                    {
                        "dispute_number": number,
                        "seq": seq,
                        "at": at,
                        "actor_id": "accord",
                        "actor_role": Role.SYSTEM.value,
                        "action": "bench_step",
                        "content": content,
                        "prev_hash": prev,
                        "hash": digest,
                    }
                )
                prev = digest
            if stage is DisputeStage.MEDIATION:
                tasks.append(
                    {
                        "key": f"{number}/mediate",
                        "dispute_number": number,
                        "kind": TaskKind.MEDIATE.value,
                        "title": f"Mediate {number}",
                        "assignee_id": mediator,
                        "assignee_role": Role.MEDIATOR.value,
                        "due_at": filed + timedelta(days=15),
                        "state": TaskState.OPEN.value,
                        "created_at": filed,
                    }
                )
        with engine.begin() as conn:
            conn.execute(insert(Dispute), rows)
            conn.execute(insert(DisputeParty), parties)
            conn.execute(insert(DisputeEvent), events)
            if tasks:
                conn.execute(insert(Task), tasks)
        print(f"  loaded {min(disputes, start + batch):,} disputes", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    # Statistics, as autovacuum (PostgreSQL) or a routine ANALYZE would have gathered them on
    # a database that grew to this size; without them PostgreSQL plans the lists blind.
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return numbers


async def measure(
    timer: ServerTimer,
    client: httpx.AsyncClient,
    group: str,
    paths: list[str],
    token: str,
) -> list[float]:
    timer.group = group
    client_times = []
    for path in paths:
        started = time.perf_counter()
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        client_times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{group} {path}: {response.status_code} {response.text[:300]}")
    return client_times


async def main(args: argparse.Namespace) -> None:
    report = Report("web", args, label=f"web ({'postgresql' if args.database_url else 'sqlite'})")
    bench = BenchStack("web", database_url=args.database_url)
    settings = bench.settings
    services = bench.seed(case_limit=1_000_000)
    began = time.perf_counter()
    numbers = fill(services, args.disputes, args.events)
    print(f"filled {len(numbers):,} disputes in {time.perf_counter() - began:.0f}s")
    seed_demo_accounts(services.sessions, "bench")
    accounts = Accounts(services.sessions, session_max_age=timedelta(hours=1))
    tokens = {
        who: accounts.issue_token(who, "bench")
        for who in (
            "carol.compliance@vendor.example",
            "greta.hoffmann@vendor.example",
            "nora@northwind.example",
        )
    }
    contacts = {p.id: p.contacts[0].email for p in DEMO.partners if p.contacts}
    partner_tokens = {pid: accounts.issue_token(email, "bench") for pid, email in contacts.items()}
    mediator_tokens = {m: accounts.issue_token(f"{m}@vendor.example", "bench") for m in MEDIATORS}

    # --only names pages (the busy dispute's among them by "busy"); --busy-only: that alone.
    timing_busy = args.busy_only or not args.only or "busy" in args.only
    writing = not (args.only or args.busy_only)
    mediated: list[tuple[str, str]] = []
    seed_alternates(services)
    compliance_token = tokens["carol.compliance@vendor.example"]
    env = await bench.temporal()
    report.attach_server()
    # A port the system hands out, bound here and served by uvicorn: a port picked at random
    # was sometimes in use already (CI: "address already in use", the benchmark exited 3).
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    app = create_app(settings, services, env.client)
    timer = ServerTimer(app, metrics_app(app.state.metrics))
    server = http_server(timer, "127.0.0.1", port, log_level="error")
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        await asyncio.sleep(0.05)
    freeze_start_up()  # as the web and worker processes do once started (accord.platform.heap)
    rng = random.Random(11)
    results: list[tuple[str, list[float], list[float]]] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            async with build_worker(env.client, services, settings.task_queue):
                # A busy dispute driven through the worker; its page is timed again below,
                # with the worker stopped (the pages read the read model, not the workflow).
                busy = await drive_busy(env, services, args) if timing_busy else None
                if busy:
                    await measure_busy(
                        timer, client, busy, compliance_token, args.requests, "", results
                    )
                if not args.busy_only:
                    n = args.requests
                    compliance = tokens["carol.compliance@vendor.example"]
                    plan = [
                        (
                            "inbox (mediator, page)",
                            ["/inbox"] * n,
                            tokens["greta.hoffmann@vendor.example"],
                        ),
                        (
                            "dispute list (compliance, all)",
                            [f"/disputes?page={rng.randint(1, 50)}" for _ in range(n)],
                            compliance,
                        ),
                        (
                            "dispute list (partner, own)",
                            ["/disputes"] * n,
                            tokens["nora@northwind.example"],
                        ),
                        (
                            "dispute list (filtered)",
                            [
                                f"/disputes?stage=mediation&category={rng.choice(list(DisputeCategory)).value}"
                                for _ in range(n)
                            ],
                            compliance,
                        ),
                        (
                            "timeline",
                            [f"/disputes/{rng.choice(numbers)}/timeline" for _ in range(n)],
                            compliance,
                        ),
                        (
                            "search",
                            [f"/search?q={rng.choice(WORDS)}" for _ in range(n)],
                            compliance,
                        ),
                        (
                            "search (partner, own)",
                            [f"/search?q={rng.choice(WORDS)}" for _ in range(n)],
                            tokens["nora@northwind.example"],
                        ),
                        (
                            "search (list's text field)",
                            [
                                f"/disputes?q={rng.choice(WORDS)}&page={rng.randint(1, 3)}"
                                for _ in range(n)
                            ],
                            compliance,
                        ),
                        ("API dispute list", ["/api/disputes"] * n, compliance),
                        # A Prometheus scrape: the business metrics are counted from the database.
                        ("metrics scrape", ["/metrics"] * n, compliance),
                    ]
                    for group, paths, token in plan:
                        if args.only and not group.startswith(tuple(args.only.split(","))):
                            continue
                        await measure(timer, client, group, paths[:3], token)  # warm up
                        timer.times.pop(group, None)
                        client_times = await measure(timer, client, group, paths, token)
                        results.append((group, timer.times[group], client_times))

                    filed: list[str] = []

                    def filing_body(i: int) -> tuple[dict[str, Any], str]:
                        claimant, respondent = (
                            PARTNERS[i % len(PARTNERS)],
                            PARTNERS[(i + 1) % len(PARTNERS)],
                        )
                        return {
                            "respondent_ids": [respondent],
                            "category": "deal_registration",
                            "contested_objects": [
                                {"kind": "deal_registration", "ref": f"DR-B-{i}"}
                            ],
                            "summary": f"Bench filing {i} over a deal registration",
                            "facts": "Registered first, then registered again by the other partner.",
                            "desired_remedy": "Registration confirmed",
                            "amount_at_stake": "1000",
                            "occurred_on": date.today().isoformat(),
                            "submission_id": f"bench-{i}",
                        }, claimant

                    async def post_filing(i: int, times: list[float]) -> None:
                        body, claimant = filing_body(i)
                        started = time.perf_counter()
                        response = await client.post(
                            "/api/disputes",
                            json=body,
                            headers={"Authorization": f"Bearer {partner_tokens[claimant]}"},
                        )
                        times.append((time.perf_counter() - started) * 1000)
                        if response.status_code != 201:
                            raise SystemExit(
                                f"filing {i}: {response.status_code} {response.text[:300]}"
                            )
                        filed.append(response.json()["number"])

                    if writing:  # --only: the pages named, nothing filed or done
                        # One at a time: the cost of the path itself, without contention. Each
                        # filing starts its dispute's triage (screening, precedents, the offer,
                        # the mails) in this process and the engine; the next filing waits, not
                        # timed, until that has settled, or it would be timed against it (back to
                        # back, 80 ms p50 where settled is ~20 ms: the concurrent figure below
                        # measures filings under load).
                        timer.group = "filing (API, one at a time)"
                        single_client: list[float] = []
                        with report.phase() as single_usage:
                            for i in range(args.single_filings):
                                await post_filing(args.filings + i, single_client)
                                timer.group = "setup"
                                await triage_settled(services, filed[-1])
                                timer.group = "filing (API, one at a time)"
                        if single_client:  # --single-filings 0: none timed
                            results.append((timer.group, timer.times[timer.group], single_client))

                        timer.group = f"filing (API, {args.concurrency} concurrent)"
                        semaphore = asyncio.Semaphore(args.concurrency)
                        filing_client: list[float] = []

                        async def file_one(i: int) -> None:
                            async with semaphore:
                                await post_filing(i, filing_client)

                        with report.phase() as filing_usage:
                            await asyncio.gather(*(file_one(i) for i in range(args.filings)))
                        elapsed = filing_usage[0].wall
                        if filing_client:  # --filings 0: none timed
                            results.append((timer.group, timer.times[timer.group], filing_client))

                        # The human-action round trip: open disputes, each accepted by its mediator, then
                        # `people` concurrent mediators adding notes through the API.
                        timer.group = "setup"
                        mediated = await open_disputes(
                            services, env.client, filed, max(0, args.open_disputes - len(filed))
                        )
                        who = "1 person" if args.people == 1 else f"{args.people} people"
                        if args.think > 0:
                            who += f", pausing {args.think:g} s"
                        timer.group = f"action: add note ({who})"
                        people = asyncio.Semaphore(args.people)
                        action_client: list[float] = []
                        still_applying: list[int] = []

                        async def act(i: int) -> None:
                            number, mediator = mediated[rng.randrange(len(mediated))]
                            async with people:
                                started = time.perf_counter()
                                response = await client.post(
                                    f"/api/disputes/{number}/add-note",
                                    json={
                                        "text": f"Note {i}: spoke to both sides.",
                                        "visibility": "shared",
                                    },
                                    headers={
                                        "Authorization": f"Bearer {mediator_tokens[mediator]}"
                                    },
                                )
                                action_client.append((time.perf_counter() - started) * 1000)
                            if response.status_code == 202:
                                still_applying.append(
                                    i
                                )  # answered: accepted, not done within the wait
                            elif response.status_code != 200:
                                raise SystemExit(
                                    f"add note {i}: {response.status_code} {response.text[:300]}"
                                )

                        async def person(first: int) -> None:
                            """One person: a pause (exponential, mean --think), an action, and
                            again, for every `people`-th action from `first`."""
                            for i in range(first, args.actions, args.people):
                                await asyncio.sleep(rng.expovariate(1 / args.think))
                                await act(i)

                        with report.phase() as action_usage:
                            if args.think > 0:
                                await asyncio.gather(*(person(p) for p in range(args.people)))
                            else:  # each person acts again as soon as answered
                                await asyncio.gather(*(act(i) for i in range(args.actions)))
                        results.append((timer.group, timer.times[timer.group], action_client))

                        # A live dispute's page, as its mediator opens it after acting.
                        group = "dispute page (live dispute)"
                        by_mediator = [(f"/disputes/{n}", m) for n, m in mediated]
                        timer.group = group
                        page_client: list[float] = []
                        for _ in range(args.requests):
                            path, mediator = by_mediator[rng.randrange(len(by_mediator))]
                            page_client += await measure(
                                timer, client, group, [path], mediator_tokens[mediator]
                            )
                        results.append((group, timer.times[group], page_client))
            if busy:
                await measure_busy(
                    timer,
                    client,
                    busy,
                    compliance_token,
                    args.requests,
                    ", worker stopped",
                    results,
                )
    finally:
        server.should_exit = True
        await serving
        await env.shutdown()
        bench.stop()

    backend = settings.resolved_database_url().split(":", 1)[0]
    report.heading(
        f"Accord web benchmark — {len(numbers):,} disputes ({args.events} audit entries each), "
        f"{backend}, {args.requests} requests per page, {len(mediated)} open disputes acted on"
    )
    report.note(f"{'':34} {'server p50':>10} {'p95':>8}   {'client p50':>10} {'p95':>8}  (ms)")
    for group, server_times, client_times in results:
        report.note(
            f"{group:34} {statistics.median(server_times):10.1f} {pct(server_times, 95):8.1f}"
            f"   {statistics.median(client_times):10.1f} {pct(client_times, 95):8.1f}"
        )
    if writing:
        report.note(
            f"notes answered 202 (accepted, still applying after the server's wait): "
            f"{len(still_applying)} of {args.actions}"
        )
    report.heading("Figures with a goal (server side)")
    for group, server_times, _ in results:
        p50_goal, p95_goal = GOALS.get(goal_key(group), (None, None))
        if p50_goal:
            report.figure(f"{group} p50", statistics.median(server_times), "ms", p50_goal)
        if p95_goal:
            report.figure(f"{group} p95", pct(server_times, 95), "ms", p95_goal)
    if writing:
        if args.filings:
            report.figure(f"filings at {args.concurrency} concurrent", args.filings / elapsed, "/s")
            report.cpu(
                f"filing {args.concurrency} concurrent", filing_usage[0], args.filings, "filing"
            )
        if args.single_filings:
            report.cpu("filing one at a time", single_usage[0], args.single_filings, "filing")
        report.cpu("add note", action_usage[0], args.actions, "action")
    report.finish()


async def drive_busy(env: Any, services: Services, args: argparse.Namespace) -> str:
    """One dispute driven to its end through the worker, as bench.history drives it."""
    busy = argparse.Namespace(
        notes=args.busy_notes, evidence=10, replies=args.busy_notes // 6, reply_kb=5
    )
    began = time.perf_counter()
    number, ended = await busy_dispute(env.client, services, 7, busy, True)
    with services.sessions.read() as session:
        entries = session.execute(
            text("SELECT count(*) FROM dispute_event WHERE dispute_number = :n"), {"n": number}
        ).scalar_one()
    print(
        f"busy dispute {number}: {entries} audit entries, {ended}, "
        f"driven in {time.perf_counter() - began:.0f}s",
        file=sys.stderr,
    )
    return number


async def measure_busy(
    timer: ServerTimer,
    client: httpx.AsyncClient,
    number: str,
    token: str,
    n: int,
    suffix: str,
    results: list[tuple[str, list[float], list[float]]],
) -> None:
    for group, path in (
        (f"busy dispute page{suffix}", f"/disputes/{number}"),
        (f"busy dispute API{suffix}", f"/api/disputes/{number}"),
    ):
        await measure(timer, client, group, [path] * 3, token)  # warm up
        timer.times.pop(group, None)
        client_times = await measure(timer, client, group, [path] * n, token)
        results.append((group, timer.times[group], client_times))


async def triage_settled(services: Services, number: str, limit: float = 60.0) -> None:
    """Wait until the dispute's triage has offered it to a mediator (or asked the admins to),
    and its mail has left the outbox: the work a filing starts is done."""
    until = time.monotonic() + limit
    while time.monotonic() < until:
        with services.sessions.read() as session:
            offered = session.exec(
                select(DisputeEvent.seq).where(
                    DisputeEvent.dispute_number == number,
                    col(DisputeEvent.action).in_(("mediator_offered", "no_eligible_mediator")),
                )
            ).first()
            unsent = session.exec(
                select(OutboxMessage.id).where(OutboxMessage.state == OutboxState.PENDING)
            ).first()
        if offered is not None and unsent is None:
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"{number}: triage did not settle within {limit:.0f} s")


async def open_disputes(
    services: Services, client: Any, filed: list[str], more: int
) -> list[tuple[str, str]]:
    """`more` disputes filed through the filing service (20 at a time) besides those filed
    through the API, each assignment accepted by its mediator: (number, mediator) pairs."""
    with services.sessions.read() as session:
        contacts = {p.id: p.contacts[0].email for p in DEMO.partners if p.contacts}
        actors = {"contacts": contacts}
        people = {m: resolve_actor(session, m) for m in MEDIATORS}
    filing = build_filing(services, client)
    semaphore = asyncio.Semaphore(20)
    numbers = list(filed)

    async def file_one(i: int) -> None:
        async with semaphore:
            numbers.append((await filing.file(submission(i, "DR-OPEN", actors))).number)

    await asyncio.gather(*(file_one(i) for i in range(more)))

    async def accept(number: str) -> tuple[str, str]:
        # Set-up, not measured: on a loaded machine a query or an update may time out, so each
        # is tried again (the update under one id, applied once) until the mediator is in.
        handle = client.get_workflow_handle_for(DisputeWorkflow.run, number)
        async with semaphore:
            while True:
                try:
                    state = await handle.query(DisputeWorkflow.get_state)
                    if state.mediator_id:
                        return number, state.mediator_id
                    if state.candidate_mediator_id:
                        await handle.execute_update(
                            DisputeWorkflow.accept_assignment,
                            AcceptAssignment(
                                actor=people[state.candidate_mediator_id],
                                impartiality_declaration="No ties to either party here.",
                            ),
                            id=f"bench-accept-{number}",
                        )
                        return number, state.candidate_mediator_id
                except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
                    print(f"  {number}: {exc}; trying again", file=sys.stderr)
                await asyncio.sleep(0.2)

    began = time.perf_counter()
    mediated = await asyncio.gather(*(accept(n) for n in numbers))
    print(
        f"  {len(mediated)} open disputes in mediation ({time.perf_counter() - began:.0f}s)",
        file=sys.stderr,
    )
    return list(mediated)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disputes", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5, help="audit entries per dispute")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--filings", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--single-filings", type=int, default=50, help="filings one at a time, before the rest"
    )
    parser.add_argument(
        "--open-disputes", type=int, default=1_000, help="live disputes the people act on"
    )
    parser.add_argument("--actions", type=int, default=400, help="notes added through the API")
    parser.add_argument("--people", type=int, default=20, help="people acting at the same time")
    parser.add_argument(
        "--think",
        type=float,
        default=0,
        help="mean seconds a person pauses before each action (0: acts again at once)",
    )
    parser.add_argument("--database-url", default="")
    parser.add_argument("--busy-notes", type=int, default=300, help="notes of the busy dispute")
    parser.add_argument(
        "--busy-only", action="store_true", help="time the busy dispute's page alone"
    )
    add_arguments(parser)
    parser.add_argument(
        "--only", default="", help="comma-separated starts of page names to time (all if empty)"
    )
    asyncio.run(main(parser.parse_args()))
