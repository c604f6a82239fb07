"""Lifecycle benchmark: N disputes from filing to settlement on the embedded stack.

    make bench                       # N=200, 20 at a time
    python -m bench.lifecycle --disputes 500 --concurrency 40

Runs a real dev server (SQLite file, WAL), a real worker with Accord's activities on a
SQLite database, and a real SMTP capture. In the same run, a bare workflow with the same
number of activity calls (Accord's local activities made as regular ones) and updates gives
the engine's own cost of those steps done plainly; the ratio is what Accord adds, less what it
saves by running its records inside the workflow task. Prints disputes per second and p50/p95 per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from accord.application import build_filing
from accord.directory.demo import DEMO
from accord.directory.records import resolve_actor
from accord.disputes.filing import FilingService
from accord.rules.consistency import divergences
from accord.runtime.wiring import WORKFLOW_RUNNER, build_worker
from bench.bare import BareInput, BareWorkflow, Step, bare_step
from bench.common import BenchStack, Goal, Report, WriterHolders, add_arguments, pct
from models.enums import DisputeStage, VoteOutcome
from models.payloads import (
    AcceptAssignment,
    CastVote,
    CommissionSplit,
    DeclareImpasse,
    FilingSubmission,
    IssueRuling,
    ProposeSettlement,
    RespondToOffer,
    UnsealBallot,
)
from workflows.dispute import DisputeWorkflow

PAIRS = [
    ("northwind", "contoso"),
    ("fabrikam", "tailspin"),
    ("adatum", "litware"),
    ("woodgrove", "proseware"),
    ("wingtip", "relecloud"),
    ("margie", "lamna"),
]


async def poll(predicate, interval: float = 0.1):  # type: ignore[no-untyped-def]
    while True:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)


def submission(i: int, prefix: str, actors: dict) -> FilingSubmission:  # type: ignore[type-arg]
    claimant, respondent = PAIRS[i % len(PAIRS)]
    return FilingSubmission.model_validate(
        {
            "claimant_id": claimant,
            "respondent_ids": [respondent],
            "category": "deal_registration",
            "contested_objects": [{"kind": "deal_registration", "ref": f"{prefix}-{i}"}],
            "summary": f"Bench dispute {prefix}-{i}",
            "facts": "Two registrations for the same opportunity.",
            "desired_remedy": "Split",
            "amount_at_stake": "1000.00",
            "occurred_on": date.today().isoformat(),
            "filed_by": actors["contacts"][claimant],
        }
    )


async def one_dispute(
    i: int, client: Client, filing: FilingService, actors: dict, timings: dict
) -> None:  # type: ignore[type-arg]
    claimant, respondent = PAIRS[i % len(PAIRS)]
    t0 = time.perf_counter()
    result = await filing.file(submission(i, "DR-BENCH", actors))
    t1 = time.perf_counter()
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, result.number)

    async def offered():  # type: ignore[no-untyped-def]
        s = await handle.query(DisputeWorkflow.get_state)
        return s.candidate_mediator_id

    mediator = await poll(offered)
    t2 = time.perf_counter()
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(
            actor=actors["people"][mediator],
            impartiality_declaration="No ties to either party here.",
        ),
    )
    t3 = time.perf_counter()
    offer = await handle.execute_update(
        DisputeWorkflow.propose_settlement,
        ProposeSettlement(
            actor=actors["people"][mediator],
            terms="Even split.",
            remedies=(
                CommissionSplit(
                    deal_ref=f"DR-BENCH-{i}",
                    shares={claimant: Decimal(50), respondent: Decimal(50)},
                ),
            ),
        ),
    )
    t4 = time.perf_counter()
    for partner in (claimant, respondent):
        await handle.execute_update(
            DisputeWorkflow.respond_to_offer,
            RespondToOffer(
                actor=actors["partners"][partner], offer_id=offer.reference or "", accept=True
            ),
        )
    t5 = time.perf_counter()
    outcome = await handle.result()
    t6 = time.perf_counter()
    assert outcome.stage is DisputeStage.CLOSED, outcome
    for name, value in (
        ("file", t1 - t0),
        ("triage (to offer)", t2 - t1),
        ("accept assignment", t3 - t2),
        ("propose settlement", t4 - t3),
        ("respond x2", t5 - t4),
        ("settle and close", t6 - t5),
        ("total", t6 - t0),
    ):
        timings.setdefault(name, []).append(value)


async def one_review(
    i: int, client: Client, filing: FilingService, actors: dict, timings: dict
) -> None:  # type: ignore[type-arg]
    """Mediation fails, a panel is drawn, three sealed votes, the chair rules. The appeal window
    that follows lasts business days, so the run stops once it is open."""
    claimant, respondent = PAIRS[i % len(PAIRS)]
    t0 = time.perf_counter()
    result = await filing.file(submission(i, "DR-REVIEW", actors))
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, result.number)

    async def offered():  # type: ignore[no-untyped-def]
        return (await handle.query(DisputeWorkflow.get_state)).candidate_mediator_id

    mediator = actors["people"][await poll(offered)]
    await handle.execute_update(
        DisputeWorkflow.accept_assignment,
        AcceptAssignment(actor=mediator, impartiality_declaration="No ties to either party here."),
    )
    t1 = time.perf_counter()
    await handle.execute_update(
        DisputeWorkflow.declare_impasse,
        DeclareImpasse(actor=mediator, reason="No movement on either side."),
    )

    async def panel():  # type: ignore[no-untyped-def]
        return (await handle.query(DisputeWorkflow.get_state)).review

    review = await poll(panel)
    t2 = time.perf_counter()
    split = CommissionSplit(
        deal_ref=f"DR-REVIEW-{i}", shares={claimant: Decimal(70), respondent: Decimal(30)}
    )
    # The panel drawn for this dispute (least loaded, screened), not a fixed list of names.
    voters = [member.person_id for member in review.panel][: review.quorum]
    assert review.chair is not None, review
    chair = actors["board"][review.chair.person_id]
    for who in voters:
        await handle.execute_update(
            DisputeWorkflow.cast_vote,
            CastVote(
                actor=actors["board"][who],
                outcome=VoteOutcome.UPHOLD,
                remedies=(split,),
                reasons="The first registration is valid under RoE 3.1.",
            ),
        )
    if len(voters) < len(review.panel):
        await handle.execute_update(
            DisputeWorkflow.unseal_ballot,
            UnsealBallot(actor=chair, reason="A quorum has voted."),
        )
    t3 = time.perf_counter()
    # The chair reads the dispute page, where the comparable precedents are shown above the
    # ruling form, and acknowledges a departure from them as a board would (the run's own 50/50
    # settlements are such precedents for a 70/30 ruling), with the same check the workflow makes.
    state = await handle.query(DisputeWorkflow.get_state)
    clauses = ("RoE 3.1",)
    departs = divergences(
        state.similar.matches if state.similar else (),
        category=state.category,
        clauses=clauses,
        outcome=VoteOutcome.UPHOLD.value,
        remedies=(split,),
        claimant_id=claimant,
    )
    if departs:
        timings.setdefault("acknowledged", []).append(1.0)
    await handle.execute_update(
        DisputeWorkflow.issue_ruling,
        IssueRuling(
            actor=chair,
            outcome=VoteOutcome.UPHOLD,
            remedies=(split,),
            rationale="The first valid registration wins under RoE 3.1.",
            votes_relied_on=(voters[0],),
            clauses_applied=clauses,
            divergence_acknowledgement=(
                "The claimant registered the deal weeks before the respondent and did most of "
                "the work, so a larger share than the earlier even splits is due."
                if departs
                else None
            ),
        ),
    )

    async def appeal_open():  # type: ignore[no-untyped-def]
        state = await handle.query(DisputeWorkflow.get_state)
        return state.stage is DisputeStage.APPEAL_WINDOW

    await poll(appeal_open)
    t4 = time.perf_counter()
    for name, value in (
        ("file to mediation", t1 - t0),
        ("impasse to panel", t2 - t1),
        ("quorum of sealed votes", t3 - t2),
        ("ruling to appeal window", t4 - t3),
        ("total", t4 - t0),
    ):
        timings.setdefault(name, []).append(value)


async def bounded(n: int, concurrency: int, make) -> float:  # type: ignore[no-untyped-def]
    semaphore = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with semaphore:
            await make(i)

    start = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(n)))
    return time.perf_counter() - start


async def main(n: int, concurrency: int, args: argparse.Namespace | None = None) -> None:
    report = Report("lifecycle", args)
    bench = BenchStack("lifecycle", task_queue="accord-bench")
    # Enough capacity that every dispute finds a mediator.
    services = bench.seed(case_limit=10_000)
    with services.sessions.read() as session:
        people = {
            p: resolve_actor(session, p)
            for p in ("greta.hoffmann", "kenji.sato", "maria.lopez", "sam.okafor")
        }
        contacts = {p.id: p.contacts[0].email for p in DEMO.partners}
        partners = {pid: resolve_actor(session, email) for pid, email in contacts.items()}
        board = {
            p.id: resolve_actor(session, p.id) for p in DEMO.people if p.id.startswith("board.")
        }
    actors = {"people": people, "contacts": contacts, "partners": partners, "board": board}

    env = await bench.temporal(
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"
    )
    report.attach_server()
    try:
        client = env.client
        filing = build_filing(services, client)
        timings: dict[str, list[float]] = {}
        async with build_worker(client, services, "accord-bench"):
            await one_dispute(
                10_000, client, filing, actors, {}
            )  # warm-up, also sizes the bare run
            first = await _first_number(services)
            history = await client.get_workflow_handle(first).fetch_history()
            # Every activity call, local ones too (one marker each): the bare workflow makes
            # them all as regular activities, the engine's cost of the same steps done plainly.
            activities = sum(
                1
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                or (
                    e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                    and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
                )
            )
            updates = sum(
                1
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            )
            writer_before = services.sessions.writer_use()
            with report.phase() as accord_usage, WriterHolders(services.sessions) as holders:
                accord_seconds = await bounded(
                    n, concurrency, lambda i: one_dispute(i, client, filing, actors, timings)
                )
            writer = services.sessions.writer_use().since(writer_before)
            review_n = max(1, n // 4)
            review_timings: dict[str, list[float]] = {}
            review_seconds = await bounded(
                review_n,
                concurrency,
                lambda i: one_review(i, client, filing, actors, review_timings),
            )

        bare_timings: list[float] = []
        async with Worker(
            client,
            task_queue="bare-bench",
            workflows=[BareWorkflow],
            # The engine configured as Accord's worker is: the comparison is of the work.
            workflow_runner=WORKFLOW_RUNNER,
            activities=[bare_step],
            activity_executor=ThreadPoolExecutor(16),
            max_concurrent_activities=16,
        ):

            async def one_bare(i: int) -> None:
                t0 = time.perf_counter()
                handle = await client.start_workflow(
                    BareWorkflow.run,
                    BareInput(
                        activities_before=activities // 3,
                        activities_after=activities - activities // 3,
                        updates=updates,
                    ),
                    id=f"bare-{uuid.uuid4()}",
                    task_queue="bare-bench",
                )
                await poll(lambda: handle.query(BareWorkflow.ready))
                for u in range(updates):
                    await handle.execute_update(BareWorkflow.poke, Step(n=u))
                await handle.result()
                bare_timings.append(time.perf_counter() - t0)

            with report.phase() as bare_usage:
                bare_seconds = await bounded(n, concurrency, one_bare)
    finally:
        await env.shutdown()
        bench.stop()

    report.heading(
        f"Lifecycle benchmark: {n} disputes, {concurrency} at a time, filing to settlement and close"
    )
    report.note(
        f"per dispute: {activities} activity calls, {updates} updates (the bare workflow does the same)"
    )
    report.note(f"{'stage':<22}{'p50 ms':>10}{'p95 ms':>10}")
    for name, values in timings.items():
        report.note(f"{name:<22}{pct(values, 50) * 1000:>10.0f}{pct(values, 95) * 1000:>10.0f}")
    report.note(
        f"{'bare total':<22}{pct(bare_timings, 50) * 1000:>10.0f}{pct(bare_timings, 95) * 1000:>10.0f}"
    )
    accord_rate, bare_rate = n / accord_seconds, n / bare_seconds
    acknowledged = len(review_timings.pop("acknowledged", []))
    report.heading(f"Review path: {review_n} disputes from filing to ruling (appeal window open)")
    report.note(f"{'stage':<26}{'p50 ms':>10}{'p95 ms':>10}")
    for name, values in review_timings.items():
        report.note(f"{name:<26}{pct(values, 50) * 1000:>10.0f}{pct(values, 95) * 1000:>10.0f}")
    report.note(
        f"rulings that acknowledged a divergence from precedent: {acknowledged} of {review_n}"
    )
    report.heading("Figures")
    report.figure("review path", review_n / review_seconds, "disputes/s")
    report.figure("Accord, filing to close", accord_rate, "disputes/s")
    report.figure("bare engine, same calls", bare_rate, "workflows/s")
    report.figure(
        "ratio to the bare engine (throughput)",
        accord_rate / bare_rate,
        "",
        Goal(at_least=0.8),
        digits=2,
    )
    report.figure(
        "median total / bare median total",
        statistics.median(timings["total"]) / statistics.median(bare_timings),
        "x",
        digits=2,
    )
    report.cpu("Accord", accord_usage[0], n, "settled dispute", Goal(at_most=250))
    if writer.turns:
        # What the run waits on when it is not the CPU: SQLite's one writer, held by one
        # transaction of this process at a time (accord.db).
        report.figure(
            "Accord: SQLite writer held (share of the run)",
            100 * writer.held_seconds / accord_seconds,
            "%",
        )
        report.figure(
            "Accord: SQLite writer held per settled dispute", 1000 * writer.held_seconds / n, "ms"
        )
        report.figure(
            "Accord: wait for the SQLite writer, mean",
            1000 * writer.waited_seconds / writer.turns,
            "ms",
        )
        holders.report(report)
    report.cpu("bare", bare_usage[0], n, "workflow")
    report.finish()


async def _first_number(services) -> str:  # type: ignore[no-untyped-def]
    from sqlmodel import col, select

    from models.tables import Dispute

    with services.sessions.read() as session:
        return session.exec(select(Dispute.number).order_by(col(Dispute.filed_at))).first()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disputes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    add_arguments(parser)
    args = parser.parse_args()
    asyncio.run(main(args.disputes, args.concurrency, args))
