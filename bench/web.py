"""Web benchmark: server time of the busiest pages with 100,000 disputes in the database, of a
busy dispute's page, and of filing through the API under 20 concurrent clients.

    make bench-web
    python -m bench.web --disputes 100000 --requests 200 --filings 200 --concurrency 20
    python -m bench.web --busy-only  # the busy dispute's page alone (goal p95 <= 100 ms)
    python -m bench.web --database-url postgresql://postgres@127.0.0.1:5432/accord_bench  # an empty database

The read model is filled directly with SQL (disputes, parties, a timeline of audit entries
each, open tasks), as years of use would leave it. The app runs under uvicorn on loopback,
with a real dev server and worker for the filings. "Server time" is measured inside the
process, from the request's first byte to the response's last, by a wrapper around the app;
client-side latency is printed beside it.

The busy dispute is driven through the real worker as `bench.history` drives it (`--busy-notes`
notes, evidence, replies, a review, an appeal, the final ruling): its page and API answer are
timed with the worker running, then again with the worker stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import insert, text

from accord.audit import GENESIS, event_hash
from accord.demo import DEMO
from accord.runtime import Services, build_worker
from bench.common import BenchStack, pct
from bench.history import busy_dispute, seed_alternates
from models.enums import DisputeCategory, DisputeStage, Role, TaskKind, TaskState
from models.tables import Dispute, DisputeEvent, DisputeParty, Task
from web.app import create_app
from web.auth import Accounts, seed_demo_accounts
from web.serve import _Server

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


class ServerTimer:
    """ASGI wrapper recording, per path group, the time from request start to response end."""

    def __init__(self, app: Any) -> None:
        self.app = app
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

        await self.app(scope, receive, timed_send)


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

    seed_alternates(services)
    env = await bench.temporal()
    port = 30000 + uuid.uuid4().int % 20000
    timer = ServerTimer(create_app(settings, services, env.client))
    server = _Server(uvicorn.Config(timer, host="127.0.0.1", port=port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    rng = random.Random(11)
    results: list[tuple[str, list[float], list[float]]] = []
    compliance = tokens["carol.compliance@vendor.example"]
    elapsed = 0.0
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            async with build_worker(env.client, services, settings.task_queue):
                busy = await drive_busy(env, services, args)
                await measure_busy(timer, client, busy, compliance, args.requests, "", results)
                if not args.busy_only:
                    elapsed = await pages_and_filings(
                        timer, client, numbers, tokens, partner_tokens, args, rng, results
                    )
            await measure_busy(
                timer, client, busy, compliance, args.requests, ", worker stopped", results
            )
    finally:
        server.should_exit = True
        await serving
        await env.shutdown()
        bench.stop()

    backend = settings.resolved_database_url().split(":", 1)[0]
    print(
        f"\nAccord web benchmark — {len(numbers):,} disputes ({args.events} audit entries each), "
        f"{backend}, {args.requests} requests per page, 2 cores; load {load_average()}"
    )
    print(f"{'':40} {'server p50':>10} {'p95':>8}   {'client p50':>10} {'p95':>8}  (ms)")
    for group, server_times, client_times in results:
        goal = "  goal p95 <= 100" if group.startswith("busy dispute") else ""
        print(
            f"{group:40} {statistics.median(server_times):10.1f} {pct(server_times, 95):8.1f}"
            f"   {statistics.median(client_times):10.1f} {pct(client_times, 95):8.1f}{goal}"
        )
    if elapsed:
        print(
            f"filings: {args.filings} at {args.concurrency} concurrent, "
            f"{args.filings / elapsed:.1f}/s"
        )


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


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


async def pages_and_filings(
    timer: ServerTimer,
    client: httpx.AsyncClient,
    numbers: list[str],
    tokens: dict[str, str],
    partner_tokens: dict[str, str],
    args: argparse.Namespace,
    rng: random.Random,
    results: list[tuple[str, list[float], list[float]]],
) -> float:
    """The lists, search, metrics, then the filings; returns the filings' elapsed seconds."""
    n = args.requests
    compliance = tokens["carol.compliance@vendor.example"]
    plan = [
        ("inbox (mediator, page)", ["/inbox"] * n, tokens["greta.hoffmann@vendor.example"]),
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
        ("search", [f"/search?q={rng.choice(WORDS)}" for _ in range(n)], compliance),
        ("API dispute list", ["/api/disputes"] * n, compliance),
        # A Prometheus scrape: the business metrics are counted from the database.
        ("metrics scrape", ["/metrics"] * n, compliance),
    ]
    for group, paths, token in plan:
        await measure(timer, client, group, paths[:3], token)  # warm up
        timer.times.pop(group, None)
        client_times = await measure(timer, client, group, paths, token)
        results.append((group, timer.times[group], client_times))

    timer.group = "filing (API, 20 concurrent)"
    semaphore = asyncio.Semaphore(args.concurrency)
    filing_client: list[float] = []

    async def file_one(i: int) -> None:
        claimant, respondent = (
            PARTNERS[i % len(PARTNERS)],
            PARTNERS[(i + 1) % len(PARTNERS)],
        )
        body = {
            "respondent_ids": [respondent],
            "category": "deal_registration",
            "contested_objects": [{"kind": "deal_registration", "ref": f"DR-B-{i}"}],
            "summary": f"Bench filing {i} over a deal registration",
            "facts": "Registered first, then registered again by the other partner.",
            "desired_remedy": "Registration confirmed",
            "amount_at_stake": "1000",
            "occurred_on": date.today().isoformat(),
            "submission_id": f"bench-{i}",
        }
        async with semaphore:
            started = time.perf_counter()
            response = await client.post(
                "/api/disputes",
                json=body,
                headers={"Authorization": f"Bearer {partner_tokens[claimant]}"},
            )
            filing_client.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            raise SystemExit(f"filing {i}: {response.status_code} {response.text[:300]}")

    began = time.perf_counter()
    await asyncio.gather(*(file_one(i) for i in range(args.filings)))
    elapsed = time.perf_counter() - began
    results.append((timer.group, timer.times[timer.group], filing_client))
    return elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disputes", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5, help="audit entries per dispute")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--filings", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--busy-notes", type=int, default=300, help="notes of the busy dispute")
    parser.add_argument(
        "--busy-only", action="store_true", help="time the busy dispute's page alone"
    )
    asyncio.run(main(parser.parse_args()))
