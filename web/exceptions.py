"""Exceptions to the rules of engagement (accord.governance.exceptions), as the web serves them:
the JSON API under /api/exceptions, and what its routes share with the pages (web.pages.
exceptions): who may read which, the core's refusals as the web answers them, and the forms a
viewer may use on one exception.

Who reads: the board, compliance and admins every exception; a partner those it asked for or
that affect it (any other is answered 404, as if it did not exist); mediators none (403).
Who acts is the service's question (the directory now, then the workflow's rules).

How a refusal is answered: a request the playbook or the channel data refuses is 422 naming
the field and the rule (`clause`, `until`, `territory`, ...); an action the workflow refuses,
because of who acts or because the exception's state no longer allows it (two chairs deciding
at once: the second finds it decided), is 409, the field `action`; an ended role is 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import Session
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from accord.application import build_exceptions
from accord.channel import exceptions
from accord.channel.exceptions import ExceptionRefused, ExceptionRequest
from accord.disputes.access import Viewer
from accord.governance.exceptions import (
    ACTIONS,
    ExceptionForbidden,
    ExceptionService,
    insider,
    visible_to,
)
from accord.precedents import exceptions as decided
from accord.rules.consistency import clause_ref
from models.enums import ExceptionState, Role
from models.payloads import ExceptionView
from models.tables import ChannelException, ExceptionEvent, may_be_row_id
from web.context import WebContext, web
from web.deps import require
from web.forms import field_errors
from web.problems import PROBLEM_RESPONSES, BadInput, Forbidden
from web.views import NotFound

READERS = (Role.PARTNER, Role.BOARD, Role.COMPLIANCE, Role.ADMIN)
router = APIRouter(prefix="/api/exceptions", responses=PROBLEM_RESPONSES, tags=["exceptions"])
ReaderDep = Annotated[Viewer, Depends(require(*READERS))]


class ExceptionDeclined(BadInput):
    """An action the exception's workflow refuses: who acts may not, or its state changed."""

    status = 409
    title = "Action refused"
    kind = "refused"


def service_for(ctx: WebContext) -> ExceptionService:
    return build_exceptions(ctx.services, ctx.temporal())


def answered(exc: Exception) -> Exception:
    """The core's refusal as the web answers it (see the module's docstring)."""
    if isinstance(exc, ExceptionRefused):
        if exc.field == "action":
            return ExceptionDeclined([("action", exc.message)])
        return BadInput([(exc.field, exc.message)])
    if isinstance(exc, ValidationError):
        return BadInput(field_errors(exc))
    if isinstance(exc, ExceptionForbidden):
        return Forbidden(str(exc))
    if isinstance(exc, LookupError):  # ExceptionNotFound among them
        return NotFound(str(exc))
    return exc


def listed_for(
    ctx: WebContext,
    viewer: Viewer,
    *,
    state: ExceptionState | None,
    partner_id: str | None,
    clause: str | None,
    most: int = 100,
    skip: int = 0,
) -> tuple[list[ChannelException], int]:
    """The exceptions this viewer reads that match the filters, newest first, and how many."""
    with ctx.services.sessions.read() as session:
        if viewer.role is not Role.PARTNER:
            return exceptions.listed(
                session, state=state, partner_id=partner_id, clause=clause, most=most, skip=skip
            )
        # A partner reads its own and those affecting it; its filter narrows within them.
        rows, _ = exceptions.listed(
            session,
            state=state,
            partner_id=viewer.actor.partner_id,
            clause=clause,
            most=1_000_000,
        )
    if partner_id is not None:
        rows = [r for r in rows if partner_id in (r.partner_id, *r.affected_partner_ids)]
    return rows[skip : skip + most], len(rows)


SEARCH_SHOWN = 50
"""The decided exceptions the precedent search lists beside its precedents: the newest
decisions (the total says how many more match)."""


def search_decided(
    session: Session, viewer: Viewer, *, q: str, clause: str | None, state: ExceptionState | None
) -> dict[str, Any] | None:
    """The board's decided exceptions the precedent search's words, clause and state find,
    for the roles that read the board's reasons (accord.precedents.exceptions.READERS); None
    for every other role, who is shown nothing of them, not even that they were searched."""
    if viewer.role not in decided.READERS:
        return None
    query = decided.ExceptionQuery(q=q, clause=clause, state=state)
    found = decided.search_exceptions(session, query, role=viewer.role, limit=SEARCH_SHOWN)
    return {
        "total": found.total,
        "hits": [
            {
                "id": h.id,
                "number": h.number,
                "url": f"/exceptions/{h.id}",
                "partner_id": h.partner_id,
                "partner": h.partner_name,
                "clause": h.clause,
                "clause_ref": clause_ref(h.clause),
                "scope_kind": h.scope_kind,
                "scope_ref": h.scope_ref,
                "state": h.state.value,
                "until": h.until,
                "requested_at": h.requested_at,
                "decided_at": h.decided_at,
                "decision_reason": h.decision_reason,
            }
            for h in found.hits
        ],
        "notes": list(found.notes),
    }


def json_ready(values: dict[str, Any]) -> dict[str, Any]:
    """One hit with its dates and times as ISO 8601 text."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}


@dataclass(frozen=True)
class ExceptionFile:
    """One exception as one viewer reads it."""

    row: ChannelException
    history: list[dict[str, Any]]
    view: ExceptionView | None
    """The workflow's own view (votes sealed until the ballot opens); None once it ended or
    when the workflow did not answer."""
    insider: bool = True
    partner_id: str | None = None
    """Who reads it: the board's matters are left out for a partner (`summary`)."""


def _row(
    ctx: WebContext, viewer: Viewer, exception_id: int
) -> tuple[ChannelException, list[ExceptionEvent]]:
    if not may_be_row_id(exception_id):
        raise NotFound(f"no exception {exception_id}")
    with ctx.services.sessions.read() as session:
        row = session.get(ChannelException, exception_id)
        if row is None or not visible_to(row, viewer.actor):
            raise NotFound(f"no exception {exception_id}")
        return row, exceptions.history(session, exception_id)


async def read_one(ctx: WebContext, viewer: Viewer, exception_id: int) -> ExceptionFile:
    row, trail = _row(ctx, viewer, exception_id)
    inside = insider(viewer.actor)
    view: ExceptionView | None = None
    if row.state.is_open:
        try:
            view = await service_for(ctx).state(exception_id)
        except (RPCError, WorkflowQueryFailedError, RuntimeError):
            view = None  # the read model still answers; the live view is a bonus
    if view is not None and not inside:
        # The board's own matters: who sits (by address), who voted, how.
        view = view.model_copy(update={"votes": (), "voted": (), "panel": (), "chair": None})
    return ExceptionFile(
        row,
        [exceptions.event_view(e, insider=inside) for e in trail],
        view,
        inside,
        viewer.actor.partner_id,
    )


def file_out(found: ExceptionFile) -> dict[str, Any]:
    return {
        **exceptions.summary(found.row, insider=found.insider, partner_id=found.partner_id),
        "history": found.history,
        "live": found.view.model_dump(mode="json") if found.view is not None else None,
    }


async def request_exception(
    ctx: WebContext, viewer: Viewer, request: ExceptionRequest
) -> ChannelException:
    try:
        return await service_for(ctx).request(request, viewer.actor)
    except (ExceptionRefused, ExceptionForbidden, ValidationError, LookupError) as exc:
        raise answered(exc) from None


async def act(
    ctx: WebContext, viewer: Viewer, exception_id: int, action: str, data: dict[str, Any]
) -> dict[str, Any]:
    if action not in ACTIONS or not may_be_row_id(exception_id):
        raise NotFound(f"no action {action} on exception {exception_id}")
    _row(ctx, viewer, exception_id)  # a partner not named learns nothing, not even a 403
    try:
        done = await service_for(ctx).act(exception_id, action, viewer.actor, data)
    except (ExceptionRefused, ExceptionForbidden, ValidationError, LookupError) as exc:
        raise answered(exc) from None
    return done.model_dump(mode="json")


def forms_for(viewer: Viewer, row: ChannelException, view: ExceptionView | None) -> list[str]:
    """The actions whose forms this viewer sees on the exception now (the workflow still has
    the last word on each)."""
    actor = viewer.actor
    shown: list[str] = []
    if not row.state.is_open:
        return shown
    if view is not None:
        if (
            actor.role is Role.PARTNER
            and view.objections_open
            and actor.partner_id in row.affected_partner_ids
            and actor.partner_id not in view.objected
        ):
            shown.append("object")
        members = {m.person_id for m in view.panel}
        if (
            actor.role is Role.BOARD
            and not view.ballot_open
            and actor.id in members
            and actor.id not in view.voted
        ):
            shown.append("vote")
        if (
            actor.role is Role.BOARD
            and view.ballot_open
            and view.chair is not None
            and view.chair.person_id == actor.id
        ):
            shown.append("decide")
        if actor.role is Role.ADMIN and view.awaiting_panel:
            shown.append("redraw")
    if (actor.role is Role.PARTNER and actor.partner_id == row.partner_id) or (
        actor.role is Role.ADMIN
    ):
        shown.append("withdraw")
    return shown


# --- the API ------------------------------------------------------------------------------------


class ExceptionActionBody(BaseModel):
    """An action's fields: `reason` (object, decide, withdraw, redraw), `choice` (vote and
    decide: approve or deny), `reasons` (vote)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reason: str | None = None
    choice: str | None = None
    reasons: str | None = None


@router.post("", status_code=201)
async def request_one(
    request: Request, viewer: ReaderDep, body: ExceptionRequest
) -> dict[str, Any]:
    """Ask the board for an exception: a partner for itself, an admin for any partner. 422
    naming the field and the rule when the playbook or the channel data refuses it."""
    row = await request_exception(web(request), viewer, body)
    return exceptions.summary(
        row, insider=insider(viewer.actor), partner_id=viewer.actor.partner_id
    )


@router.get("")
def list_exceptions(
    request: Request,
    viewer: ReaderDep,
    state: ExceptionState | None = None,
    partner_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    clause: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Exceptions you read, newest first: by state, partner (asking or affected) and clause."""
    rows, total = listed_for(
        web(request),
        viewer,
        state=state,
        partner_id=partner_id,
        clause=clause,
        most=limit,
        skip=offset,
    )
    inside = insider(viewer.actor)
    shown = [
        exceptions.summary(r, insider=inside, partner_id=viewer.actor.partner_id) for r in rows
    ]
    return {"exceptions": shown, "total": total}


@router.get("/{exception_id}")
async def one_exception(request: Request, viewer: ReaderDep, exception_id: int) -> dict[str, Any]:
    """One exception, its audit history as you may read it, and `live`, the workflow's
    view while it is open (votes sealed until the ballot opens)."""
    return file_out(await read_one(web(request), viewer, exception_id))


@router.post("/{exception_id}/{action}")
async def act_on(
    request: Request,
    viewer: ReaderDep,
    exception_id: int,
    action: str,
    body: ExceptionActionBody,
) -> dict[str, Any]:
    """object, vote, decide, withdraw or redraw. 409 (field `action`) when the exception's
    rules refuse it now; 403 when your role ended; 422 naming a field of the body."""
    data = body.model_dump(exclude_none=True)
    return await act(web(request), viewer, exception_id, action, data)
