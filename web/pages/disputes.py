"""The dispute pages: lists, inbox and review queue, search, filing, a dispute's workspace and
timeline, its actions and evidence."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select
from starlette.datastructures import FormData

from accord.disputes import listing
from accord.disputes.access import Viewer
from accord.disputes.operations import BY_SLUG, Refused, StillApplying, new_key
from accord.disputes.search import dispute_snippets
from accord.platform.wording import choices, label, summary
from accord.platform.wording import remedy as remedy_words
from accord.playbooks.library import CategoryRules
from accord.precedents.anonymity import load_population
from accord.precedents.exceptions import DECIDED
from accord.rules.consistency import pattern
from models.enums import (
    Action,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    ObjectKind,
    PartnerTier,
    RemedyKind,
    Role,
    VoteOutcome,
)
from models.payloads import DisputeState
from models.tables import Partner, Person, Precedent
from web import service
from web.context import WebContext, web
from web.deps import require
from web.evidence import download_response
from web.exceptions import search_decided
from web.forms import ACTION_FORMS, REMEDY_INPUTS, REMEDY_ROWS, action_data, refused_as_shown
from web.idempotency import KeyReused
from web.pages.common import ViewerDep, back, query_form, read_form, read_uploads, render
from web.problems import BadInput
from web.queue import (
    CATEGORY_LABELS,
    QUEUE_LIMIT,
    SLA_LABELS,
    SORT_LABELS,
    STAGE_LABELS,
    TASK_LABELS,
    QueueItem,
    QueueQuery,
    SortKey,
    read_queue_query,
    work_queue,
)
from web.service import precedent_view, search_precedents
from web.views import DisputeFile, NotFound, load_live, load_record

router = APIRouter(include_in_schema=False)
IDEMPOTENCY_FIELD = "idempotency_key"
"""The hidden field each action form carries its idempotency key in (dispute.html)."""
FORM_SENT = "this form was already sent with other content; reload the page"
"""A form's key sent again with other content (the page kept, edited and sent again)."""


# --- lists --------------------------------------------------------------------------------------


def _filters(request: Request) -> listing.DisputeFilters:
    """The filter form's fields (the page number is not a filter)."""
    return query_form(request, listing.DisputeFilters, ignore=("page",))


FiltersDep = Annotated[listing.DisputeFilters, Depends(_filters)]


@router.get("/disputes", response_class=HTMLResponse)
def disputes(
    request: Request, viewer: ViewerDep, filters: FiltersDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        rows, total = listing.list_disputes(session, viewer, filters, page=page)
        partners = session.exec(select(Partner).order_by(Partner.name)).all()
    return render(
        request,
        "disputes.html",
        viewer,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // listing.PAGE_SIZE)),
        filters=filters,
        query=urlencode(filters.as_query()),
        stages=list(DisputeStage),
        categories=list(DisputeCategory),
        partners=partners if viewer.role is not Role.PARTNER else [],
    )


QUEUE_COLUMNS = (
    ("due", "Due"),
    ("", "Deadline"),
    ("kind", "Dispute and task"),
    ("", "Waiting on"),
    ("", "Parties"),
    ("category", "Category"),
    ("stage", "Stage"),
    ("amount", "Amount"),
)
"""The queue's columns: a heading with a sort key is a link that sorts by it (again: reversed)."""


def _queue_page(request: Request, viewer: Viewer, title: str) -> Response:
    """The task inbox and the review queue: one work queue, sorted and filtered by the query
    parameters of its GET form and its column headings (web.queue)."""
    query = read_queue_query(request.query_params.multi_items())
    with web(request).services.sessions.read() as session:
        items = work_queue(session, viewer, query)
    return render(
        request, "inbox.html", viewer, **queue_context(items, title, request.url.path, query)
    )


def queue_context(
    items: list[QueueItem], title: str, path: str, query: QueueQuery
) -> dict[str, Any]:
    """What inbox.html renders: the rows, and the form and headings that sort and filter them."""
    return dict(
        items=items,
        title=title,
        path=path,
        query=query,
        limit=QUEUE_LIMIT,
        columns=QUEUE_COLUMNS,
        sort_links={k.value: "?" + urlencode(query.sorted_by(k)) for k in SortKey},
        page_links={
            "previous": "?" + urlencode(query.as_params(page=max(query.page - 1, 1))),
            "next": "?" + urlencode(query.as_params(page=query.page + 1)),
            "first": "?" + urlencode(query.as_params(page=1)),
        },
        categories=list(CATEGORY_LABELS.items()),
        stages=list(STAGE_LABELS.items()),
        slas=list(SLA_LABELS.items()),
        kinds=sorted(TASK_LABELS.items(), key=lambda kv: kv[1]),
        sorts=list(SORT_LABELS.items()),
        category_labels=CATEGORY_LABELS,
        stage_labels=STAGE_LABELS,
    )


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, viewer: ViewerDep) -> Response:
    return _queue_page(request, viewer, "Task inbox")


@router.get("/review", response_class=HTMLResponse)
def review_queue(
    request: Request, viewer: Annotated[Viewer, Depends(require(Role.BOARD))]
) -> Response:
    return _queue_page(request, viewer, "Review queue")


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request, viewer: ViewerDep, q: Annotated[listing.SearchWords, Query()] = ""
) -> Response:
    ctx = web(request)
    filters = listing.DisputeFilters(q=q or None)
    with ctx.services.sessions.read() as session:
        rows, total = listing.list_disputes(session, viewer, filters) if q else ([], 0)
        snippets = dispute_snippets(session, [r.number for r in rows], q) if q else {}
        threshold = ctx.settings.public_amount_threshold
        k = ctx.settings.precedent_anonymity_k
        precedents = search_precedents(session, viewer, q, threshold, k) if q else []
    return render(
        request,
        "search.html",
        viewer,
        q=q,
        rows=rows,
        total=total,
        snippets=snippets,
        precedents=precedents,
    )


@router.get("/precedents", response_class=HTMLResponse)
def precedent_library(request: Request, viewer: ViewerDep) -> Response:
    ctx = web(request)
    query = query_form(request, service.PrecedentQuery)
    with ctx.services.sessions.read() as session:
        found = service.precedent_library(
            session,
            viewer,
            query,
            ctx.settings.public_amount_threshold,
            ctx.settings.precedent_anonymity_k,
        )
        board = search_decided(session, viewer, q=query.q, clause=query.clause, state=query.state)
    return render(
        request,
        "precedents.html",
        viewer,
        query=query,
        found=found,
        exceptions=board,
        exception_states=DECIDED,
        categories=list(DisputeCategory),
        tiers=list(PartnerTier),
        remedy_kinds=list(RemedyKind),
    )


@router.get("/precedents/{precedent_id}", response_class=HTMLResponse)
def precedent(request: Request, viewer: ViewerDep, precedent_id: int) -> Response:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        row = session.get(Precedent, precedent_id)
        if row is None:
            raise NotFound(f"precedent {precedent_id}")
        partner = viewer.role is Role.PARTNER
        population = (
            load_population(session, ctx.settings.precedent_anonymity_k) if partner else None
        )
    view = precedent_view(row, ctx.settings.public_amount_threshold, anonymise_for=population)
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
    # A link from an email filing that was incomplete carries what was understood.
    prefilled: dict[str, Any] = {
        k: v[:20_000] for k, v in request.query_params.items() if k in PREFILLABLE
    }
    if "respondent_ids" in prefilled:
        prefilled["respondent_ids"] = prefilled["respondent_ids"].split(",")
    return render(
        request,
        "file.html",
        viewer,
        values={"submission_id": secrets.token_hex(12), "currency": "USD", **prefilled},
        errors={},
        **_filing_options(web(request), viewer),
    )


FILING_TEXT_FIELDS = (
    "category",
    "summary",
    "facts",
    "desired_remedy",
    "amount_at_stake",
    "currency",
    "occurred_on",
)
PREFILLABLE = {
    "respondent_ids",
    *FILING_TEXT_FIELDS,
    *(f"object-{i}-{part}" for i in range(5) for part in ("kind", "ref")),
}


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
    for name in (*FILING_TEXT_FIELDS, "submission_id"):
        value = str(form.get(name) or "").strip()
        if value:
            data[name] = value
    return data


@router.post("/disputes/new", response_class=HTMLResponse)
async def file_dispute(
    request: Request, viewer: Annotated[Viewer, Depends(require(Role.PARTNER))]
) -> Response:
    ctx = web(request)
    refused_files: list[tuple[str, str]] = []
    form = await read_form(request, upload_problems=refused_files)
    data = _filing_data(form)
    try:
        if refused_files:
            raise BadInput(refused_files)
        visibility = EvidenceVisibility(str(form.get("evidence_visibility") or "parties"))
        files = await read_uploads(form)
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
        grouped.setdefault(key, []).append(choices(message))
    return grouped


# --- a dispute ----------------------------------------------------------------------------------


async def _dispute_file(ctx: WebContext, viewer: Viewer, number: str) -> DisputeFile:
    with ctx.services.sessions.read() as session:
        record = load_record(session, viewer, number)
    return load_live(ctx.services.sessions, viewer, record)


def _extendable(state: DisputeState | None) -> list[str]:
    """The deadline an admin's extension applies to now, as the workflow decides it."""
    if state is None or not state.deadlines:
        return []
    if state.stage is DisputeStage.TRIAGE:
        return ["acceptance"]
    return ["information" if state.clock_paused else "mediation"]


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
    rules = _category_rules(ctx, record)
    clauses = [rules.clause] if rules else []
    options: dict[str, list[tuple[str, str]]] = {
        "parties": parties,
        "note_visibility": [("shared", "everyone on the dispute"), ("caucus", "caucus: one side")],
        "mediators": [(m.id, f"{m.name} ({m.id})") for m in mediators],
        "outcomes": [(o.value, o.value.replace("_", " ")) for o in VoteOutcome],
        "deadlines": [(kind, f"the {kind} deadline") for kind in _extendable(state)],
        "clauses": [(c, c) for c in clauses],
        # The similar precedents first (most likely cited), then the category's latest.
        "precedents": list(
            dict(
                [
                    *(
                        (
                            m.dispute_number,
                            f"{m.dispute_number}: {label(m.outcome)} (similar, {m.score:.2f})",
                        )
                        for m in (state.similar.matches if state and state.similar else ())
                    ),
                    *(
                        (
                            p.dispute_number,
                            f"{p.dispute_number}: {label(p.outcome)} ({p.decided_at:%Y-%m-%d})",
                        )
                        for p in precedents
                    ),
                ]
            ).items()
        ),
        "evidence": [(e.id, f"{e.filename} ({e.id})") for e in record.evidence],
        "remedy_kinds": [(k.value, label(k)) for k in RemedyKind],
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
        awarded = state.remedies_decided()
        options["failed_remedies"] = [
            (
                str(r.position),
                f"{r.position + 1}: "
                + (
                    remedy_words(awarded[r.position], record.names)
                    if r.position < len(awarded) and awarded[r.position].kind is r.kind
                    else label(r.kind)
                )
                + f" ({label(r.state)})",
            )
            for r in state.remedies
            if r.state == "failed"
        ]
        if state.review is not None:
            options["voters"] = [
                (v.person_id, record.names.person(v.person_id)) for v in state.review.votes
            ]
    return options


def ruling_prefill(record: DisputeFile) -> tuple[dict[str, str], list[str]]:
    """The chair's suggested remedies: those the unsealed votes upholding the claim proposed,
    most often proposed first, in words; the first REMEDY_ROWS pre-filled into the ruling
    form's rows."""
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
    ranked = [data for _, data in sorted(counted.values(), key=lambda c: -c[0])]
    values: dict[str, str] = {}
    for i, data in enumerate(ranked[:REMEDY_ROWS]):
        for name, value in data.items():
            if name == "shares":
                value = ", ".join(f"{p}={v}" for p, v in value.items())
            values[f"remedy-{i}-{name}"] = str(value)
    # Every suggestion in words ('Commission split on deal ...: Northwind Traders 80%, ...'),
    # not the fields' dump; the form's rows take the first REMEDY_ROWS of them.
    return values, [remedy_words(d, record.names) for d in ranked]


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
        names=record.names,
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
        precedent_pattern=_precedent_pattern(ctx, record),
        # Mail the server refused for good: admins resend or dismiss it here.
        undelivered=ctx.services.outbox.undelivered(number) if viewer.role is Role.ADMIN else [],
    )


def _precedent_pattern(ctx: WebContext, record: DisputeFile) -> tuple[str, ...]:
    """What the comparable precedents decided, shown above the settlement and ruling forms."""
    state = record.state
    if state is None or state.similar is None:
        return ()
    rules = _category_rules(ctx, record)
    clauses = (rules.clause,) if rules else ()
    return pattern(state.similar.matches, record.row.category, clauses, say=label)


def _allowed_remedies(ctx: WebContext, record: DisputeFile) -> list[str]:
    rules = _category_rules(ctx, record)
    return [k.value for k in rules.allowed_remedies] if rules else []


def _category_rules(ctx: WebContext, record: DisputeFile) -> CategoryRules | None:
    """The dispute's category in the playbook version it pinned (None if that is gone)."""
    try:
        return ctx.services.playbooks.get(record.row.playbook_version).categories[
            record.row.category
        ]
    except (KeyError, LookupError):
        return None


@router.get("/disputes/{number}", response_class=HTMLResponse)
async def dispute(request: Request, viewer: ViewerDep, number: str) -> Response:
    return await _render_dispute(request, viewer, number)


@router.get("/disputes/{number}/timeline", response_class=HTMLResponse)
def timeline(request: Request, viewer: ViewerDep, number: str) -> Response:
    with web(request).services.sessions.read() as session:
        record = load_record(session, viewer, number)
    return render(request, "timeline.html", viewer, d=record, names=record.names)


@router.post("/disputes/{number}/actions/{slug}", response_class=HTMLResponse)
async def act(request: Request, viewer: ViewerDep, number: str, slug: str) -> Response:
    op = BY_SLUG.get(slug)
    if op is None:
        raise NotFound(f"action {slug}")
    ctx = web(request)
    service.ensure_visible(ctx, viewer, number)
    form = await read_form(request)
    with ctx.services.sessions.read() as session:
        descriptions = {e.id: e.filename for e in load_record(session, viewer, number).evidence}
    data = action_data(op.action, form, descriptions)
    # The key the form was rendered with: sent twice (a double click, the back button), the
    # action is applied once. A form from before keys has none and gets its own.
    key = str(form.get(IDEMPOTENCY_FIELD) or "") or new_key()
    try:
        result = await service.act(ctx, viewer, number, op, data, key=key)
    except StillApplying as pending:
        return back(
            request,
            f"/disputes/{number}",
            f"{op.label}: {pending}; reload this page in a moment to see it.",
        )
    except KeyReused:
        # The page was kept, edited and sent again: its key is the first content's.
        return await _render_dispute(
            request,
            viewer,
            number,
            status=422,
            failed=op.action,
            errors={"form": [FORM_SENT]},
            values={k: v for k, v in form.multi_items() if isinstance(v, str)},
        )
    except (BadInput, Refused) as exc:
        # Back to the same form, with the reason next to it and everything typed kept (the
        # forms shown get new keys: a corrected form is a new action).
        values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        errors = (
            _by_field(exc.errors)
            if isinstance(exc, BadInput)
            else {"form": [refused_as_shown(op.action, summary(str(exc), web(request).names()))]}
        )
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


@router.post("/disputes/{number}/mail/{message_id}/{decision}", response_class=HTMLResponse)
async def mail_decision(
    request: Request, viewer: ViewerDep, number: str, message_id: int, decision: str
) -> Response:
    await read_form(request)
    message = service.decide_mail(web(request), viewer, number, message_id, decision)
    return back(request, f"/disputes/{number}#mail", message)


@router.post("/disputes/{number}/evidence", response_class=HTMLResponse)
async def upload_evidence(request: Request, viewer: ViewerDep, number: str) -> Response:
    ctx = web(request)
    # Before the body is read: a refused upload is never read, let alone stored.
    service.authorise_upload(ctx, viewer, number)
    form = await read_form(request)
    try:
        visibility = EvidenceVisibility(str(form.get("visibility") or "parties"))
    except ValueError:
        raise BadInput([("visibility", "choose parties, neutrals or side")]) from None
    files = await read_uploads(form)
    try:
        added = await service.add_evidence(
            ctx,
            viewer,
            number,
            files,
            description=str(form.get("description") or "")[:2000],
            visibility=visibility,
            side_partner_id=str(form.get("side_partner_id") or "") or None,
            key=str(form.get(IDEMPOTENCY_FIELD) or "") or new_key(),
        )
    except StillApplying as pending:
        return back(
            request,
            f"/disputes/{number}",
            f"Evidence: {pending}; reload this page in a moment to see it.",
        )
    except KeyReused:
        raise BadInput([("form", FORM_SENT)]) from None
    return back(request, f"/disputes/{number}", f"evidence added: {', '.join(added)}")


@router.get("/disputes/{number}/evidence/{evidence_id}")
def download_evidence(
    request: Request, viewer: ViewerDep, number: str, evidence_id: str
) -> Response:
    item, content = service.evidence_content(web(request), viewer, number, evidence_id)
    return download_response(item.filename, item.content_type, content)
