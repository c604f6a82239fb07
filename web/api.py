"""The JSON API: every action the web offers, for scripts and integrations.

Authenticate with `Authorization: Bearer <token>`. What a token sees and may do is exactly
what its user sees and may do on the pages: the same service functions serve both.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import select

from accord.directory.records import Directory
from accord.disputes import listing
from accord.disputes.access import WITHHELD_FROM_SUMMARY, Standing, Viewer
from accord.disputes.operations import OPERATIONS, Operation, StillApplying, new_key, request_model
from accord.reports import exports
from accord.reports.exports import DateRange, OrderedDateRange
from models.enums import (
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
    Role,
    TaskKind,
)
from models.payloads import ActionResult, DisputeState, FilingResult, FilingSubmission
from models.tables import Dispute, Partner, Person
from web import exceptions, service
from web.auth import TokenName
from web.context import web
from web.deps import current_viewer, require
from web.evidence import download_response, uploads_in
from web.forms import field_errors
from web.idempotency import KeyReused
from web.problems import PROBLEM_RESPONSES, BadInput
from web.queue import LAST_PAGE, QUEUE_LIMIT, Sla, read_queue_query, work_queue
from web.views import NotFound, load_live, load_record

router = APIRouter(prefix="/api", responses=PROBLEM_RESPONSES)
ViewerDep = Annotated[Viewer, Depends(current_viewer)]
NumberPath = Annotated[
    str, Path(pattern=r"^DSP-\d{4}-\d{6}$", description="dispute number, e.g. DSP-2026-000001")
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Me(_Out):
    login: str
    role: Role
    name: str
    partner_id: str | None


class DisputeSummary(_Out):
    number: str
    category: DisputeCategory
    stage: DisputeStage
    claimant_id: str
    respondent_ids: list[str]
    summary: str
    amount_at_stake: Decimal
    currency: str
    mediator_id: str | None
    filed_at: datetime
    stage_deadline: datetime | None
    deadline_explanation: str | None
    closed_at: datetime | None
    outcome: str | None


class DisputeRecord(DisputeSummary):
    facts: str | None
    """Null when you read only the case summary (offered the mediation, not accepted yet)."""
    desired_remedy: str | None
    """Null when you read only the case summary."""
    contested_objects: list[dict[str, str]]
    occurred_on: date
    playbook_version: str


class DisputePage(BaseModel):
    items: list[DisputeSummary]
    total: int
    page: int
    page_size: int


class EvidenceOut(_Out):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    description: str
    visibility: EvidenceVisibility
    side_partner_id: str | None
    added_by: str
    added_at: datetime


class TimelineEntry(_Out):
    seq: int
    at: datetime
    actor_id: str
    actor_role: Role
    action: str
    summary: str


class DisputeDetail(BaseModel):
    standing: Standing
    """Where you stand in the dispute now, which decides what of it you read: `offered` (a
    mediator offered it, not accepted yet) reads the case summary only, with no timeline,
    evidence, notes, offers or messages."""
    record: DisputeRecord
    state: DisputeState | None
    """The live state, filtered for you; null when the workflow did not answer."""
    evidence: list[EvidenceOut]
    actions: list[str]
    """Action paths you may try now, e.g. `accept-assignment`."""


class AuditEntry(_Out):
    seq: int
    at: datetime
    actor_id: str
    actor_role: Role
    action: str
    content: dict[str, Any]
    prev_hash: str
    hash: str


class AuditTrail(BaseModel):
    number: str
    intact: bool
    first_broken_entry: int | None
    texts: dict[str, str] = {}
    """Bodies of the stored texts the entries name (`text_ref`, `questions_ref`, ... hold
    their ids and hashes), by id."""
    entries: list[AuditEntry]


class ActionPending(BaseModel):
    """An action not yet done when the wait ran out, and the dispute as it is now. Send the same
    request with the same Idempotency-Key for its result: it is applied once."""

    number: str
    update_id: str
    """The workflow update applying it (your key, scoped by action and by you)."""
    idempotency_key: str
    """Your Idempotency-Key, or the one chosen for you when you sent none."""
    accepted: bool
    """Whether the dispute's rules accepted it already; false: not taken up yet."""
    message: str
    state: DisputeState | None
    """The live state, filtered for you; null when the workflow did not answer."""


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[!-~]+$",
        description="A key of yours for this action (a UUID, say): sent again, the action is "
        "applied once and answered as the first time. 1 to 100 visible ASCII characters.",
    ),
]


class TaskOut(BaseModel):
    """One task of your work queue, with what you need to work from it."""

    key: str
    dispute_number: str
    kind: TaskKind
    title: str
    """What the task is, in words."""
    due_at: datetime | None
    sla: Sla
    """on_time; warned_50 or warned_80 once half or 80 % of its window is used; overdue; none
    (no deadline)."""
    category: DisputeCategory | None
    stage: DisputeStage | None
    amount: Decimal | None
    """The amount at stake, in `currency`."""
    currency: str | None
    claimant: str | None
    """The claimant partner's name."""
    respondents: list[str]
    """The respondent partners' names."""
    awaiting: str
    """What the task waits on and from whom ("your vote", "answer to information request from
    Contoso Systems")."""
    awaiting_from: list[str]
    """Who owes it, by name; empty when it is your own step."""


FilingRequest = request_model(FilingSubmission, without=("claimant_id", "filed_by"))
"""A new dispute, filed for your own organisation (the claimant is your partner)."""


class EvidenceAdded(BaseModel):
    number: str
    evidence_ids: list[str]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: TokenName


class TokenCreated(BaseModel):
    id: int
    name: str
    token: str
    """Shown once; only its hash is stored."""


class TokenOut(_Out):
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


# --- me, disputes --------------------------------------------------------------------------------


@router.get("/me", response_model=Me, tags=["account"])
def me(viewer: ViewerDep) -> Me:
    return Me(
        login=viewer.login,
        role=viewer.role,
        name=viewer.actor.name,
        partner_id=viewer.actor.partner_id,
    )


def _dispute_filters(
    stage: DisputeStage | None = None,
    category: DisputeCategory | None = None,
    party: Annotated[listing.PartyFilter | None, Query()] = None,
    q: Annotated[listing.SearchWords | None, Query()] = None,
    filed_from: date | None = None,
    filed_to: date | None = None,
    open_only: bool = False,
) -> listing.DisputeFilters:
    """The list's filters, the same for the list and its export."""
    return listing.DisputeFilters(
        stage=stage,
        category=category,
        party=party,
        q=q,
        filed_from=filed_from,
        filed_to=filed_to,
        open_only=open_only,
    )


DisputeFiltersDep = Annotated[listing.DisputeFilters, Depends(_dispute_filters)]


@router.get("/disputes", response_model=DisputePage, tags=["disputes"])
def list_disputes(
    request: Request,
    viewer: ViewerDep,
    filters: DisputeFiltersDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> DisputePage:
    with web(request).services.sessions.read() as session:
        rows, total = listing.list_disputes(session, viewer, filters, page=page)
    return DisputePage(
        items=[DisputeSummary.model_validate(r) for r in rows],
        total=total,
        page=page,
        page_size=listing.PAGE_SIZE,
    )


@router.post("/disputes", response_model=FilingResult, status_code=201, tags=["disputes"])
async def file_dispute(
    request: Request,
    body: FilingRequest,  # type: ignore[valid-type]
    viewer: Annotated[Viewer, Depends(require(Role.PARTNER))],
) -> FilingResult:
    data = body.model_dump(mode="json")  # type: ignore[attr-defined]
    result, _ = await service.file_dispute(web(request), viewer, data, [])
    return result


@router.get("/disputes/{number}", response_model=DisputeDetail, tags=["disputes"])
async def dispute(request: Request, viewer: ViewerDep, number: NumberPath) -> DisputeDetail:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        record = load_record(session, viewer, number)
    record = load_live(ctx.services.sessions, viewer, record)
    withheld = {} if record.reads_case else dict.fromkeys(WITHHELD_FROM_SUMMARY)
    return DisputeDetail(
        standing=record.standing,
        record=DisputeRecord.model_validate(record.row).model_copy(update=withheld),
        state=record.state,
        evidence=[EvidenceOut.model_validate(e) for e in record.evidence],
        actions=[op.slug for op in record.operations],
    )


@router.get("/disputes/{number}/timeline", response_model=list[TimelineEntry], tags=["disputes"])
def timeline(request: Request, viewer: ViewerDep, number: NumberPath) -> list[TimelineEntry]:
    with web(request).services.sessions.read() as session:
        record = load_record(session, viewer, number)
    return [
        TimelineEntry(
            seq=e.seq,
            at=e.at,
            actor_id=e.actor_id,
            actor_role=e.actor_role,
            action=e.action,
            summary=str(e.content.get("summary", "")),
        )
        for e in record.events
    ]


@router.get("/disputes/{number}/audit", response_model=AuditTrail, tags=["compliance"])
def audit(request: Request, viewer: ViewerDep, number: NumberPath) -> AuditTrail:
    events, broken = service.audit_trail(web(request), viewer, number)
    return AuditTrail(
        number=number,
        intact=broken is None,
        first_broken_entry=broken,
        texts=service.trail_texts(web(request), events),
        entries=[AuditEntry.model_validate(e) for e in events],
    )


ExportFormat = Annotated[Literal["csv", "json"], Query()]


@router.get("/disputes/{number}/audit/export", tags=["compliance"])
def audit_export(
    request: Request, viewer: ViewerDep, number: NumberPath, format: ExportFormat = "json"
) -> Response:
    body = service.export_audit(web(request), viewer, number, format)
    return service.export_response(body, f"{number}-audit.{format}", format)


@router.get("/exports/disputes", tags=["compliance"])
def export_disputes(
    request: Request, viewer: ViewerDep, filters: DisputeFiltersDep, format: ExportFormat = "json"
) -> Response:
    """The disputes the list shows with the same filters, whole (JSON or CSV)."""
    body = service.export_disputes(web(request), viewer, filters, format)
    return service.export_response(body, f"disputes.{format}", format)


@router.get("/exports/precedents", tags=["compliance"])
def export_precedents(
    request: Request,
    viewer: ViewerDep,
    period: Annotated[DateRange, Query()],
    format: ExportFormat = "json",
) -> Response:
    """The full record of the precedents decided from a day to a day (both included)."""
    body = service.export_precedents(web(request), viewer, period, format)
    return service.export_response(body, f"precedents.{format}", format)


@router.get("/reports/sla", tags=["compliance"])
def sla_report(
    request: Request,
    viewer: ViewerDep,
    period: Annotated[DateRange, Query()],
    format: ExportFormat = "json",
) -> Response:
    """The SLA and channel-health report over the disputes filed from a day to a day (both
    included; without either, the last 90 days): per stage the on-time share, breaches and
    median time; per category and per claimant region the disputes filed, outcomes and
    remedies; repeat parties; hotspots; disputes past their deadline now."""
    report = service.sla_report(web(request), viewer, period)
    return service.export_response(
        exports.sla_export(report, format), f"sla-report.{format}", format
    )


@router.get("/reports/channel-health", tags=["compliance"])
def channel_health(
    request: Request,
    viewer: ViewerDep,
    period: Annotated[OrderedDateRange, Query()],
    format: ExportFormat = "json",
) -> Response:
    """The channel-health view over the conflict alerts detected and the disputes filed from a
    day to a day (both included; without either, the last 90 days): alerts per kind by their
    outcome now, and per week, month or year; hours from detection to decision (median, 90th
    percentile); the conflicts caught before a dispute was filed against those filed without
    an alert; the accounts, territories and partner pairs with the most alerts; alerts open
    for 14 days or more."""
    report = service.channel_health(web(request), viewer, period)
    return service.export_response(
        exports.health_export(report, format), f"channel-health.{format}", format
    )


@router.get("/exports/audit", tags=["compliance"])
def export_audit_period(
    request: Request,
    viewer: ViewerDep,
    period: Annotated[DateRange, Query()],
    format: ExportFormat = "json",
) -> Response:
    """Every audit entry recorded from a day to a day, across disputes, with its hashes."""
    body = service.export_audit_period(web(request), viewer, period, format)
    return service.export_response(body, f"audit.{format}", format)


# --- evidence ---------------------------------------------------------------------------------


class EvidenceFields(BaseModel):
    """The evidence form's fields besides its files."""

    model_config = ConfigDict(frozen=True)
    description: str = Field("", max_length=2000)
    visibility: EvidenceVisibility = EvidenceVisibility.PARTIES
    side_partner_id: str | None = Field(None, max_length=64)


EVIDENCE_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "description": "one or more files",
                    },
                    "description": {"type": "string", "maxLength": 2000, "default": ""},
                    "visibility": {
                        "type": "string",
                        "enum": [v.value for v in EvidenceVisibility],
                        "default": EvidenceVisibility.PARTIES.value,
                    },
                    "side_partner_id": {"type": "string", "maxLength": 64},
                },
            }
        }
    },
}
"""The form as the schema shows it: the route reads the body itself, once it is authorised
(FastAPI would read and spool the files before any check of who sent them)."""


@router.post(
    "/disputes/{number}/evidence",
    response_model=EvidenceAdded,
    status_code=201,
    responses={202: {"model": ActionPending, "description": "Not all attached within the wait"}},
    tags=["evidence"],
    openapi_extra={"requestBody": EVIDENCE_FORM},
)
async def add_evidence(
    request: Request,
    viewer: ViewerDep,
    number: NumberPath,
    idempotency_key: IdempotencyKey = None,
) -> EvidenceAdded | JSONResponse:
    """Attach files as evidence. With an `Idempotency-Key`, the same upload again attaches each
    file once and answers as the first time; not all attached within the server's wait: 202.
    Who may add evidence now is checked before the body is read; each file's type and size as
    it arrives."""
    ctx = web(request)
    service.authorise_upload(ctx, viewer, number)
    form = await service.read_upload_form(ctx, request)
    # A browser session's CSRF token was checked before the route ran (web.csrf).
    try:
        fields = EvidenceFields.model_validate(
            {
                k: v
                for k, v in form.multi_items()
                if isinstance(v, str) and k in EvidenceFields.model_fields
            }
        )
    except ValidationError as exc:
        raise BadInput(field_errors(exc)) from None
    uploads = await uploads_in(form, "files")
    key = idempotency_key or new_key()
    try:
        ids = await service.add_evidence(
            ctx,
            viewer,
            number,
            uploads,
            description=fields.description,
            visibility=fields.visibility,
            side_partner_id=fields.side_partner_id or None,
            key=key,
        )
    except StillApplying as pending:
        return await _still_applying(request, viewer, pending, key)
    except KeyReused as reused:
        raise BadInput([("Idempotency-Key", str(reused))]) from None
    return EvidenceAdded(number=number, evidence_ids=ids)


@router.get("/disputes/{number}/evidence/{evidence_id}", tags=["evidence"])
def download_evidence(
    request: Request,
    viewer: ViewerDep,
    number: NumberPath,
    evidence_id: Annotated[str, Path(max_length=64)],
) -> Response:
    item, content = service.evidence_content(web(request), viewer, number, evidence_id)
    return download_response(item.filename, item.content_type, content)


# --- actions: one route each, the body is the action's payload without the actor ------------------


def _action_route(op: Operation) -> None:
    body_model = op.body

    async def perform_action(
        request: Request,
        viewer: ViewerDep,
        number: NumberPath,
        body: body_model,  # type: ignore[valid-type]
        idempotency_key: IdempotencyKey = None,
    ) -> ActionResult | JSONResponse:
        ctx = web(request)
        key = idempotency_key or new_key()
        data = body.model_dump(mode="json")  # type: ignore[attr-defined]
        try:
            return await service.act(ctx, viewer, number, op, data, key=key)
        except StillApplying as pending:
            return await _still_applying(request, viewer, pending, key)
        except KeyReused as reused:
            raise BadInput([("Idempotency-Key", str(reused))]) from None

    perform_action.__name__ = op.action.value
    # Annotations are strings here (postponed evaluation); FastAPI resolves them against the
    # module, where this per-action model does not live, so it is given as the class itself.
    perform_action.__annotations__["body"] = body_model
    router.add_api_route(
        f"/disputes/{{number}}/{op.slug}",
        perform_action,
        methods=["POST"],
        response_model=ActionResult,
        responses={
            202: {
                "model": ActionPending,
                "description": "Not done within the wait: still being applied; the same "
                "request with the same Idempotency-Key picks it up",
            }
        },
        tags=["actions"],
        summary=op.label,
        description=(op.payload.__doc__ or op.label)
        + "\n\nRefused with 409 and the rule when the dispute's stage or your role does not "
        "allow it. With an `Idempotency-Key` header, the same request again is applied once and "
        "answered as the first time (the same key with another body: 422 naming the header, "
        "nothing done); an action not done within the server's wait answers 202 with the "
        "dispute as it is now.",
    )


async def _still_applying(
    request: Request, viewer: Viewer, pending: StillApplying, key: str
) -> JSONResponse:
    ctx = web(request)
    with ctx.services.sessions.read() as session:
        record = load_record(session, viewer, pending.number)
    record = load_live(ctx.services.sessions, viewer, record)
    body = ActionPending(
        number=pending.number,
        update_id=pending.update_id,
        idempotency_key=key,
        accepted=pending.accepted,
        message=f"{pending}: send the same request with Idempotency-Key: {key} for its result",
        state=record.state,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


for _op in OPERATIONS.values():
    _action_route(_op)


# --- tasks, precedents ----------------------------------------------------------------------------


QueueParameter = Annotated[list[str] | None, Query()]


@router.get(
    "/tasks",
    response_model=list[TaskOut],
    tags=["tasks"],
    responses={400: PROBLEM_RESPONSES[422] | {"description": "A parameter's value is unknown"}},
)
def tasks(
    request: Request,
    response: Response,
    viewer: ViewerDep,
    sort: Annotated[
        str | None, Query(description="due (default), amount, stage, category, kind or dispute")
    ] = None,
    order: Annotated[str | None, Query(description="asc or desc")] = None,
    category: QueueParameter = None,
    stage: QueueParameter = None,
    sla: Annotated[
        list[str] | None,
        Query(description="on_time, warned_50, warned_80, overdue or none; repeat for several"),
    ] = None,
    kind: QueueParameter = None,
    page: Annotated[
        str | None, Query(description=f"1 (default) to {LAST_PAGE}: {QUEUE_LIMIT} tasks a page")
    ] = None,
) -> list[TaskOut]:
    """Your work queue: the open tasks you may act on, soonest deadline first (none last), or
    sorted and filtered as asked; several values of one filter are alternatives. An unknown
    value is refused with 400, naming the parameter. A full page (200 tasks) carries a
    `Link: <...>; rel="next"` header to the next one."""
    # Read from the query string itself, as the inbox page reads it: the parameters above are
    # for the reference, and FastAPI keeps one of two `sort` (or `order`) values silently.
    query = read_queue_query(request.query_params.multi_items())
    with web(request).services.sessions.read() as session:
        items = work_queue(session, viewer, query)
    if len(items) == QUEUE_LIMIT:  # a full page: the next one may hold more
        following = urlencode(query.as_params(page=query.page + 1))
        response.headers["Link"] = f'<{request.url.path}?{following}>; rel="next"'
    return [
        TaskOut(
            key=i.task.key,
            dispute_number=i.task.dispute_number,
            kind=i.task.kind,
            title=f"{i.label}: {i.task.dispute_number}",
            due_at=i.due_at,
            sla=i.sla,
            category=i.category,
            stage=i.stage,
            amount=i.amount,
            currency=i.currency,
            claimant=i.claimant,
            respondents=list(i.respondents),
            awaiting=i.awaiting_text,
            awaiting_from=[name for a in i.awaiting for name in a.from_whom],
        )
        for i in items
    ]


@router.get("/precedents", tags=["precedents"])
def precedents(
    request: Request, viewer: ViewerDep, query: Annotated[service.PrecedentQuery, Query()]
) -> dict[str, Any]:
    """Search the precedent library: words ("phrases", -exclusions), facet filters and a decision
    period; ranked hits with highlighted snippets, the number of matches, facet counts, and notes
    on how the query was read. Partners search the anonymised view; the other roles the full
    record. With neither words nor filters: the newest precedents.

    For compliance, the board and admins, `exceptions` too: the board's decided exceptions the
    same words and `clause` find, narrowed by `state`, newest decision first (the first 50, and
    how many match), each with its page's `url`. Other roles' answers have no `exceptions`."""
    services = web(request).services
    with services.sessions.read() as session:
        found = service.precedent_library(
            session,
            viewer,
            query,
            services.settings.public_amount_threshold,
            services.settings.precedent_anonymity_k,
        )
        board = exceptions.search_decided(
            session, viewer, q=query.q, clause=query.clause, state=query.state
        )
    found["hits"] = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in hit.items()}
        for hit in found["hits"]
    ]
    if board is not None:
        found["exceptions"] = {
            **board,
            "hits": [exceptions.json_ready(h) for h in board["hits"]],
        }
    return found


# --- admin ---------------------------------------------------------------------------------------

AdminDep = Annotated[Viewer, Depends(require(Role.ADMIN))]


@router.get("/directory/partners", tags=["admin"])
def partners(request: Request, viewer: AdminDep) -> list[dict[str, Any]]:
    with web(request).services.sessions.read() as session:
        return [p.model_dump(mode="json") for p in session.exec(select(Partner)).all()]


@router.get("/directory/people", tags=["admin"])
def people(request: Request, viewer: AdminDep) -> list[dict[str, Any]]:
    with web(request).services.sessions.read() as session:
        return [p.model_dump(mode="json") for p in session.exec(select(Person)).all()]


@router.patch("/directory/people/{person_id}", tags=["admin"])
def update_person(
    request: Request,
    viewer: AdminDep,
    person_id: Annotated[str, Path(max_length=64)],
    body: service.PersonUpdate,
) -> dict[str, Any]:
    return service.update_person(web(request), viewer, person_id, body).model_dump(mode="json")


@router.patch("/directory/partners/{partner_id}", tags=["admin"])
def update_partner(
    request: Request,
    viewer: AdminDep,
    partner_id: Annotated[str, Path(max_length=64)],
    body: service.PartnerUpdate,
) -> dict[str, Any]:
    return service.update_partner(web(request), viewer, partner_id, body).model_dump(mode="json")


@router.post("/directory", tags=["admin"])
def import_directory(request: Request, viewer: AdminDep, body: Directory) -> dict[str, int]:
    """Import or update partners, people, territories and accounts; all or nothing."""
    imported = service.import_directory_text(web(request), viewer, body.model_dump_json())
    return {
        "partners": len(imported.partners),
        "people": len(imported.people),
        "territories": len(imported.territories),
        "accounts": len(imported.accounts),
    }


@router.get("/playbooks", tags=["admin"])
def playbooks(request: Request, viewer: AdminDep) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json") for p in web(request).services.playbooks.all()]


@router.get("/accounts/lockouts", tags=["admin"])
def lockouts(request: Request, viewer: AdminDep) -> dict[str, datetime]:
    """Accounts whose sign-in is held back now (after wrong passwords), with until when."""
    return web(request).accounts.locked_accounts()


@router.delete("/accounts/{login}/lockout", status_code=204, tags=["admin"])
def lift_lockout(
    request: Request, viewer: AdminDep, login: Annotated[str, Path(max_length=320)]
) -> Response:
    """Clear an account's failed sign-ins (recorded in its audit, with the admin)."""
    if not web(request).accounts.lift_lockout(login, viewer.login):
        raise NotFound(f"a sign-in lockout of {login}")
    return Response(status_code=204)


@router.get("/account/sign-ins", tags=["account"])
def sign_in_activity(request: Request, viewer: ViewerDep) -> list[dict[str, Any]]:
    """The account's recent audit, newest first: sign-ins, wrong passwords, lockouts,
    sign-outs, with the client address."""
    return [
        e.model_dump(mode="json", exclude={"id"})
        for e in web(request).accounts.events(viewer.login)
    ]


# --- API tokens -----------------------------------------------------------------------------------


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["account"])
def create_token(request: Request, viewer: ViewerDep, body: TokenRequest) -> TokenCreated:
    accounts = web(request).accounts
    token = accounts.issue_token(viewer.login, body.name)
    newest = accounts.tokens(viewer.login)[0]
    assert newest.id is not None
    return TokenCreated(id=newest.id, name=body.name, token=token)


@router.get("/tokens", response_model=list[TokenOut], tags=["account"])
def list_tokens(request: Request, viewer: ViewerDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in web(request).accounts.tokens(viewer.login)]


@router.delete("/tokens/{token_id}", status_code=204, tags=["account"])
def revoke_token(request: Request, viewer: ViewerDep, token_id: int) -> Response:
    if not web(request).accounts.revoke_token(viewer.login, token_id):
        raise NotFound(f"token {token_id}")
    return Response(status_code=204)


__all__ = ["BadInput", "Dispute", "router"]
