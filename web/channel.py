"""The channel-data API (issue 20, item 1), for admins: import a file (CSV or a Salesforce
export) and follow its progress, import rows posted as JSON, list the imports.

A file is sent as the request's body (`Content-Type: text/csv` or `application/json`), not as
a form: the route reads it only once the token is known to be an admin's, within
ACCORD_CHANNEL_IMPORT_MAX_BYTES (web.limits gives this route that ceiling and leaves its JSON to
the importer, which reads 100,000 records). It is imported in the background: the answer is
202 with the import's record, whose state and progress GET /api/channel/imports/{id} shows.
One file import runs at a time per web process (each holds its file and rows in memory);
another is refused with 429 until it ends.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, date, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from accord.channel import alerts, imports
from accord.channel.rows import PLURALS, SALESFORCE_TYPES, salesforce_kind
from accord.disputes import conversion
from accord.disputes.access import Viewer
from accord.playbooks.library import Engagement
from models.enums import AlertKind, AlertState, ChannelKind, ImportFormat, ImportState, Role
from models.payloads import FilingResult, Money, Text
from models.tables import MAX_ROW_ID, ChannelImport, ConflictAlert
from models.text import StoredLine, problem
from notifications import alerts as alert_notices
from web import service
from web.context import WebContext, web
from web.deps import require
from web.problems import PROBLEM_RESPONSES, BadInput, BodyTooLarge, TooMany
from web.views import NotFound

log = logging.getLogger("accord.channel")
router = APIRouter(prefix="/api/channel", responses=PROBLEM_RESPONSES, tags=["channel data"])
AdminDep = Annotated[Viewer, Depends(require(Role.ADMIN))]

FILES_PATH = "/api/channel/imports"


_one_at_a_time = threading.BoundedSemaphore(1)


class ProblemOut(BaseModel):
    row: int | None
    field: str | None
    problem: str
    said: str
    """The problem in a sentence: file, row (or record), field and what is wrong."""


class ImportOut(BaseModel):
    id: int
    kind: ChannelKind
    format: ImportFormat
    file_name: str
    state: ImportState
    """reading, writing, done, refused, or stopped (its process ended midway: nothing of it
    was written)."""
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    rows_total: int
    rows_done: int
    created: int
    updated: int
    unchanged: int
    alerts_raised: int = 0
    """Conflict alerts the import found that were not known before."""
    alerts_refreshed: int = 0
    """Open alerts it found again, brought up to date."""
    problem_count: int
    problems: list[ProblemOut] = Field(default_factory=list)
    """The first of its problems (problem_count says how many there were)."""


def _out(record: ChannelImport, now: datetime | None = None) -> ImportOut:
    assert record.id is not None
    problems = [
        imports.Problem(p.get("row"), p.get("field"), str(p.get("problem")))
        for p in record.problems
    ]
    return ImportOut(
        id=record.id,
        kind=record.kind,
        format=record.format,
        file_name=record.file_name,
        state=imports.state_now(record, now or datetime.now(UTC)),
        started_by=record.started_by,
        started_at=record.started_at,
        finished_at=record.finished_at,
        rows_total=record.rows_total,
        rows_done=record.rows_done,
        created=record.created,
        updated=record.updated,
        unchanged=record.unchanged,
        alerts_raised=record.alerts_raised,
        alerts_refreshed=record.alerts_refreshed,
        problem_count=record.problem_count,
        problems=[
            ProblemOut(**p.as_dict(), said=p.said(record.file_name, record.format))
            for p in problems
        ],
    )


def _format_of(request: Request, given: ImportFormat | None) -> ImportFormat:
    if given is not None:
        if given is ImportFormat.API:
            raise BadInput([("format", "csv or salesforce (rows go to /api/channel/{kind}/rows)")])
        return given
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in ("text/csv", "application/csv"):
        return ImportFormat.CSV
    if content_type == "application/json":
        return ImportFormat.SALESFORCE
    raise BadInput(
        [
            (
                "content-type",
                "text/csv for a CSV file, application/json for a Salesforce export (or say"
                " which with ?format=)",
            )
        ]
    )


async def _body(request: Request, most: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > most:
            raise BodyTooLarge([("body", f"is larger than this server takes ({most:,} bytes)")])
        chunks.append(chunk)
    return b"".join(chunks)


def _tell(context: WebContext, done: ChannelImport) -> None:
    """The partners the import's new alerts name are told (notifications.alerts)."""
    if done.id is not None and done.alerts_raised:
        alert_notices.tell_raised(
            context.services.outbox, context.services.sessions, done.id, datetime.now(UTC)
        )


def _engagement(context: WebContext) -> Engagement | None:
    """The rules of engagement in force: detection checks their pricing bands and routing."""
    return context.services.playbooks.in_force(date.today()).engagement


@router.post("/imports", status_code=202, response_model=ImportOut)
async def import_a_file(
    request: Request,
    viewer: AdminDep,
    kind: Annotated[
        ChannelKind | None,
        Query(description="what the file holds; a Salesforce export's record type says it"),
    ] = None,
    format: Annotated[
        ImportFormat | None, Query(description="csv or salesforce; by default its content type")
    ] = None,
    name: Annotated[
        str, Query(min_length=1, max_length=255, description="the file's name, for problems")
    ] = "upload",
) -> JSONResponse:
    """Import one file, all or nothing, in the background: 202 with the import's record;
    follow it at the Location given."""
    context = web(request)
    unfit = problem(name, multiline=False)
    if unfit is not None:
        raise BadInput([("name", f"holds {unfit}")])
    fmt = _format_of(request, format)
    data = await _body(request, context.settings.channel_import_max_bytes)
    if kind is None and fmt is ImportFormat.SALESFORCE:
        try:
            kind = salesforce_kind(data)
        except ValueError as exc:
            raise BadInput([("body", str(exc))]) from None
    if kind is None:
        types = ", ".join(SALESFORCE_TYPES)
        raise BadInput([("kind", f"say what the file holds (a Salesforce export's type: {types})")])
    # A moment's wait: the import before may have recorded its end and not yet let go.
    if not await anyio.to_thread.run_sync(lambda: _one_at_a_time.acquire(timeout=1.0)):
        raise TooMany("body", "another file import is running in this process; try when it ends")
    try:
        record = imports.begin(
            context.services.sessions,
            kind=kind,
            fmt=fmt,
            file_name=name,
            data=data,
            started_by=viewer.actor.id,
        )
    except BaseException:
        _one_at_a_time.release()
        raise

    def work() -> None:
        try:
            done = imports.run(
                context.services.sessions, record, data, engagement=_engagement(context)
            )
            _tell(context, done)
        except imports.ImportRefused as refused:
            # The caller reads the refusal, problem by problem, from the import's record
            # (GET .../imports/{id}), where imports.run stored it before raising; the
            # operator's log says it too.
            log.info("channel import %s refused: %d problem(s)", record.id, len(refused.problems))
        finally:
            _one_at_a_time.release()

    threading.Thread(target=work, name=f"channel-import-{record.id}", daemon=True).start()
    return JSONResponse(
        _out(record).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"{FILES_PATH}/{record.id}"},
    )


@router.get("/imports", response_model=list[ImportOut])
def list_imports(request: Request, viewer: AdminDep) -> list[ImportOut]:
    """The last 50 imports, newest first (their problems in GET /imports/{id})."""
    now = datetime.now(UTC)
    with web(request).services.sessions.read() as session:
        return [_out(r, now).model_copy(update={"problems": []}) for r in imports.recent(session)]


@router.get("/imports/{import_id}", response_model=ImportOut)
def one_import(
    request: Request,
    viewer: AdminDep,
    import_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> ImportOut:
    """An import's state and progress while it runs; its outcome, or its problems, after."""
    with web(request).services.sessions.read() as session:
        record = session.get(ChannelImport, import_id)
    if record is None:
        raise NotFound(f"no import {import_id}")
    return _out(record)


@router.post("/{kind}/rows", response_model=ImportOut, status_code=201)
def import_rows(
    request: Request,
    viewer: AdminDep,
    kind: Annotated[ChannelKind, Path(description="registration, opportunity, lead, ...")],
    rows: list[dict[str, Any]],
) -> ImportOut:
    """Import rows posted as a JSON list (fields as in the CSV files), all or nothing, at once:
    201 with the outcome, or 422 naming each row's field at fault (`rows[3].amount`) with
    nothing written. Larger sets go through POST /imports."""
    data = json.dumps(rows).encode()
    try:
        done = imports.import_file(
            web(request).services.sessions,
            kind=kind,
            fmt=ImportFormat.API,
            file_name=f"{PLURALS[kind]} posted",
            data=data,
            started_by=viewer.actor.id,
            engagement=_engagement(web(request)),
        )
        _tell(web(request), done)
    except imports.ImportRefused as refused:
        raise BadInput(
            [
                (
                    f"rows[{p.row - 1}]{'.' + p.field if p.field else ''}"
                    if p.row is not None
                    else "rows",
                    p.problem,
                )
                for p in refused.problems
            ]
        ) from None
    return _out(done)


# --- the alert queue -----------------------------------------------------------------------------


class AlertOut(BaseModel):
    id: int
    kind: AlertKind
    state: AlertState
    score: float
    partner_ids: list[str]
    reasons: list[str]
    evidence: dict[str, Any]
    """Who registered what, when, as of the detection."""
    objects: list[str]
    """The two objects, as a dispute names contested objects ('registration:DR-1')."""
    detected_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    dispute_number: str | None


class AlertDecision(BaseModel):
    at: datetime
    actor: str
    action: str
    """dismissed; claimed (for a dispute), converted (made that dispute), given_back (its
    filing was refused: open again)."""
    detail: dict[str, Any]


class AlertRecord(AlertOut):
    history: list[AlertDecision]
    """The alert's audit trail: every decision on it, in the order taken."""


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    total: int
    """How many alerts match the filters (`alerts` holds one page of them)."""


def _alert_out(alert: ConflictAlert) -> AlertOut:
    assert alert.id is not None
    return AlertOut(
        id=alert.id,
        kind=alert.kind,
        state=alert.state,
        score=alert.score,
        partner_ids=alert.partner_ids,
        reasons=alert.reasons,
        evidence=alert.evidence,
        objects=alert.pair_key.split("|"),
        detected_at=alert.detected_at,
        updated_at=alert.updated_at,
        decided_by=alert.decided_by,
        decided_at=alert.decided_at,
        decision_reason=alert.decision_reason,
        dispute_number=alert.dispute_number,
    )


@router.get("/alerts", response_model=AlertPage)
def alert_queue(
    request: Request,
    viewer: AdminDep,
    kind: AlertKind | None = None,
    state: Annotated[AlertState | None, Query(description="open by default")] = AlertState.OPEN,
    partner: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    """Conflict alerts, highest score first, filtered by kind, state and partner involved."""
    with web(request).services.sessions.read() as session:
        rows, total = alerts.listed(
            session, kind=kind, state=state, partner_id=partner, most=limit, skip=offset
        )
    return AlertPage(alerts=[_alert_out(a) for a in rows], total=total)


@router.get("/alerts/{alert_id}", response_model=AlertRecord)
def one_alert(
    request: Request, viewer: AdminDep, alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
) -> AlertRecord:
    """One alert with its audit trail."""
    with web(request).services.sessions.read() as session:
        alert = session.get(ConflictAlert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        trail = alerts.history(session, alert_id)
    return AlertRecord(
        **_alert_out(alert).model_dump(),
        history=[
            AlertDecision(at=e.at, actor=e.actor, action=e.action, detail=e.detail) for e in trail
        ],
    )


@router.post("/alerts/{alert_id}/dismiss", response_model=AlertOut)
def dismiss_alert(
    request: Request,
    viewer: AdminDep,
    alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    body: alerts.Dismissal,
) -> AlertOut:
    """Dismiss an open alert with a reason: the next import finding the same overlap leaves it
    dismissed. 409 when it is decided already (by whom, when)."""
    return _alert_out(service.dismiss_alert(web(request), viewer, alert_id, body))


class ConvertRequest(BaseModel):
    """Which of the alert's partners files; the rest of the filing comes from the alert."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    claimant_id: Annotated[str, StringConstraints(min_length=1, max_length=64), StoredLine]
    amount_at_stake: Money | None = None
    """Without one: the largest amount the alert's objects were registered for (else 0)."""
    desired_remedy: Text | None = None


class Converted(BaseModel):
    alert: AlertOut
    dispute: FilingResult


@router.post("/alerts/{alert_id}/convert", response_model=Converted, status_code=201)
async def convert_alert(
    request: Request,
    viewer: AdminDep,
    alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    body: ConvertRequest,
) -> Converted:
    """Make an open alert a dispute, filed for `claimant_id` against the alert's other partner,
    pre-filled from the alert, with its evidence snapshot attached. 409 when it is decided
    already; 422 naming the field when the filing is refused (nothing is kept, the alert stays
    open)."""
    ctx = web(request)
    filed = await service.convert_alert(
        ctx,
        viewer,
        alert_id,
        conversion.Conversion(
            claimant_id=body.claimant_id,
            amount_at_stake=body.amount_at_stake,
            **({"desired_remedy": body.desired_remedy} if body.desired_remedy else {}),
        ),
    )
    with ctx.services.sessions.read() as session:
        alert = session.get(ConflictAlert, alert_id)
    assert alert is not None
    return Converted(alert=_alert_out(alert), dispute=filed)
