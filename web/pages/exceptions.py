"""Exceptions to the rules of engagement, as pages: the list (filters, and the request form for
partners and admins) and one exception (its audit history as the viewer may read it, and the
forms the viewer may use now). The same audiences and refusals as the API (web.exceptions); a
refused form comes back with the reason next to it and what was typed kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import select

from accord.channel.exceptions import ExceptionRequest
from accord.disputes.access import Viewer
from models.enums import ExceptionChoice, ExceptionState, Role
from models.tables import Partner
from web.context import web
from web.deps import require
from web.exceptions import (
    READERS,
    ExceptionDeclined,
    act,
    forms_for,
    listed_for,
    read_one,
    request_exception,
)
from web.forms import field_errors
from web.pages.common import back, read_form, render
from web.problems import BadInput

router = APIRouter(include_in_schema=False)
ReaderDep = Annotated[Viewer, Depends(require(*READERS))]
REQUEST_FIELDS = ("partner_id", "clause", "account", "territory", "until", "reason")
ACTION_FIELDS = {
    "object": ("reason",),
    "vote": ("choice", "reasons"),
    "decide": ("choice", "reason"),
    "withdraw": ("reason",),
    "redraw": ("reason",),
}


def _by_field(errors: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for field, message in errors:
        grouped.setdefault(field.split(".")[0], []).append(message)
    return grouped


def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    state: ExceptionState | None = None,
    partner: str = "",
    clause: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    ctx = web(request)
    rows, total = listed_for(
        ctx, viewer, state=state, partner_id=partner or None, clause=clause or None
    )
    with ctx.services.sessions.read() as session:
        partners = session.exec(select(Partner).order_by(Partner.name)).all()
    own = viewer.actor.partner_id
    return render(
        request,
        "exceptions.html",
        viewer,
        status=status,
        rows=rows,
        total=total,
        states=list(ExceptionState),
        state=state,
        partner=partner,
        clause=clause,
        may_request=viewer.role in (Role.PARTNER, Role.ADMIN),
        requesters=[
            p
            for p in partners
            if p.active and not p.is_direct_sales and (viewer.role is Role.ADMIN or p.id == own)
        ],
        names={p.id: p.name for p in partners},
        values=values or {"partner_id": own or ""},
        errors=errors or {},
    )


@router.get("/exceptions", response_class=HTMLResponse)
def exception_list(
    request: Request,
    viewer: ReaderDep,
    state: ExceptionState | None = None,
    partner: Annotated[str | None, Query(max_length=64)] = None,
    clause: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return _list_page(request, viewer, state=state, partner=partner or "", clause=clause or "")


@router.post("/exceptions", response_class=HTMLResponse)
async def request_one(request: Request, viewer: ReaderDep) -> Response:
    form = await read_form(request)
    values = {k: str(form.get(k) or "").strip() for k in REQUEST_FIELDS}
    data: dict[str, Any] = {k: v for k, v in values.items() if v}
    try:
        try:
            asked = ExceptionRequest.model_validate(data)
        except ValidationError as exc:
            raise BadInput(field_errors(exc)) from None
        row = await request_exception(web(request), viewer, asked)
    except BadInput as exc:
        return _list_page(
            request, viewer, values=values, errors=_by_field(exc.errors), status=exc.status
        )
    return back(request, f"/exceptions/{row.id}", f"EXC-{row.id} requested: {row.state.value}")


async def _exception_page(
    request: Request,
    viewer: Viewer,
    exception_id: int,
    *,
    failed: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    ctx = web(request)
    found = await read_one(ctx, viewer, exception_id)
    with ctx.services.sessions.read() as session:
        names = {p.id: p.name for p in session.exec(select(Partner)).all()}
    return render(
        request,
        "exception.html",
        viewer,
        status=status,
        e=found.row,
        history=found.history,
        view=found.view,
        forms=forms_for(viewer, found.row, found.view),
        choices=list(ExceptionChoice),
        names=names,
        failed=failed,
        values=values or {},
        errors=errors or {},
    )


@router.get("/exceptions/{exception_id}", response_class=HTMLResponse)
async def exception_page(request: Request, viewer: ReaderDep, exception_id: int) -> Response:
    return await _exception_page(request, viewer, exception_id)


@router.post("/exceptions/{exception_id}/{action}", response_class=HTMLResponse)
async def act_on(request: Request, viewer: ReaderDep, exception_id: int, action: str) -> Response:
    form = await read_form(request)
    fields = ACTION_FIELDS.get(action, ())
    values = {k: str(form.get(k) or "").strip() for k in fields}
    try:
        done = await act(
            web(request), viewer, exception_id, action, {k: v for k, v in values.items() if v}
        )
    except BadInput as exc:
        # Back to the same form, the reason next to it (a refused action is 409, bad input 422).
        errors = _by_field(exc.errors)
        if isinstance(exc, ExceptionDeclined):
            errors = {"form": [m for ms in errors.values() for m in ms]}
        return await _exception_page(
            request,
            viewer,
            exception_id,
            failed=action,
            values=values,
            errors=errors,
            status=exc.status,
        )
    return back(request, f"/exceptions/{exception_id}", f"{action}: {done['message']}")
