"""The channel manager's alert queue (admins): conflict alerts found in the channel data, with
filters, each dismissed with a reason or made a dispute pre-filled from it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import select

from accord.channel import alerts
from accord.disputes import conversion
from accord.disputes.access import Viewer
from models.enums import AlertKind, AlertState, Role
from models.tables import MAX_ROW_ID, Partner
from models.text import plain_error
from web import service
from web.context import web
from web.deps import require
from web.pages.common import back, read_form, render
from web.problems import BadInput

router = APIRouter(include_in_schema=False)
AdminDep = Annotated[Viewer, Depends(require(Role.ADMIN))]


def _alert_id(alert_id: int) -> int:
    if not 0 < alert_id <= MAX_ROW_ID:
        raise BadInput([("alert", f"no alert {alert_id}")])
    return alert_id


@router.get("/admin/alerts", response_class=HTMLResponse)
def alert_queue(
    request: Request,
    viewer: AdminDep,
    kind: AlertKind | None = None,
    state: AlertState | None = AlertState.OPEN,
    partner: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        rows, total = alerts.listed(
            session, kind=kind, state=state, partner_id=partner or None, most=100
        )
        partners = session.exec(select(Partner).order_by(Partner.name)).all()
    return render(
        request,
        "alerts.html",
        viewer,
        rows=rows,
        total=total,
        kinds=list(AlertKind),
        states=list(AlertState),
        kind=kind,
        state=state,
        partner=partner or "",
        partners=[p for p in partners if p.active and not p.is_direct_sales],
        names={p.id: p.name for p in partners},
    )


@router.post("/admin/alerts/{alert_id}/dismiss", response_class=HTMLResponse)
async def dismiss(request: Request, viewer: AdminDep, alert_id: int) -> Response:
    form = await read_form(request)
    try:
        dismissal = alerts.Dismissal(reason=str(form.get("reason") or ""))
    except ValidationError as exc:
        raise BadInput([("reason", plain_error(exc.errors()[0]))]) from None
    alert = service.dismiss_alert(web(request), viewer, _alert_id(alert_id), dismissal)
    return back(request, "/admin/alerts", f"alert {alert.id} dismissed")


@router.post("/admin/alerts/{alert_id}/convert", response_class=HTMLResponse)
async def convert(request: Request, viewer: AdminDep, alert_id: int) -> Response:
    form = await read_form(request)
    claimant = str(form.get("claimant_id") or "").strip()
    if not claimant:
        raise BadInput([("claimant_id", "choose which partner files")])
    amount: Decimal | None = None
    given = str(form.get("amount_at_stake") or "").strip()
    if given:
        try:
            amount = Decimal(given)
        except InvalidOperation:
            raise BadInput([("amount_at_stake", f"is not an amount ({given[:40]!r})")]) from None
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
            raise BadInput([("amount_at_stake", "must be 0 or more, under 1,000,000,000,000")])
    filed = await service.convert_alert(
        web(request),
        viewer,
        _alert_id(alert_id),
        conversion.Conversion(claimant_id=claimant[:64], amount_at_stake=amount),
    )
    return back(request, f"/disputes/{filed.number}", f"alert {alert_id}: {filed.message}")
