"""Every action the web and the API offer on a dispute: one table, one way to perform it.

Each operation is a workflow update; its payload class is the API's request body minus the
actor (the signed-in user). The workflow's validators decide whether the action is allowed,
so the web, the API and the CLI see the same refusals.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from accord.platform.db import SessionFactory
from models.enums import Action
from models.payloads import (
    AcceptAssignment,
    ActionPayload,
    ActionResult,
    Actor,
    AddNote,
    AnswerInformation,
    Appeal,
    AssignMediator,
    CastVote,
    DeclareImpasse,
    Dismiss,
    ExtendDeadline,
    IssueRuling,
    ProposeSettlement,
    Recuse,
    RedrawPanel,
    RequestInformation,
    RespondToOffer,
    RetryRemedy,
    UnsealBallot,
    WaiveRemedy,
    Withdraw,
)
from models.tables import Dispute
from workflows.dispute import DisputeWorkflow


class Refused(Exception):
    """The workflow refused the action (its validator said why); nothing was recorded.
    `kind` is the failure's type (`ValueError` for a validator's rule, or a named
    refusal such as `StaleAction`): what says whether the text was written for a user."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class DisputeGone(Exception):
    """No workflow answers for this dispute: never filed (or its history was removed), or
    closed, so it takes no more actions. Said as its reader would: never the engine's words."""

    def __init__(self, number: str, *, closed: bool = False) -> None:
        super().__init__(number)
        self.number = number
        self.closed = closed

    def __str__(self) -> str:
        if self.closed:
            return f"{self.number} is closed; nothing was changed"
        return f"no dispute {self.number}"

    def known(self, sessions: SessionFactory) -> DisputeGone:
        """Said with what the database knows: a dispute on record whose workflow no longer
        takes actions is closed (the engine says 'not found' for both)."""
        if self.closed:
            return self
        try:
            with sessions.read() as session:
                recorded = session.get(Dispute, self.number) is not None
        except SQLAlchemyError:  # said without the database's help, then
            return self
        return DisputeGone(self.number, closed=recorded)

    @classmethod
    def from_rpc(cls, error: RPCError, number: str) -> DisputeGone | None:
        """The engine's 'not found' for this dispute's workflow, as what it means, or None."""
        if error.status is not RPCStatusCode.NOT_FOUND:
            return None
        return cls(number, closed="already completed" in (error.message or ""))


class StillApplying(Exception):
    """The action was not finished within the wait: it is being applied (or, when not yet
    accepted, waiting for the workflow to take it up). Sending it again with the same update
    id picks it up; it is never applied twice."""

    def __init__(self, number: str, update_id: str, *, accepted: bool) -> None:
        super().__init__(
            "accepted and still being applied"
            if accepted
            else "sent, and not yet taken up by the dispute"
        )
        self.number = number
        self.update_id = update_id
        self.accepted = accepted


IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,100}")
"""An idempotency key: 1 to 100 visible ASCII characters (what an HTTP header carries)."""
IDEMPOTENCY_KEY_RULE = "1 to 100 visible ASCII characters, no spaces"


def new_key() -> str:
    """A fresh idempotency key: each rendered form carries one, so a double submit is one action."""
    return str(uuid.uuid4())


def update_id(action: Action, actor: Actor, key: str, *, fingerprint: str) -> str:
    """The workflow update id for someone's idempotency key and request. Temporal applies an
    update id once per dispute. The hash covers the action, the actor, the key and the
    request's fingerprint, each a separate JSON string (no '/' in an id or a key can make two
    people's ids equal), so the same key from two people or for two actions never names the
    same update, and a request refused under a key leaves it free for a different one. The
    key is repeated at the end for whoever reads the history."""
    parts = json.dumps([action.value, actor.id, key, fingerprint])
    return f"{action.value}/{hashlib.sha256(parts.encode()).hexdigest()}/{key}"


@dataclass(frozen=True)
class Operation:
    action: Action
    label: str
    payload: type[ActionPayload]
    update: Any
    body: type[BaseModel]

    @property
    def slug(self) -> str:
        return self.action.value.replace("_", "-")


def request_model(
    payload: type[BaseModel], without: tuple[str, ...] = ("actor",)
) -> type[BaseModel]:
    """The payload's fields minus those the server fills in: what an API client sends. The
    field constraints carry over, so the OpenAPI document shows them. A text the payload takes
    inline or as a stored text's reference (`<name>_ref`, filled in by the server after storing
    it, `accord.disputes.texts`) is required inline here, and the reference is not offered."""
    stored = {name.removesuffix("_ref") for name in payload.model_fields if name.endswith("_ref")}
    fields: dict[str, Any] = {}
    for name, info in payload.model_fields.items():
        if name in without or (name.removesuffix("_ref") in stored and name.endswith("_ref")):
            continue
        if name in stored:
            inline = next(a for a in get_args(info.annotation) if a is not type(None))
            fields[name] = (inline, Field(description=info.description))
            continue
        fields[name] = (info.annotation, info)
    name = payload.__name__ + "Request"
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid", frozen=True), **fields
    )
    model.__doc__ = payload.__doc__ or f"Body of the {payload.__name__} action."
    return model


def _op(action: Action, label: str, payload: type[ActionPayload], update: Any) -> Operation:
    return Operation(action, label, payload, update, request_model(payload))


W = DisputeWorkflow
OPERATIONS: dict[Action, Operation] = {
    op.action: op
    for op in (
        _op(Action.ACCEPT_ASSIGNMENT, "Accept assignment", AcceptAssignment, W.accept_assignment),
        _op(Action.RECUSE, "Recuse", Recuse, W.recuse),
        _op(Action.ADD_NOTE, "Add note", AddNote, W.add_note),
        _op(
            Action.REQUEST_INFORMATION,
            "Request information",
            RequestInformation,
            W.request_information,
        ),
        _op(Action.ANSWER_INFORMATION, "Answer", AnswerInformation, W.answer_information),
        _op(
            Action.PROPOSE_SETTLEMENT, "Propose settlement", ProposeSettlement, W.propose_settlement
        ),
        _op(Action.RESPOND_TO_OFFER, "Respond to offer", RespondToOffer, W.respond_to_offer),
        _op(Action.DECLARE_IMPASSE, "Declare impasse", DeclareImpasse, W.declare_impasse),
        _op(Action.DISMISS, "Dismiss", Dismiss, W.dismiss),
        _op(Action.WITHDRAW, "Withdraw", Withdraw, W.withdraw),
        _op(Action.EXTEND_DEADLINE, "Extend deadline", ExtendDeadline, W.extend_deadline),
        _op(Action.ASSIGN_MEDIATOR, "Reassign mediator", AssignMediator, W.assign_mediator),
        _op(Action.RETRY_REMEDY, "Retry remedy", RetryRemedy, W.retry_remedy),
        _op(Action.WAIVE_REMEDY, "Waive remedy", WaiveRemedy, W.waive_remedy),
        _op(Action.CAST_VOTE, "Cast sealed vote", CastVote, W.cast_vote),
        _op(Action.ISSUE_RULING, "Issue ruling", IssueRuling, W.issue_ruling),
        _op(Action.APPEAL, "Appeal", Appeal, W.appeal),
        _op(Action.REDRAW_PANEL, "Redraw panel", RedrawPanel, W.redraw_panel),
        _op(Action.UNSEAL_BALLOT, "Open the ballot", UnsealBallot, W.unseal_ballot),
    )
}

BY_SLUG = {op.slug: op for op in OPERATIONS.values()}


async def perform(
    client: Client,
    number: str,
    payload: ActionPayload,
    update: Any,
    *,
    update_id: str | None = None,
    wait_seconds: float | None = None,
) -> ActionResult:
    """Apply one action: once per `update_id` (a new one when None), the same id again
    answering with the first one's result. With `wait_seconds`, raise StillApplying when
    the action is not done by then; without, wait for it to be done."""
    handle = client.get_workflow_handle_for(DisputeWorkflow.run, number)
    ident = update_id or new_key()
    accepted = False

    async def apply() -> ActionResult:
        nonlocal accepted
        # Accepted: the validator passed and the update is in the history (or was already,
        # under this id); then its result, which the first call's handler decides.
        started = await handle.start_update(
            update, payload, id=ident, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        accepted = True
        result: ActionResult = await started.result()
        return result

    try:
        if wait_seconds is None:
            return await apply()
        async with asyncio.timeout(wait_seconds) as deadline:
            return await apply()
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The client turns the cancellation of its RPC into its own error: the deadline
        # says whether it was ours.
        if wait_seconds is not None and deadline.expired():
            raise StillApplying(number, ident, accepted=accepted) from None
        raise
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Refused(
            getattr(cause, "message", None) or str(cause),
            getattr(cause, "type", None) or type(cause).__name__,
        ) from None
    except RPCError as exc:
        gone = DisputeGone.from_rpc(exc, number)
        if gone is not None:
            raise gone from None
        raise


def build_payload(op: Operation, actor: Actor, data: dict[str, Any]) -> ActionPayload:
    """Validate the user's fields into the action's payload (raises pydantic's ValidationError).
    The request's own model first: what the server fills in (a stored text's reference) is
    refused from outside, and a text is required."""
    # An empty reference (a payload's own dump) is no reference: the text is still required.
    given = {k: v for k, v in data.items() if not (k.endswith("_ref") and v is None)}
    op.body.model_validate(given)
    return op.payload.model_validate({**given, "actor": actor})
