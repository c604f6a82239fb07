"""The people of a chaos run: each dispute is driven down one path to its end, as its parties,
mediator and panel would, while the parts under them are being broken.

Every action is sent with an update id of its own (dispute + step), so sending it again after
a failure (a killed worker, a restarted server) picks up the first attempt, as the web app's
idempotency keys do; it is never applied twice. A refusal is a finding, not a retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from accord.disputes import texts
from accord.platform.db import SessionFactory
from models.enums import DisputeStage, VoteOutcome
from models.payloads import (
    AcceptAssignment,
    Actor,
    Appeal,
    CastVote,
    CommissionSplit,
    DeclareImpasse,
    DisputeState,
    EvidenceRef,
    FilingSubmission,
    IssueRuling,
    ProposeSettlement,
    RespondToOffer,
    UnsealBallot,
    Withdraw,
)
from workflows.dispute import DisputeWorkflow

_T = TypeVar("_T")

PAIRS = [
    ("northwind", "contoso"),
    ("fabrikam", "tailspin"),
    ("adatum", "litware"),
    ("woodgrove", "proseware"),
    ("wingtip", "relecloud"),
    ("margie", "lamna"),
]
ACK = "Acknowledged: these facts differ from the earlier cases on the registration dates."


class Path(StrEnum):
    """How a dispute of the run ends; every fourth takes the same path."""

    SETTLED = "settled"
    WITHDRAWN = "withdrawn"
    APPEAL_DENIED = "appeal_denied"
    APPEAL_UPHELD = "appeal_upheld"

    @classmethod
    def of(cls, i: int) -> Path:
        return list(cls)[i % len(cls)]

    @property
    def end(self) -> tuple[DisputeStage, str]:
        """The stage and outcome the dispute must end in."""
        return {
            Path.SETTLED: (DisputeStage.CLOSED, "settled"),
            Path.WITHDRAWN: (DisputeStage.WITHDRAWN, "withdrawn"),
            Path.APPEAL_DENIED: (DisputeStage.CLOSED, "ruled_deny"),
            Path.APPEAL_UPHELD: (DisputeStage.CLOSED, "ruled_uphold"),
        }[self]

    @property
    def remedies_applied(self) -> int:
        """How many remedies the ledger must hold for the dispute at its end."""
        return 1 if self in (Path.SETTLED, Path.APPEAL_UPHELD) else 0


class Refused(Exception):
    """The dispute turned an action of its path down: a finding of the run."""


@dataclass(frozen=True)
class Case:
    index: int
    number: str
    path: Path
    claimant: str
    respondent: str
    deal_ref: str


def submission(i: int, run: str, contacts: dict[str, str]) -> FilingSubmission:
    claimant, respondent = PAIRS[i % len(PAIRS)]
    return FilingSubmission.model_validate(
        {
            "claimant_id": claimant,
            "respondent_ids": [respondent],
            "category": "deal_registration",
            "contested_objects": [{"kind": "deal_registration", "ref": f"CH-{run}-{i}"}],
            "summary": f"Chaos dispute {run}-{i}",
            "facts": "Both partners registered the same opportunity within a week.",
            "desired_remedy": "Commission split",
            "amount_at_stake": "1000.00",
            "occurred_on": date.today().isoformat(),
            "filed_by": contacts[claimant],
        }
    )


class Driver:
    def __init__(
        self,
        client: Client,
        sessions: SessionFactory,
        actors: dict[str, Actor],
        contacts: dict[str, str],
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.actors = actors
        self.contacts = contacts
        self.retries = 0

    async def _again(self, attempt: Callable[[], Awaitable[_T]], what: str) -> _T:
        """`attempt` until the engine answers: a worker or server that is down comes back."""
        while True:
            try:
                return await attempt()
            except WorkflowUpdateFailedError:
                raise
            except (
                RPCError,
                WorkflowUpdateRPCTimeoutOrCancelledError,
                TimeoutError,
                OperationalError,  # the database is away: the adapter would fail, the person retry
            ):
                self.retries += 1
                await asyncio.sleep(0.5)

    async def act(self, case: Case, step: str, update: Any, payload: Any) -> None:
        handle = self.client.get_workflow_handle(case.number)
        # As the web app does: the texts are stored first, the workflow gets their references.
        payload = await self._again(
            lambda: asyncio.to_thread(texts.externalise, self.sessions, case.number, payload, None),
            f"{step} (storing its text)",
        )
        try:
            await self._again(
                lambda: handle.execute_update(
                    update,
                    payload,
                    id=f"chaos:{case.number}:{step}",
                    rpc_timeout=timedelta(seconds=15),
                ),
                step,
            )
        except WorkflowUpdateFailedError as refused:
            raise Refused(f"{case.number} {step}: {refused.cause}") from None

    async def state(self, case: Case) -> DisputeState:
        handle = self.client.get_workflow_handle_for(DisputeWorkflow.run, case.number)
        return await self._again(
            lambda: handle.query(DisputeWorkflow.get_state, rpc_timeout=timedelta(seconds=10)),
            "state",
        )

    async def until(
        self, case: Case, what: str, ready: Callable[[DisputeState], bool], seconds: float
    ) -> DisputeState:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            state = await self.state(case)
            if ready(state):
                return state
            if loop.time() > deadline:
                raise Refused(f"{case.number}: never {what} (stage {state.stage.value})")
            await asyncio.sleep(0.3)

    def partner(self, partner_id: str) -> Actor:
        return self.actors[self.contacts[partner_id]]

    async def drive(self, case: Case, patience: float) -> None:
        """Take the dispute down its path; returns once the last action of the path is in."""
        offered = await self.until(
            case, "offered to a mediator", lambda s: s.candidate_mediator_id is not None, patience
        )
        mediator = self.actors[offered.candidate_mediator_id or ""]
        await self.act(
            case,
            "accept",
            DisputeWorkflow.accept_assignment,
            AcceptAssignment(
                actor=mediator, impartiality_declaration="No ties to either party here."
            ),
        )
        if case.path is Path.WITHDRAWN:
            await self.act(
                case,
                "withdraw",
                DisputeWorkflow.withdraw,
                Withdraw(
                    actor=self.partner(case.claimant),
                    reason="We agreed directly with the other partner.",
                ),
            )
            return
        if case.path is Path.SETTLED:
            await self._settle(case, mediator)
            return
        await self.act(
            case,
            "impasse",
            DisputeWorkflow.declare_impasse,
            DeclareImpasse(actor=mediator, reason="Neither side will move on the split."),
        )
        await self._review_round(case, 1, VoteOutcome.UPHOLD, patience)
        await self.until(
            case, "in the appeal window", lambda s: s.stage is DisputeStage.APPEAL_WINDOW, patience
        )
        await self.act(
            case,
            "appeal",
            DisputeWorkflow.appeal,
            Appeal(
                actor=self.partner(case.respondent),
                grounds="The portal's registration date was entered wrongly by the claimant.",
                new_evidence=(EvidenceRef(description="Portal audit log", ref="DOC-991"),),
            ),
        )
        final = VoteOutcome.DENY if case.path is Path.APPEAL_DENIED else VoteOutcome.UPHOLD
        await self._review_round(case, 2, final, patience)

    def _split(self, case: Case, claimant_share: int) -> CommissionSplit:
        return CommissionSplit(
            deal_ref=case.deal_ref,
            shares={
                case.claimant: Decimal(claimant_share),
                case.respondent: Decimal(100 - claimant_share),
            },
        )

    async def _settle(self, case: Case, mediator: Actor) -> None:
        await self.act(
            case,
            "offer",
            DisputeWorkflow.propose_settlement,
            ProposeSettlement(
                actor=mediator,
                terms="An even split of the commission.",
                remedies=(self._split(case, 50),),
                divergence_acknowledgement=ACK,
            ),
        )
        state = await self.until(case, "offered a settlement", lambda s: bool(s.offers), 60)
        offer_id = state.offers[-1].id
        for side in (case.claimant, case.respondent):
            await self.act(
                case,
                f"accept-{side}",
                DisputeWorkflow.respond_to_offer,
                RespondToOffer(actor=self.partner(side), offer_id=offer_id, accept=True),
            )

    async def _review_round(
        self, case: Case, round_no: int, outcome: VoteOutcome, patience: float
    ) -> None:
        state = await self.until(
            case,
            f"given a round-{round_no} panel",
            lambda s: (
                s.review is not None
                and s.review.round == round_no
                and len(s.review.panel) >= 3
                and s.review.chair is not None
            ),
            patience,
        )
        if state.review is None or state.review.chair is None:
            raise Refused(f"{case.number}: the round-{round_no} panel went away")
        remedies = () if outcome is VoteOutcome.DENY else (self._split(case, 70),)
        voters = [m.person_id for m in state.review.panel[:3]]
        for who in voters:
            await self.act(
                case,
                f"r{round_no}-vote-{who}",
                DisputeWorkflow.cast_vote,
                CastVote(
                    actor=self.actors[who],
                    outcome=outcome,
                    remedies=remedies,
                    reasons="The first valid registration decides this under RoE 3.1.",
                ),
            )
        chair = self.actors[state.review.chair.person_id]
        if len(state.review.panel) > len(voters):
            await self.act(
                case,
                f"r{round_no}-unseal",
                DisputeWorkflow.unseal_ballot,
                UnsealBallot(actor=chair, reason="A quorum has voted; the ruling can be written."),
            )
        await self.act(
            case,
            f"r{round_no}-ruling",
            DisputeWorkflow.issue_ruling,
            IssueRuling(
                actor=chair,
                outcome=outcome,
                remedies=remedies,
                rationale="The first valid registration wins under RoE 3.1 in this case.",
                votes_relied_on=(voters[0],),
                clauses_applied=("RoE 3.1",),
                divergence_acknowledgement=ACK,
            ),
        )
