"""Compliance and admin pages: audit trails, exports, the directory and the playbook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from accord.disputes.access import Viewer
from accord.reports import exports
from accord.reports.exceptions import ExceptionCount
from accord.reports.exports import DateRange, OrderedDateRange
from models.enums import AlertState, ExceptionState, InboundState, PartnerTier, Role
from models.tables import Partner, PartnerContact, Person, Territory
from web import service
from web.charts import health_charts, report_charts
from web.context import web
from web.deps import require
from web.pages.common import (
    ViewerDep,
    back,
    query_form,
    read_form,
    read_uploads,
    render,
    validated,
)
from web.pages.disputes import FiltersDep
from web.problems import BadInput
from web.views import NotFound

router = APIRouter(include_in_schema=False)


# --- compliance -----------------------------------------------------------------------------------


@router.get("/disputes/{number}/audit", response_class=HTMLResponse)
def audit(request: Request, viewer: ViewerDep, number: str) -> Response:
    ctx = web(request)
    events, broken = service.audit_trail(ctx, viewer, number)
    bodies = service.trail_texts(ctx, events)
    return render(
        request, "audit.html", viewer, number=number, events=events, broken=broken, texts=bodies
    )


@router.get("/disputes/{number}/audit.{fmt}")
def audit_export(request: Request, viewer: ViewerDep, number: str, fmt: str) -> Response:
    return _export(
        fmt, f"{number}-audit", lambda: service.export_audit(web(request), viewer, number, fmt)
    )


def _period(request: Request) -> DateRange:
    """The from/to fields of an export form; a field left empty leaves that end open."""
    return query_form(request, DateRange)


def _export(fmt: str, filename: str, build: Callable[[], str]) -> Response:
    """An export as a CSV or JSON download; any other format is not a page."""
    if fmt not in ("csv", "json"):
        raise NotFound(f"format {fmt}")
    return service.export_response(build(), f"{filename}.{fmt}", fmt)


@router.get("/exports/precedents.{fmt}")
def precedents_export(
    request: Request, viewer: ViewerDep, fmt: str, period: Annotated[DateRange, Depends(_period)]
) -> Response:
    return _export(
        fmt, "precedents", lambda: service.export_precedents(web(request), viewer, period, fmt)
    )


@router.get("/reports/sla", response_class=HTMLResponse)
def sla_report(
    request: Request, viewer: ViewerDep, period: Annotated[DateRange, Depends(_period)]
) -> Response:
    report = service.sla_report(web(request), viewer, period)
    return render(
        request,
        "report.html",
        viewer,
        report=report,
        period=period,
        query=urlencode(period.model_dump(by_alias=True, mode="json", exclude_none=True)),
        charts=report_charts(report),
    )


@router.get("/reports/sla.{fmt}")
def sla_report_export(
    request: Request, viewer: ViewerDep, fmt: str, period: Annotated[DateRange, Depends(_period)]
) -> Response:
    return _export(
        fmt,
        "sla-report",
        lambda: exports.sla_export(service.sla_report(web(request), viewer, period), fmt),
    )


def _ordered_period(request: Request) -> OrderedDateRange:
    """The from/to fields of a report's form, the end not before the start."""
    return query_form(request, OrderedDateRange)


HealthPeriodDep = Annotated[OrderedDateRange, Depends(_ordered_period)]


@router.get("/reports/channel-health", response_class=HTMLResponse)
def channel_health(request: Request, viewer: ViewerDep, period: HealthPeriodDep) -> Response:
    report = service.channel_health(web(request), viewer, period)
    return render(
        request,
        "channel_health.html",
        viewer,
        report=report,
        period=period,
        query=urlencode(period.model_dump(by_alias=True, mode="json", exclude_none=True)),
        charts=health_charts(report),
        states=list(AlertState),
        exception_table=_by_clause_and_state(report.exceptions.counts),
    )


def _by_clause_and_state(
    counts: list[ExceptionCount],
) -> tuple[list[ExceptionState], list[tuple[str, list[int]]]]:
    """The period's requests as a table: a row a clause, a column a state some request is in
    (in the states' own order), zeros where a clause has none in that state."""
    states = [s for s in ExceptionState if any(c.state is s for c in counts)]
    cells: dict[str, dict[ExceptionState, int]] = {}
    for c in counts:
        cells.setdefault(c.clause, {})[c.state] = c.count
    return states, [(clause, [row.get(s, 0) for s in states]) for clause, row in cells.items()]


@router.get("/reports/channel-health.{fmt}")
def channel_health_export(
    request: Request, viewer: ViewerDep, fmt: str, period: HealthPeriodDep
) -> Response:
    return _export(
        fmt,
        "channel-health",
        lambda: exports.health_export(service.channel_health(web(request), viewer, period), fmt),
    )


@router.get("/exports/audit.{fmt}")
def audit_period_export(
    request: Request, viewer: ViewerDep, fmt: str, period: Annotated[DateRange, Depends(_period)]
) -> Response:
    return _export(
        fmt, "audit", lambda: service.export_audit_period(web(request), viewer, period, fmt)
    )


@router.get("/exports/disputes.{fmt}")
def disputes_export(request: Request, viewer: ViewerDep, filters: FiltersDep, fmt: str) -> Response:
    return _export(
        fmt, "disputes", lambda: service.export_disputes(web(request), viewer, filters, fmt)
    )


# --- admin ---------------------------------------------------------------------------------------

AdminDep = Annotated[Viewer, Depends(require(Role.ADMIN))]


@router.get("/admin/directory", response_class=HTMLResponse)
def directory(request: Request, viewer: AdminDep) -> Response:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        partners = session.exec(select(Partner).order_by(Partner.name)).all()
        contacts = session.exec(select(PartnerContact)).all()
        people = session.exec(select(Person).order_by(Person.role, Person.name)).all()
        territories = session.exec(select(Territory).order_by(Territory.code)).all()
    by_partner: dict[str, list[PartnerContact]] = {}
    for c in contacts:
        by_partner.setdefault(c.partner_id, []).append(c)
    playbook = ctx.services.playbooks.in_force(date.today())
    return render(
        request,
        "directory.html",
        viewer,
        partners=partners,
        contacts=by_partner,
        people=people,
        territories=territories,
        calendars=playbook.calendars,
        tiers=list(PartnerTier),
        lockouts=ctx.accounts.locked_accounts(),
    )


@router.post("/admin/accounts/unlock", response_class=HTMLResponse)
async def lift_lockout(request: Request, viewer: AdminDep) -> Response:
    form = await read_form(request)
    login = str(form.get("login") or "").strip().lower()
    if not web(request).accounts.lift_lockout(login, viewer.login):
        raise BadInput([("login", "this account has no failed sign-ins to clear")])
    return back(request, "/admin/directory", f"sign-in lockout of {login} lifted")


@router.post("/admin/directory/import", response_class=HTMLResponse)
async def import_directory(request: Request, viewer: AdminDep) -> Response:
    form = await read_form(request)
    files = await read_uploads(form, "directory")
    if not files:
        raise BadInput([("directory", "choose a YAML file")])
    try:
        text = files[0].data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput([("directory", "the file is not UTF-8 text")]) from None
    imported = service.import_directory_text(web(request), viewer, text)
    return back(
        request,
        "/admin/directory",
        f"imported {len(imported.partners)} partners, {len(imported.people)} people, "
        f"{len(imported.territories)} territories, {len(imported.accounts)} accounts",
    )


@router.post("/admin/people/{person_id}", response_class=HTMLResponse)
async def edit_person(request: Request, viewer: AdminDep, person_id: str) -> Response:
    form = await read_form(request)
    fields = {
        "active": form.get("active") == "on",
        "case_limit": form.get("case_limit") or None,
        "declared_conflicts": _listed(form.get("declared_conflicts")),
    }
    change = validated(service.PersonUpdate, fields)
    service.update_person(web(request), viewer, person_id, change)
    return back(request, "/admin/directory", f"{person_id} updated")


@router.post("/admin/partners/{partner_id}", response_class=HTMLResponse)
async def edit_partner(request: Request, viewer: AdminDep, partner_id: str) -> Response:
    form = await read_form(request)
    fields = {
        "active": form.get("active") == "on",
        "tier": form.get("tier") or None,
        "calendar": form.get("calendar") or None,
        "email_domains": _listed(form.get("email_domains")),
    }
    change = validated(service.PartnerUpdate, fields)
    service.update_partner(web(request), viewer, partner_id, change)
    return back(request, "/admin/directory", f"{partner_id} updated")


def _listed(value: object) -> list[str]:
    """A comma-separated form field as a list."""
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


@router.get("/admin/intake", response_class=HTMLResponse)
def intake(request: Request, viewer: AdminDep, state: str = "quarantined") -> Response:
    rows, total = service.inbound_messages(web(request), viewer, state)
    return render(
        request,
        "intake.html",
        viewer,
        rows=rows,
        total=total,
        state=state,
        states=list(InboundState),
        max_attempts=web(request).settings.intake_max_attempts,
        refused_replies=service.refused_intake_replies(web(request), viewer),
    )


@router.post("/admin/intake/replies/{message_id}/{decision}", response_class=HTMLResponse)
async def intake_reply_decision(
    request: Request, viewer: AdminDep, message_id: int, decision: str
) -> Response:
    await read_form(request)
    message = service.decide_intake_reply(web(request), viewer, message_id, decision)
    return back(request, "/admin/intake", message)


@router.post("/admin/intake/{inbound_id}/{decision}", response_class=HTMLResponse)
async def intake_decision(
    request: Request, viewer: AdminDep, inbound_id: int, decision: str
) -> Response:
    await read_form(request)
    message = await service.decide_inbound(web(request), viewer, inbound_id, decision)
    return back(request, "/admin/intake", message)


@router.get("/admin/intake/{inbound_id}/original")
def intake_original(request: Request, viewer: AdminDep, inbound_id: int) -> Response:
    """The message exactly as it was received: the original of record."""
    raw = service.inbound_original(web(request), viewer, inbound_id)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="message-{inbound_id}.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/admin/playbook", response_class=HTMLResponse)
def playbook(request: Request, viewer: AdminDep) -> Response:
    ctx = web(request)
    books = ctx.services.playbooks.all()
    return render(request, "playbook.html", viewer, books=books)
