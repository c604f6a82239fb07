"""Server-rendered pages. They work without JavaScript: every action is a form that posts,
then redirects back with a message (or re-renders with the errors next to the fields and
everything typed kept)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select
from starlette.datastructures import FormData, UploadFile

from accord.access import Viewer
from accord.precedents import anonymised
from models.enums import (
    Action,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    ObjectKind,
    RemedyKind,
    Role,
    VoteOutcome,
)
from models.tables import Partner, PartnerContact, Person, Precedent, Territory
from web import csrf, service
from web.app import WebContext
from web.deps import current_viewer, optional_viewer, require, web
from web.evidence import Upload
from web.forms import ACTION_FORMS, REMEDY_INPUTS, REMEDY_ROWS, action_data, field_errors
from web.operations import BY_SLUG, Refused
from web.problems import BadInput, Forbidden
from web.views import DisputeFile, NotFound, inbox, load_live, load_record

router = APIRouter(include_in_schema=False)

HOME = {
    Role.PARTNER: "/disputes",
    Role.MEDIATOR: "/inbox",
    Role.BOARD: "/review",
    Role.COMPLIANCE: "/disputes",
    Role.ADMIN: "/inbox",
}
ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def render(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    ctx = web(request)
    flash = request.session.pop("flash", None) if "session" in request.scope else None
    token = request.scope["csrftoken"]() if "csrftoken" in request.scope else ""
    return ctx.templates.TemplateResponse(
        request,
        name,
        {
            "viewer": viewer,
            "csrf": token,
            "flash": flash,
            "home": HOME.get(viewer.role, "/") if viewer else "/login",
            "oidc": ctx.settings.oidc_enabled,
            "oidc_label": ctx.settings.oidc_label,
            **context,
        },
        status_code=status,
    )


def back(request: Request, url: str, message: str) -> RedirectResponse:
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> FormData:
    ctx = web(request)
    try:
        form = await request.form(max_files=ctx.settings.upload_max_files + 1)
    except Exception as exc:  # python-multipart's errors have no common base worth naming
        raise BadInput([("form", f"the form could not be read: {exc}")]) from None
    if csrf.is_multipart(request.scope):
        token = form.get("csrftoken")
        csrf.check(
            request,
            ctx.settings.secret_key.get_secret_value(),
            token if isinstance(token, str) else None,
        )
    return form


async def _uploads(form: FormData, name: str = "files") -> list[Upload]:
    files: list[Upload] = []
    for item in form.getlist(name):
        if isinstance(item, UploadFile) and item.filename:
            files.append(
                Upload(
                    filename=item.filename,
                    content_type=item.content_type or "application/octet-stream",
                    data=await item.read(),
                )
            )
    return files


# --- sign-in ----------------------------------------------------------------------------------

WHY = {
    "expired": "Your session has ended. Sign in again.",
    "signin": "Sign in to continue.",
}


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    viewer = optional_viewer(request)
    return RedirectResponse(HOME[viewer.role] if viewer else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", why: str = "") -> Response:
    return render(request, "login.html", None, next=_safe_next(next), why=WHY.get(why), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    login = str(form.get("login") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    viewer = web(request).accounts.authenticate(login, password) if login and password else None
    if viewer is None:
        return render(
            request,
            "login.html",
            None,
            status=401,
            next=target,
            why=None,
            error="That email and password do not match an active account.",
            login=login,
        )
    _start_session(request, viewer)
    return RedirectResponse(target if target != "/" else HOME[viewer.role], status_code=303)


def _start_session(request: Request, viewer: Viewer) -> None:
    request.session.clear()
    request.session.update({"login": viewer.login, "issued_at": time.time()})


def _safe_next(target: str) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post("/logout")
async def logout(request: Request) -> Response:
    request.session.clear()
    return back(request, "/login", "Signed out.")


@router.get("/login/oidc")
async def oidc_start(request: Request) -> Response:
    from web.oidc import oidc_client

    ctx = web(request)
    if not ctx.settings.oidc_enabled:
        raise NotFound("single sign-on")
    client = oidc_client(ctx.settings)
    redirect_uri = str(request.url_for("oidc_callback"))
    response: Response = await client.authorize_redirect(request, redirect_uri)
    return response


@router.get("/auth/oidc", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    from web.oidc import OidcFailed, oidc_login

    ctx = web(request)
    if not ctx.settings.oidc_enabled:
        raise NotFound("single sign-on")
    try:
        email = await oidc_login(ctx.settings, request)
    except OidcFailed as exc:
        return render(request, "login.html", None, status=401, next="/", why=None, error=str(exc))
    viewer = ctx.accounts.viewer_for(email)
    if viewer is None:
        return render(
            request,
            "login.html",
            None,
            status=403,
            next="/",
            why=None,
            error=f"{email} has no active Accord account.",
        )
    _start_session(request, viewer)
    return RedirectResponse(HOME[viewer.role], status_code=303)


# --- lists --------------------------------------------------------------------------------------


def _filters(request: Request) -> service.DisputeFilters:
    """The filter form's fields; a field left at "any" arrives empty and means no filter."""
    raw = {k: v for k, v in request.query_params.items() if v.strip() and k != "page"}
    try:
        return service.DisputeFilters.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(field_errors(exc)) from None


FiltersDep = Annotated[service.DisputeFilters, Depends(_filters)]


@router.get("/disputes", response_class=HTMLResponse)
def disputes(
    request: Request, viewer: ViewerDep, filters: FiltersDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        rows, total = service.list_disputes(session, viewer, filters, page=page)
        partners = session.exec(select(Partner).order_by(Partner.name)).all()
    return render(
        request,
        "disputes.html",
        viewer,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // service.PAGE_SIZE)),
        filters=filters,
        query=urlencode(filters.as_query()),
        stages=list(DisputeStage),
        categories=list(DisputeCategory),
        partners=partners if viewer.role is not Role.PARTNER else [],
    )


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, viewer: ViewerDep) -> Response:
    with web(request).services.sessions.read() as session:
        items = inbox(session, viewer)
    return render(request, "inbox.html", viewer, items=items, title="Task inbox")


@router.get("/review", response_class=HTMLResponse)
def review_queue(
    request: Request, viewer: Annotated[Viewer, Depends(require(Role.BOARD))]
) -> Response:
    with web(request).services.sessions.read() as session:
        items = inbox(session, viewer)
    return render(request, "inbox.html", viewer, items=items, title="Review queue")


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request, viewer: ViewerDep, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    ctx = web(request)
    filters = service.DisputeFilters(q=q or None)
    with ctx.services.sessions.read() as session:
        rows, total = service.list_disputes(session, viewer, filters) if q else ([], 0)
        precedents = _precedents(session, viewer, q) if q else []
    return render(
        request, "search.html", viewer, q=q, rows=rows, total=total, precedents=precedents
    )


def _precedents(session: Any, viewer: Viewer, q: str) -> list[dict[str, Any]]:
    """Precedents matching a term: partners read only the anonymised view, and the term is
    matched against that view, so a party's name cannot find (and so reveal) a precedent."""
    term = q.strip().lower()
    rows = session.exec(select(Precedent).order_by(col(Precedent.decided_at).desc()).limit(500))
    found: list[dict[str, Any]] = []
    for p in rows:
        full = viewer.role is not Role.PARTNER
        view = _precedent_view(p, full)
        haystack = " ".join(str(v) for v in view.values()).lower()
        if term in haystack:
            found.append(view)
        if len(found) >= 50:
            break
    return found


def _precedent_view(p: Precedent, full: bool) -> dict[str, Any]:
    if full:
        return {
            "id": p.id,
            "reference": p.dispute_number,
            "category": p.category.value,
            "outcome": p.outcome,
            "facts": p.facts,
            "rationale": p.rationale,
            "parties": ", ".join(str(x.get("name", "")) for x in p.parties),
            "decided_at": p.decided_at,
        }
    view = anonymised(p)
    return {
        "id": p.id,
        "reference": f"P-{p.id}",
        "category": view["category"],
        "outcome": view["outcome"],
        "facts": view["facts"],
        "rationale": view["rationale"],
        "parties": ", ".join([view["claimant"], *view["respondents"]]),
        "decided_at": p.decided_at,
    }


@router.get("/precedents/{precedent_id}", response_class=HTMLResponse)
def precedent(request: Request, viewer: ViewerDep, precedent_id: int) -> Response:
    with web(request).services.sessions.read() as session:
        row = session.get(Precedent, precedent_id)
    if row is None:
        raise NotFound(f"precedent {precedent_id}")
    view = _precedent_view(row, viewer.role is not Role.PARTNER)
    return render(request, "precedent.html", viewer, p=view)


# --- filing ----------------------------------------------------------------------------------


def _filing_options(ctx: WebContext, viewer: Viewer) -> dict[str, Any]:
    with ctx.services.sessions.read() as session:
        partners = session.exec(
            select(Partner).where(Partner.active, Partner.id != viewer.actor.partner_id)
        ).all()
    return {
        "partners": sorted(partners, key=lambda p: p.name),
        "categories": list(DisputeCategory),
        "object_kinds": list(ObjectKind),
        "visibilities": list(EvidenceVisibility),
        "allowed_types": ctx.settings.upload_allowed_types,
        "max_bytes": ctx.settings.upload_max_bytes,
    }


@router.get("/disputes/new", response_class=HTMLResponse)
def new_dispute(
    request: Request, viewer: Annotated[Viewer, Depends(require(Role.PARTNER))]
) -> Response:
    return render(
        request,
        "file.html",
        viewer,
        values={"submission_id": secrets.token_hex(12), "currency": "USD"},
        errors={},
        **_filing_options(web(request), viewer),
    )


def _filing_data(form: FormData) -> dict[str, Any]:
    objects = []
    for i in range(5):
        kind = str(form.get(f"object-{i}-kind") or "").strip()
        ref = str(form.get(f"object-{i}-ref") or "").strip()
        if kind or ref:
            objects.append({"kind": kind, "ref": ref})
    data: dict[str, Any] = {
        "respondent_ids": [v for v in form.getlist("respondent_ids") if isinstance(v, str)],
        "contested_objects": objects,
    }
    for name in (
        "category",
        "summary",
        "facts",
        "desired_remedy",
        "amount_at_stake",
        "currency",
        "occurred_on",
        "submission_id",
    ):
        value = str(form.get(name) or "").strip()
        if value:
            data[name] = value
    return data


@router.post("/disputes/new", response_class=HTMLResponse)
async def file_dispute(
    request: Request, viewer: Annotated[Viewer, Depends(require(Role.PARTNER))]
) -> Response:
    ctx = web(request)
    form = await _form(request)
    data = _filing_data(form)
    try:
        visibility = EvidenceVisibility(str(form.get("evidence_visibility") or "parties"))
        files = await _uploads(form)
        result, evidence = await service.file_dispute(
            ctx, viewer, data, files, evidence_visibility=visibility
        )
    except (BadInput, ValueError) as exc:
        errors = exc.errors if isinstance(exc, BadInput) else [("evidence_visibility", str(exc))]
        values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrftoken"}
        values["respondent_ids"] = data["respondent_ids"]
        return render(
            request,
            "file.html",
            viewer,
            status=422,
            values=values,
            errors=_by_field(errors),
            **_filing_options(ctx, viewer),
        )
    message = result.message + (f"; {len(evidence)} evidence file(s) attached" if evidence else "")
    return back(request, f"/disputes/{result.number}", message)


def _by_field(errors: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for field, message in errors:
        key = field.split(".")[0].split("[")[0]
        grouped.setdefault(key, []).append(message)
    return grouped


# --- a dispute ----------------------------------------------------------------------------------


async def _dispute_file(ctx: WebContext, viewer: Viewer, number: str) -> DisputeFile:
    with ctx.services.sessions.read() as session:
        record = load_record(session, viewer, number)
    return await load_live(ctx.temporal(), viewer, record)


def form_options(ctx: WebContext, record: DisputeFile) -> dict[str, list[tuple[str, str]]]:
    """Choices for the action forms' select and checkbox fields."""
    state = record.state
    parties = [(pid, record.party_name(pid)) for pid in record.parties]
    with ctx.services.sessions.read() as session:
        mediators = session.exec(
            select(Person).where(Person.role == Role.MEDIATOR, Person.active).order_by(Person.name)
        ).all()
        precedents = session.exec(
            select(Precedent)
            .where(Precedent.category == record.row.category)
            .order_by(col(Precedent.decided_at).desc())
            .limit(20)
        ).all()
    try:
        book = ctx.services.playbooks.get(record.row.playbook_version)
        clauses = [book.categories[record.row.category].clause]
    except (KeyError, LookupError):
        clauses = []
    options: dict[str, list[tuple[str, str]]] = {
        "parties": parties,
        "note_visibility": [("shared", "everyone on the dispute"), ("caucus", "caucus: one side")],
        "mediators": [(m.id, f"{m.name} ({m.id})") for m in mediators],
        "outcomes": [(o.value, o.value.replace("_", " ")) for o in VoteOutcome],
        "clauses": [(c, c) for c in clauses],
        "precedents": [
            (p.dispute_number, f"{p.dispute_number}: {p.outcome} ({p.decided_at:%Y-%m-%d})")
            for p in precedents
        ],
        "evidence": [(e.id, f"{e.filename} ({e.id})") for e in record.evidence],
        "remedy_kinds": [(k.value, k.value.replace("_", " ")) for k in RemedyKind],
        "open_offers": [],
        "my_requests": [],
        "failed_remedies": [],
        "voters": [],
    }
    if state is not None:
        options["open_offers"] = [(o.id, f"{o.id}: {o.terms[:60]}") for o in state.offers if o.open]
        options["my_requests"] = [
            (r.id, f"{r.id}: {r.questions[:60]}")
            for r in state.information_requests
            if r.answered_at is None
        ]
        options["failed_remedies"] = [
            (str(r.position), f"{r.position}: {r.kind.value} ({r.state})")
            for r in state.remedies
            if r.state == "failed"
        ]
        if state.review is not None:
            options["voters"] = [(v.person_id, v.person_id) for v in state.review.votes]
    return options


def ruling_prefill(record: DisputeFile) -> tuple[dict[str, str], list[str]]:
    """The chair's suggested remedies: those the unsealed votes upholding the claim proposed,
    most often proposed first, pre-filled into the ruling form's rows."""
    state = record.state
    if state is None or state.review is None:
        return {}, []
    counted: dict[str, tuple[int, dict[str, Any]]] = {}
    for vote in state.review.votes:
        for remedy in vote.remedies:
            data = remedy.model_dump(mode="json")
            key = json.dumps(data, sort_keys=True)
            count, _ = counted.get(key, (0, data))
            counted[key] = (count + 1, data)
    ranked = [data for _, data in sorted(counted.values(), key=lambda c: -c[0])][:REMEDY_ROWS]
    values: dict[str, str] = {}
    for i, data in enumerate(ranked):
        for name, value in data.items():
            if name == "shares":
                value = ", ".join(f"{p}={v}" for p, v in value.items())
            values[f"remedy-{i}-{name}"] = str(value)
    labels = [
        f"{d['kind'].replace('_', ' ')} ("
        + ", ".join(f"{k}: {v}" for k, v in d.items() if k != "kind")
        + ")"
        for d in ranked
    ]
    return values, labels


async def _render_dispute(
    request: Request,
    viewer: Viewer,
    number: str,
    *,
    status: int = 200,
    failed: Action | None = None,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    ctx = web(request)
    record = await _dispute_file(ctx, viewer, number)
    prefill, suggested = ruling_prefill(record)
    return render(
        request,
        "dispute.html",
        viewer,
        status=status,
        d=record,
        forms=ACTION_FORMS,
        options=form_options(ctx, record),
        remedy_rows=range(REMEDY_ROWS),
        remedy_inputs=REMEDY_INPUTS,
        failed=failed,
        errors=errors or {},
        values=values or {},
        visibilities=list(EvidenceVisibility),
        prefill={Action.ISSUE_RULING: prefill},
        suggested=suggested,
        allowed_remedies=_allowed_remedies(ctx, record),
    )


def _allowed_remedies(ctx: WebContext, record: DisputeFile) -> list[str]:
    try:
        book = ctx.services.playbooks.get(record.row.playbook_version)
    except LookupError:
        return []
    return [k.value for k in book.categories[record.row.category].allowed_remedies]


@router.get("/disputes/{number}", response_class=HTMLResponse)
async def dispute(request: Request, viewer: ViewerDep, number: str) -> Response:
    return await _render_dispute(request, viewer, number)


@router.get("/disputes/{number}/timeline", response_class=HTMLResponse)
def timeline(request: Request, viewer: ViewerDep, number: str) -> Response:
    with web(request).services.sessions.read() as session:
        record = load_record(session, viewer, number)
    return render(request, "timeline.html", viewer, d=record)


@router.post("/disputes/{number}/actions/{slug}", response_class=HTMLResponse)
async def act(request: Request, viewer: ViewerDep, number: str, slug: str) -> Response:
    op = BY_SLUG.get(slug)
    if op is None:
        raise NotFound(f"action {slug}")
    ctx = web(request)
    service.ensure_visible(ctx, viewer, number)
    form = await _form(request)
    with ctx.services.sessions.read() as session:
        descriptions = {e.id: e.filename for e in load_record(session, viewer, number).evidence}
    data = action_data(op.action, form, descriptions)
    try:
        result = await service.act(ctx, viewer, number, op, data)
    except (BadInput, Refused) as exc:
        # Back to the same form, with the reason next to it and everything typed kept.
        values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        errors = _by_field(exc.errors) if isinstance(exc, BadInput) else {"form": [str(exc)]}
        return await _render_dispute(
            request,
            viewer,
            number,
            status=422 if isinstance(exc, BadInput) else 409,
            failed=op.action,
            errors=errors,
            values=values,
        )
    return back(request, f"/disputes/{number}", f"{op.label}: {result.message}")


@router.post("/disputes/{number}/evidence", response_class=HTMLResponse)
async def upload_evidence(request: Request, viewer: ViewerDep, number: str) -> Response:
    ctx = web(request)
    service.ensure_visible(ctx, viewer, number)
    form = await _form(request)
    try:
        visibility = EvidenceVisibility(str(form.get("visibility") or "parties"))
    except ValueError:
        raise BadInput([("visibility", "choose parties, neutrals or side")]) from None
    files = await _uploads(form)
    added = await service.add_evidence(
        ctx,
        viewer,
        number,
        files,
        description=str(form.get("description") or "")[:2000],
        visibility=visibility,
        side_partner_id=str(form.get("side_partner_id") or "") or None,
    )
    return back(request, f"/disputes/{number}", f"evidence added: {', '.join(added)}")


@router.get("/disputes/{number}/evidence/{evidence_id}")
def download_evidence(
    request: Request, viewer: ViewerDep, number: str, evidence_id: str
) -> Response:
    item, content = service.evidence_content(web(request), viewer, number, evidence_id)
    return evidence_response(item.filename, item.content_type, content)


def evidence_response(filename: str, content_type: str, content: bytes) -> Response:
    from urllib.parse import quote

    # Always a download, never rendered inline, and never sniffed into something executable.
    return Response(
        content,
        media_type=content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


# --- compliance -----------------------------------------------------------------------------------


@router.get("/disputes/{number}/audit", response_class=HTMLResponse)
def audit(request: Request, viewer: ViewerDep, number: str) -> Response:
    events, broken = service.audit_trail(web(request), viewer, number)
    return render(request, "audit.html", viewer, number=number, events=events, broken=broken)


@router.get("/disputes/{number}/audit.{fmt}")
def audit_export(request: Request, viewer: ViewerDep, number: str, fmt: str) -> Response:
    if fmt not in ("csv", "json"):
        raise NotFound(f"format {fmt}")
    body = service.export_audit(web(request), viewer, number, fmt)
    return _download(body, f"{number}-audit.{fmt}", fmt)


@router.get("/exports/disputes.{fmt}")
def disputes_export(request: Request, viewer: ViewerDep, filters: FiltersDep, fmt: str) -> Response:
    if fmt not in ("csv", "json"):
        raise NotFound(f"format {fmt}")
    body = service.export_disputes(web(request), viewer, filters, fmt)
    return _download(body, f"disputes.{fmt}", fmt)


def _download(body: str, filename: str, fmt: str) -> Response:
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
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
    )


@router.post("/admin/people/{person_id}", response_class=HTMLResponse)
async def edit_person(request: Request, viewer: AdminDep, person_id: str) -> Response:
    ctx = web(request)
    form = await _form(request)
    errors: list[tuple[str, str]] = []
    try:
        case_limit = int(str(form.get("case_limit") or ""))
        if not 0 <= case_limit <= 500:
            raise ValueError
    except ValueError:
        errors.append(("case_limit", "a whole number from 0 to 500"))
        case_limit = 0
    conflicts = [
        c.strip() for c in str(form.get("declared_conflicts") or "").split(",") if c.strip()
    ]
    if any(len(c) > 200 for c in conflicts):
        errors.append(("declared_conflicts", "each conflict is a partner id or kind:ref"))
    if errors:
        raise BadInput(errors)
    with ctx.services.sessions.begin() as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(person_id)
        person.active = form.get("active") == "on"
        person.case_limit = case_limit
        person.declared_conflicts = conflicts
        session.add(person)
    return back(request, "/admin/directory", f"{person_id} updated")


@router.get("/admin/playbook", response_class=HTMLResponse)
def playbook(request: Request, viewer: AdminDep) -> Response:
    ctx = web(request)
    books = ctx.services.playbooks.all()
    return render(request, "playbook.html", viewer, books=books)


# --- account and API tokens -----------------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, viewer: ViewerDep) -> Response:
    tokens = web(request).accounts.tokens(viewer.login)
    new_token = request.session.pop("new_token", None)
    return render(request, "account.html", viewer, tokens=tokens, new_token=new_token)


@router.post("/account/tokens")
async def create_token(request: Request, viewer: ViewerDep) -> Response:
    form = await _form(request)
    name = str(form.get("name") or "").strip()[:100]
    if not name:
        raise BadInput([("name", "name the token (what will use it)")])
    request.session["new_token"] = web(request).accounts.issue_token(viewer.login, name)
    return back(request, "/account", f"token {name!r} created; copy it now, it is shown once")


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, viewer: ViewerDep, token_id: int) -> Response:
    if not web(request).accounts.revoke_token(viewer.login, token_id):
        raise NotFound(f"token {token_id}")
    return back(request, "/account", "token revoked")


@router.post("/account/sign-out-everywhere")
def sign_out_everywhere(request: Request, viewer: ViewerDep) -> Response:
    web(request).accounts.end_all_sessions(viewer.login)
    request.session.clear()
    return back(request, "/login", "Signed out of every session.")


def forbid_compliance(viewer: Viewer) -> None:
    if viewer.role is Role.COMPLIANCE:
        raise Forbidden("compliance reads disputes; it never acts on them")
