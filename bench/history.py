"""History-size benchmark: one busy dispute, its texts inline in the history and stored.

    make bench-history
    python -m bench.history --notes 200 --evidence 50 --replies 500 --reply-kb 49

Drives one dispute on a real dev server and worker: filing, mediation with `--notes` notes
(2 KB), `--evidence` evidence files and `--replies` email replies of `--reply-kb` KB, an
impasse, a panel's three votes and ruling, an appeal, the fresh panel's votes and final ruling,
the remedies and the close. It does so twice on the same code: once with every text inline in
the updates (how every adapter sent them before texts were stored, and how histories from then
still carry them), once with the texts stored first (`accord.disputes.texts.externalise`, what the web,
the CLI and the intake do now). Prints, for each, the history's events and bytes (over every run,
when the dispute continued as new, and of the largest run), and whether Temporal ended the
dispute (its limit is 50 MB or 51,200 events per run).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from accord.application import Services, build_filing
from accord.directory.records import Directory, PersonRecord, import_directory, resolve_actor
from accord.disputes import evidence as uploads
from accord.disputes import texts
from accord.runtime.wiring import build_worker
from bench.common import BenchStack
from bench.lifecycle import PAIRS, poll, submission
from models.enums import DisputeStage, EvidenceVisibility, Role, VoteOutcome
from models.payloads import (
    AcceptAssignment,
    ActionPayload,
    Actor,
    AddEvidence,
    AddMessage,
    AddNote,
    Appeal,
    CastVote,
    CommissionSplit,
    DeclareImpasse,
    EvidenceRef,
    IssueRuling,
    MailMessage,
    UnsealBallot,
)
from workflows.dispute import DisputeWorkflow

ALTERNATES = ("sales", "marketing", "product", "finance", "partner_management", "chair")


def filler(size: int, seed: str) -> str:
    line = f"{seed}: as set out in our earlier mail, the registration stands as filed. "
    return (line * (size // len(line) + 1))[:size].strip()


class Driver:
    def __init__(self, client: Client, services: Services, number: str, stored: bool) -> None:
        self.client = client
        self.services = services
        self.number = number
        self.stored = stored
        self.handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(number)

    def actor(self, login: str) -> Actor:
        with self.services.sessions.read() as session:
            return resolve_actor(session, login)

    async def act(self, update: Any, payload: ActionPayload) -> Any:
        if self.stored:
            payload = texts.externalise(self.services.sessions, self.number, payload, None)
        return await self.handle.execute_update(update, payload)

    async def state(self) -> Any:
        return await self.handle.query(DisputeWorkflow.get_state)


async def busy_dispute(
    client: Client, services: Services, i: int, args: argparse.Namespace, stored: bool
) -> tuple[str, str]:
    """Drive one dispute as far as it goes; returns its number and how it ended."""
    filing = build_filing(services, client)
    # Northwind against Contoso each time; its own deal, so it is never linked to the other.
    contacts = {"northwind": "nora@northwind.example"}
    result = await filing.file(submission(0, f"DR-HIST-{i}", {"contacts": contacts}))
    d = Driver(client, services, result.number, stored)
    claimant, respondent = PAIRS[0]
    mediator_id = await poll(lambda: _candidate(d))
    mediator = d.actor(mediator_id)
    try:
        await d.act(
            DisputeWorkflow.accept_assignment,
            AcceptAssignment(actor=mediator, impartiality_declaration="No ties to either party."),
        )
        for n in range(args.notes):
            await d.act(
                DisputeWorkflow.add_note, AddNote(actor=mediator, text=filler(2_000, f"note {n}"))
            )
        nora = d.actor("nora@northwind.example")
        carl = d.actor("carl@contoso.example")
        for n in range(args.evidence):
            item = uploads.store(
                services.sessions,
                uploads.Upload(
                    filename=f"exhibit-{n}.txt",
                    content_type="text/plain",
                    data=f"exhibit {n} of {result.number} {stored}".encode(),
                ),
                description=f"Exhibit {n}",
                visibility=EvidenceVisibility.PARTIES,
                side_partner_id=None,
            )
            await d.act(DisputeWorkflow.add_evidence, AddEvidence(actor=nora, evidence=item))
        for n in range(args.replies):
            sender = carl if n % 2 else nora
            await d.act(
                DisputeWorkflow.add_message,
                AddMessage(
                    actor=sender,
                    message=MailMessage(
                        inbound_id=1_000_000 * (i + 1) + n,
                        sender=sender.id,
                        subject=f"Re: [{result.number}] reply {n}",
                        text=filler(args.reply_kb * 1_000, f"reply {n}"),
                        side_partner_id=sender.partner_id,
                    ),
                ),
            )
        await d.act(
            DisputeWorkflow.declare_impasse,
            DeclareImpasse(actor=mediator, reason="Neither side will move."),
        )
        split = CommissionSplit(
            deal_ref=f"DR-HIST-{i}", shares={claimant: Decimal(70), respondent: Decimal(30)}
        )
        await review_round(d, 1, split)
        await poll(lambda: _stage(d, DisputeStage.APPEAL_WINDOW))
        await d.act(
            DisputeWorkflow.appeal,
            Appeal(
                actor=carl,
                grounds="The registration date in the portal was entered wrongly by Northwind.",
                new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
            ),
        )
        await review_round(d, 2, split)
        await d.handle.result()
    except Exception as failure:
        return result.number, _ended(failure)
    return result.number, "closed"


async def review_round(d: Driver, round_no: int, split: CommissionSplit) -> None:
    review = await poll(lambda: _review(d, round_no))
    voters = [m.person_id for m in review.panel][:3]
    for who in voters:
        await d.act(
            DisputeWorkflow.cast_vote,
            CastVote(
                actor=d.actor(who),
                outcome=VoteOutcome.UPHOLD,
                remedies=(split,),
                reasons=filler(3_000, f"vote of {who} in round {round_no}"),
            ),
        )
    chair = d.actor(review.chair.person_id)
    await d.act(
        DisputeWorkflow.unseal_ballot, UnsealBallot(actor=chair, reason="A quorum has voted.")
    )
    await d.act(
        DisputeWorkflow.issue_ruling,
        IssueRuling(
            actor=chair,
            outcome=VoteOutcome.UPHOLD,
            remedies=(split,),
            rationale=filler(10_000, f"ruling of round {round_no}"),
            votes_relied_on=tuple(voters),
            clauses_applied=("RoE 3.1",),
        ),
    )


async def _candidate(d: Driver) -> str | None:
    candidate: str | None = (await d.state()).candidate_mediator_id
    return candidate


async def _stage(d: Driver, stage: DisputeStage) -> bool:
    return bool((await d.state()).stage is stage)


async def _review(d: Driver, round_no: int) -> Any:
    state = await d.state()
    review = state.review
    if review is None or review.round != round_no or review.chair is None:
        return None
    return review if len(review.panel) >= 3 else None


def _ended(failure: BaseException) -> str:
    text = str(getattr(failure, "cause", None) or failure)
    return f"failed: {type(failure).__name__}: {text[:160]}"


async def measure(client: Client, number: str) -> tuple[int, int, int, int, str]:
    """Events and bytes of every run of the dispute (a run continued as new names the one
    before), the largest run's bytes, the number of runs, and the last run's status."""
    handle = client.get_workflow_handle(number)
    status = (await handle.describe()).status
    name = status.name if isinstance(status, WorkflowExecutionStatus) else str(status)
    events = size = largest = runs = 0
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(number, run_id=run_id).fetch_history()
        run_size = sum(len(event.SerializeToString()) for event in history.events)
        events, size, largest, runs = (
            events + len(history.events),
            size + run_size,
            max(largest, run_size),
            runs + 1,
        )
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return events, size, largest, runs, name


def seed_alternates(services: Services) -> None:
    """A second board, so the appeal finds a fresh panel."""
    with services.sessions.begin() as session:
        import_directory(
            session,
            Directory(
                people=[
                    PersonRecord(
                        id=f"alt.{f}",
                        name=f"Alt {f.title()}",
                        email=f"alt.{f}@vendor.example",
                        role=Role.BOARD,
                        calendar="US-NY",
                        function=f,
                    )
                    for f in ALTERNATES
                ]
            ),
        )


async def main(args: argparse.Namespace) -> None:
    bench = BenchStack("history", task_queue="accord-history-bench")
    services = bench.seed(case_limit=10_000)
    seed_alternates(services)
    env = await bench.temporal(
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"
    )
    rows: list[tuple[str, int, int, int, int, str, str, float]] = []
    try:
        async with build_worker(env.client, services, "accord-history-bench"):
            for i, (label, stored) in enumerate(
                (("texts inline (before)", False), ("texts stored (now)", True))
            ):
                start = time.perf_counter()
                number, ended = await busy_dispute(env.client, services, i, args, stored)
                seconds = time.perf_counter() - start
                try:
                    events, size, largest, runs, status = await measure(env.client, number)
                except RPCError as failure:
                    events, size, largest, runs = 0, 0, 0, 0
                    status = f"history unreadable: {failure}"
                rows.append((label, events, size, largest, runs, status, ended, seconds))
    finally:
        await env.shutdown()
        bench.stop()
    print(
        f"\nHistory of one busy dispute: {args.notes} notes (2 KB), {args.evidence} evidence "
        f"files, {args.replies} replies of {args.reply_kb} KB, review, appeal, final ruling"
    )
    print(
        f"{'texts':<24}{'events':>8}{'bytes':>14}{'largest run':>14}{'runs':>6}  "
        f"{'workflow':<12}{'seconds':>8}  dispute"
    )
    for label, events, size, largest, runs, status, ended, seconds in rows:
        print(
            f"{label:<24}{events:>8}{size:>14,}{largest:>14,}{runs:>6}  "
            f"{status:<12}{seconds:>8.0f}  {ended}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--evidence", type=int, default=50)
    parser.add_argument("--replies", type=int, default=500)
    parser.add_argument("--reply-kb", type=int, default=49)
    asyncio.run(main(parser.parse_args()))
