"""What the pages and the API do, once: file, act, add evidence, list, export.

Every function takes the viewer and checks what they may see before anything else, so a
route cannot forget it; a dispute that is not theirs is "not found", before any validator
could say something about it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi.responses import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from sqlmodel import Session, col, select
from starlette.datastructures import FormData
from starlette.requests import Request

from accord.application import build_filing
from accord.channel import alerts
from accord.channel.alerts import AlertRefused
from accord.directory.records import (
    CaseLimit,
    Conflict,
    Directory,
    DirectoryError,
    check_references,
    end_sessions,
    import_directory,
    parse_directory,
    unknown_conflicts,
)
from accord.disputes import conversion, evidence, texts
from accord.disputes.access import (
    Viewer,
    can_see_dispute,
    may_read_evidence,
    may_read_raw_audit,
    side_of,
    standing,
)
from accord.disputes.filing import FilingRejected
from accord.disputes.listing import DisputeFilters, SearchWords
from accord.disputes.operations import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_RULE,
    DisputeGone,
    Operation,
    Refused,
    build_payload,
    perform,
    update_id,
)
from accord.precedents.anonymity import DEFAULT_K, Population, load_population
from accord.precedents.library import anonymised
from accord.precedents.search import Filters as SearchFilters
from accord.precedents.search import search_precedents as full_text_search
from accord.reports import exports
from accord.reports.exports import DateRange
from accord.reports.health import ChannelHealth
from accord.reports.health import channel_health as build_channel_health
from accord.reports.sla import SlaReport
from accord.reports.sla import sla_report as build_sla_report
from accord.rules.audit import first_broken_link
from accord.rules.transitions import why_not
from intake.processor import IntakeProcessor, NotHeld
from intake.processor import listed as listed_inbound
from models.enums import (
    Action,
    DisputeCategory,
    EvidenceVisibility,
    ExceptionState,
    InboundState,
    PartnerTier,
    RemedyKind,
    Role,
)
from models.payloads import (
    ActionResult,
    AddEvidence,
    EvidenceDescription,
    FilingResult,
    FilingSubmission,
)
from models.tables import (
    ConflictAlert,
    Dispute,
    DisputeEvent,
    Evidence,
    EvidenceBlob,
    InboundMessage,
    OutboxMessage,
    Partner,
    Person,
    Precedent,
    may_be_row_id,
)
from models.text import StoredLine, check_line
from notifications import alerts as alert_notices
from notifications.outbox import OutboxRefused, answered_message
from web import evidence as uploads
from web import idempotency
from web.auth import TokenName
from web.context import WebContext
from web.forms import field_errors
from web.problems import AlertDecided, BadInput, ExportTooLarge, Forbidden, TooMany
from web.views import NotFound
from workflows.dispute import DisputeWorkflow

# --- filing -----------------------------------------------------------------------------------


async def file_dispute(
    ctx: WebContext,
    viewer: Viewer,
    data: dict[str, Any],
    files: list[evidence.Upload],
    *,
    evidence_visibility: EvidenceVisibility = EvidenceVisibility.PARTIES,
) -> tuple[FilingResult, list[str]]:
    """File for the viewer's own organisation; returns the result and the evidence ids."""
    if viewer.role is not Role.PARTNER or viewer.actor.partner_id is None:
        raise Forbidden("disputes are filed by partner users, for their own organisation")
    claimant = data.get("claimant_id") or viewer.actor.partner_id
    if claimant != viewer.actor.partner_id:
        raise BadInput([("claimant_id", f"you file for {viewer.actor.partner_id} only")])
    _check_uploads(ctx, files)
    try:
        submission = FilingSubmission.model_validate(
            {**data, "claimant_id": claimant, "filed_by": viewer.login}
        )
    except ValidationError as exc:
        raise BadInput(field_errors(exc)) from None
    service = build_filing(ctx.services, ctx.temporal())
    try:
        result = await service.file(submission)
    except FilingRejected as exc:
        raise BadInput([(e.field, e.message) for e in exc.errors]) from None
    side = viewer.actor.partner_id if evidence_visibility is EvidenceVisibility.SIDE else None
    added = await _attach(ctx, viewer, result.number, files, "", evidence_visibility, side)
    return result, added


# --- actions ----------------------------------------------------------------------------------


def ensure_visible(ctx: WebContext, viewer: Viewer, number: str) -> None:
    with ctx.services.sessions.read() as session:
        if not can_see_dispute(session, viewer, number):
            raise NotFound(number)


async def act(
    ctx: WebContext,
    viewer: Viewer,
    number: str,
    op: Operation,
    data: dict[str, Any],
    *,
    key: str,
) -> ActionResult:
    """Perform the action once per idempotency key, waiting at most the configured time (then
    StillApplying: the same key again picks the action up)."""
    await asyncio.to_thread(ensure_visible, ctx, viewer, number)
    if viewer.role is Role.COMPLIANCE:
        raise Forbidden("compliance reads disputes; it never acts on them")
    _check_key(key)
    try:
        payload = build_payload(op, viewer.actor, data)
    except ValidationError as exc:
        raise BadInput(field_errors(exc)) from None
    try:
        return await idempotency.perform_once(
            ctx.temporal(),
            ctx.services.sessions,
            number,
            op,
            payload,
            key=key,
            wait_seconds=ctx.settings.action_wait_seconds,
            limits=texts.limits_of(ctx.settings),
        )
    except texts.TooManyTexts as over:
        raise TooMany(over.field, over.message) from None
    except texts.TextProblem as problem:
        raise BadInput([(problem.field, problem.message)]) from None


def _check_key(key: str) -> None:
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadInput([("form", f"the idempotency key must be {IDEMPOTENCY_KEY_RULE}")])


async def add_evidence(
    ctx: WebContext,
    viewer: Viewer,
    number: str,
    files: list[evidence.Upload],
    *,
    description: str,
    visibility: EvidenceVisibility,
    side_partner_id: str | None,
    key: str,
) -> list[str]:
    """Attach the files once per idempotency key, waiting at most the configured time for all
    of them (then StillApplying: the same key again attaches the rest, none twice)."""
    await asyncio.to_thread(ensure_visible, ctx, viewer, number)
    _check_key(key)
    if not files:
        raise BadInput([("files", "choose at least one file")])
    _check_uploads(ctx, files)
    _check_description(description)
    if visibility is EvidenceVisibility.SIDE and viewer.role is Role.PARTNER:
        side_partner_id = side_partner_id or viewer.actor.partner_id
    return await _attach(
        ctx,
        viewer,
        number,
        files,
        description,
        visibility,
        side_partner_id,
        key=key,
        wait_seconds=ctx.settings.action_wait_seconds,
    )


async def read_upload_form(
    ctx: WebContext,
    request: Request,
    files_field: str = "files",
    problems: list[tuple[str, str]] | None = None,
) -> FormData:
    """The request's multipart form, each file checked as it arrives (web.evidence): BadInput
    naming the file or the form at the first fault, or, given a `problems` list, every fault
    added to it and the refused files left out. Only once the upload is authorised."""
    try:
        form, found = await uploads.read_upload_form(
            request.headers,
            request.stream(),
            ctx.settings,
            files_field,
            collect=problems is not None,
        )
    except evidence.UploadProblem as problem:
        raise BadInput([(problem.field, problem.message)]) from None
    if problems is not None:
        problems.extend((p.field, p.message) for p in found)
    return form


def authorise_upload(ctx: WebContext, viewer: Viewer, number: str) -> None:
    """Before a byte of an upload is read: may the viewer add evidence to this dispute now? By
    the read model, as the workflow's validator would judge it (the role in this stage, a party
    for a partner, the assigned mediator); the validator still has the last word."""
    with ctx.services.sessions.read() as session:
        if not can_see_dispute(session, viewer, number):
            raise NotFound(number)
        dispute = session.get(Dispute, number)
        side = side_of(session, viewer, number)
    if dispute is None:
        raise NotFound(number)
    if viewer.role is Role.COMPLIANCE:
        raise Forbidden("compliance reads disputes; it never acts on them")
    problem = why_not(dispute.stage, Action.ADD_EVIDENCE, viewer.role)
    if problem is not None:
        raise Refused(problem)
    if viewer.role is Role.PARTNER and side is None:
        raise Refused(f"{viewer.actor.id} does not act for a party to {number}")
    if viewer.role is Role.MEDIATOR and dispute.mediator_id != viewer.actor.id:
        raise Refused(f"{viewer.actor.id} is not the mediator assigned to {number}")


def _check_description(description: str) -> None:
    # The evidence item's own type, checked before any bytes are stored: a description
    # refused after would leave them behind.
    try:
        TypeAdapter(EvidenceDescription).validate_python(description)
    except ValidationError as exc:
        raise BadInput([("description", m) for _, m in field_errors(exc)]) from None


def token_name(name: str) -> str:
    """`name` as a token may be called (web.auth.TokenName), or BadInput naming the field."""
    try:
        return str(TypeAdapter(TokenName).validate_python(name))
    except ValidationError as exc:
        raise BadInput([("name", m) for _, m in field_errors(exc)]) from None


def _check_uploads(ctx: WebContext, files: list[evidence.Upload]) -> None:
    try:
        evidence.check_uploads(ctx.settings, files)
    except evidence.UploadProblem as problem:
        raise BadInput([(problem.field, problem.message)]) from None


async def _attach(
    ctx: WebContext,
    viewer: Viewer,
    number: str,
    files: list[evidence.Upload],
    description: str,
    visibility: EvidenceVisibility,
    side_partner_id: str | None,
    *,
    key: str | None = None,
    wait_seconds: float | None = None,
) -> list[str]:
    """Store and attach each file; with a key, the upload is recorded under it (the same key
    with other files or settings is refused: KeyReused) and each file is one update under it
    (by position, so the same upload again names the same updates), and the wait is for all
    of them. A file the dispute refuses leaves no bytes behind."""
    loop = asyncio.get_running_loop()
    deadline = None if wait_seconds is None else loop.time() + wait_seconds
    sessions = ctx.services.sessions
    request = idempotency.fingerprint(
        number,
        {
            "description": description,
            "visibility": visibility.value,
            "side_partner_id": side_partner_id,
            "files": [
                [f.filename, f.content_type, hashlib.sha256(f.data).hexdigest()] for f in files
            ],
        },
    )
    scope = None if key is None else idempotency.key_scope(Action.ADD_EVIDENCE, viewer.actor, key)
    # The database steps run on a thread: the event loop (which the worker may share) goes on.
    if scope is not None:
        await asyncio.to_thread(idempotency.claim, sessions, scope, request)
    added: list[str] = []
    for position, upload in enumerate(files):
        digest, stored = await asyncio.to_thread(evidence.store_blob, sessions, upload)
        try:
            item = evidence.describe(
                upload,
                digest,
                description=description,
                visibility=visibility,
                side_partner_id=side_partner_id,
            )
            payload = AddEvidence(actor=viewer.actor, evidence=item)
        except ValidationError as exc:
            if stored:
                await asyncio.to_thread(evidence.discard_blob, sessions, digest)
            raise BadInput(field_errors(exc)) from None
        try:
            result = await perform(
                ctx.temporal(),
                number,
                payload,
                DisputeWorkflow.add_evidence,
                update_id=None
                if key is None
                else update_id(
                    Action.ADD_EVIDENCE, viewer.actor, key, fingerprint=f"{request}/{position}"
                ),
                # Past the deadline a file still gets a moment: sent, and picked up by a retry.
                wait_seconds=None if deadline is None else max(deadline - loop.time(), 0.001),
            )
        except (Refused, DisputeGone):
            if stored:
                await asyncio.to_thread(evidence.discard_blob, sessions, digest)
            if scope is not None and not added:
                # Nothing attached under the key: it is free for another upload.
                await asyncio.to_thread(idempotency.release, sessions, scope, request)
            raise
        added.append(result.reference or item.id)
    return added


def evidence_content(
    ctx: WebContext, viewer: Viewer, number: str, evidence_id: str
) -> tuple[Evidence, bytes]:
    with ctx.services.sessions.read() as session:
        where = standing(session, viewer, number)
        if where is None:
            raise NotFound(number)
        item = session.get(Evidence, evidence_id)
        if (
            item is None
            or item.dispute_number != number
            or not may_read_evidence(viewer, where, item)
        ):
            raise NotFound(evidence_id)
        blob = session.get(EvidenceBlob, item.sha256)
        if blob is None:
            raise NotFound(evidence_id)
        return item, blob.content


# --- lists ------------------------------------------------------------------------------------


# --- the directory (admins) -----------------------------------------------------------------------


def import_directory_text(ctx: WebContext, viewer: Viewer, text: str) -> Directory:
    """Parse, check and import a directory file in one transaction: all of it or nothing."""
    _require_admin(viewer)
    try:
        directory = parse_directory(text)
        playbook = ctx.services.playbooks.in_force(date.today())
        with ctx.services.sessions.begin() as session:
            check_references(session, directory, playbook)
            import_directory(session, directory)
    except DirectoryError as exc:
        raise BadInput([_directory_problem(p) for p in exc.problems]) from None
    return directory


def _directory_problem(problem: str) -> tuple[str, str]:
    where, sep, message = problem.partition(": ")
    return (where, message) if sep else ("file", problem)


Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
    ),
]


class PersonUpdate(BaseModel):
    """An admin's change to a person: capacity, declared conflicts, whether active."""

    model_config = ConfigDict(extra="forbid")
    active: bool | None = None
    case_limit: CaseLimit | None = None
    declared_conflicts: Annotated[list[Conflict], Field(max_length=100)] | None = None
    """Partner ids, account:<code> or territory:<code>, the person must not judge; each must
    name one in the directory."""


class PartnerUpdate(BaseModel):
    """An admin's change to a partner: tier, email domains, calendar, whether active."""

    model_config = ConfigDict(extra="forbid")
    tier: PartnerTier | None = None
    active: bool | None = None
    email_domains: Annotated[list[Domain], Field(max_length=50)] | None = None
    calendar: Annotated[str, StringConstraints(max_length=64)] | None = None


def update_person(ctx: WebContext, viewer: Viewer, person_id: str, change: PersonUpdate) -> Person:
    _require_admin(viewer)
    with ctx.services.sessions.begin() as session:
        person = session.get(Person, person_id) if _storable(person_id) else None
        if person is None:
            raise NotFound(person_id)
        unknown = unknown_conflicts(session, change.declared_conflicts or ())
        if unknown:
            raise BadInput([("declared_conflicts", why) for why in unknown])
        if person.active and change.active is False:
            end_sessions(session, person.email)
        for name, value in change.model_dump(exclude_none=True).items():
            setattr(person, name, value)
        session.add(person)
        return person


def update_partner(
    ctx: WebContext, viewer: Viewer, partner_id: str, change: PartnerUpdate
) -> Partner:
    _require_admin(viewer)
    calendars = ctx.services.playbooks.in_force(date.today()).calendars
    if change.calendar is not None and change.calendar not in calendars:
        raise BadInput([("calendar", f"not a calendar of the playbook ({', '.join(calendars)})")])
    with ctx.services.sessions.begin() as session:
        partner = session.get(Partner, partner_id) if _storable(partner_id) else None
        if partner is None:
            raise NotFound(partner_id)
        for name, value in change.model_dump(exclude_none=True).items():
            setattr(partner, name, value)
        session.add(partner)
        return partner


def _storable(key: str) -> bool:
    """Whether `key` could be stored at all: one with a NUL is no row's (and PostgreSQL
    refuses to look it up)."""
    try:
        check_line(key)
    except ValueError:
        return False
    return True


def _require_admin(viewer: Viewer) -> None:
    if viewer.role is not Role.ADMIN:
        raise Forbidden("the directory is maintained by admins")


# --- email intake (admins) ----------------------------------------------------------------------


def inbound_messages(
    ctx: WebContext, viewer: Viewer, state: str
) -> tuple[list[InboundMessage], int]:
    """The newest messages in `state` and how many are in it (intake.processor.listed)."""
    _require_admin(viewer)
    try:
        wanted = InboundState(state)
    except ValueError:
        raise BadInput([("state", f"one of {', '.join(s.value for s in InboundState)}")]) from None
    return listed_inbound(ctx.services.sessions, wanted)


def refused_intake_replies(
    ctx: WebContext, viewer: Viewer
) -> list[tuple[OutboxMessage, InboundMessage | None]]:
    """The intake's answers the sender's server refused for good, each with the message it
    answers (they belong to no dispute, so no dispute page or task shows them)."""
    _require_admin(viewer)
    rows = ctx.services.outbox.refused_intake_replies()
    with ctx.services.sessions.read() as session:
        return [(row, session.get(InboundMessage, answered_message(row) or 0)) for row in rows]


def decide_intake_reply(ctx: WebContext, viewer: Viewer, message_id: int, decision: str) -> str:
    """Send a refused intake answer again (the address or the server was put right), or
    dismiss it; only the intake's own answers on no dispute are decided here."""
    if viewer.role is not Role.ADMIN:
        raise Forbidden("refused mail is resent or dismissed by admins")
    if decision not in ("resend", "dismiss"):
        raise NotFound(f"decision {decision}")
    outbox = ctx.services.outbox
    row = outbox.message(message_id)
    if row is None or row.dispute_number or answered_message(row) is None:
        raise NotFound(f"intake answer {message_id}")
    now = datetime.now(UTC)
    try:
        if decision == "resend":
            outbox.resend(message_id, now)
            return f"answer {message_id} to {row.recipient} is being sent again"
        outbox.dismiss(message_id, now)
    except OutboxRefused as exc:
        raise BadInput([("message", str(exc))]) from None
    return f"answer {message_id} to {row.recipient} dismissed: it will not be sent"


def inbound_original(ctx: WebContext, viewer: Viewer, inbound_id: int) -> bytes:
    _require_admin(viewer)
    if not may_be_row_id(inbound_id):
        raise NotFound(f"message {inbound_id}")
    with ctx.services.sessions.read() as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            raise NotFound(f"message {inbound_id}")
        return bytes(row.raw)


async def decide_inbound(ctx: WebContext, viewer: Viewer, inbound_id: int, decision: str) -> str:
    """An admin's decision on a held or failed message: process it again (after adding the
    sender to the directory, say) or discard it; either way the decision is recorded on it."""
    _require_admin(viewer)
    if decision == "retry":
        processor = IntakeProcessor(ctx.services, ctx.temporal())
        try:
            processor.reopen(inbound_id, viewer.login)
        except LookupError:
            raise NotFound(f"message {inbound_id}") from None
        except NotHeld as exc:
            raise BadInput([("state", str(exc))]) from None
        try:
            state = await processor.process(inbound_id)
        finally:
            processor.close()
        return f"message {inbound_id} processed again: {state.value}"
    if decision != "discard":
        raise NotFound(f"decision {decision}")
    if not may_be_row_id(inbound_id):
        raise NotFound(f"message {inbound_id}")
    # Locked (PostgreSQL) / the only writer (SQLite): a retry taken at the same moment, or a
    # processor's claim that followed it, is seen and not overwritten.
    with ctx.services.sessions.begin(immediate=True) as session:
        row = session.get(InboundMessage, inbound_id, with_for_update=True)
        if row is None:
            raise NotFound(f"message {inbound_id}")
        if row.state not in (InboundState.QUARANTINED, InboundState.FAILED):
            raise BadInput(
                [("state", f"message {inbound_id} is {row.state.value}, not held or failed")]
            )
        row.reason = f"discard by {viewer.login} (was: {row.reason})"[:5000]
        row.state = InboundState.IGNORED
        session.add(row)
    return f"message {inbound_id} discarded"


# --- mail the server refused (admins) -------------------------------------------------------------


def decide_mail(
    ctx: WebContext, viewer: Viewer, number: str, message_id: int, decision: str
) -> str:
    """An admin's decision on a message the mail server refused for good: send it again (the
    address or the server was put right) or dismiss it; either closes its admin task."""
    if viewer.role is not Role.ADMIN:
        raise Forbidden("refused mail is resent or dismissed by admins")
    if decision not in ("resend", "dismiss"):
        raise NotFound(f"decision {decision}")
    outbox = ctx.services.outbox
    row = outbox.message(message_id)
    if row is None or row.dispute_number != number:
        raise NotFound(f"message {message_id} of {number}")
    now = datetime.now(UTC)
    try:
        if decision == "resend":
            outbox.resend(message_id, now)
            return f"message {message_id} to {row.recipient} is being sent again"
        outbox.dismiss(message_id, now)
    except OutboxRefused as exc:
        raise BadInput([("message", str(exc))]) from None
    return f"message {message_id} to {row.recipient} dismissed: it will not be sent"


# --- exports (compliance and admins) --------------------------------------------------------------


def _require_auditor(viewer: Viewer) -> None:
    if not may_read_raw_audit(viewer):
        raise Forbidden("exports and audit trails are for compliance and admins")


def sla_report(ctx: WebContext, viewer: Viewer, period: DateRange) -> SlaReport:
    """The SLA and channel-health report over disputes filed in the period (compliance, admins).
    Without a period: the last 90 days."""
    _require_auditor(viewer)
    now = datetime.now(UTC)
    start, end = period.bounds()
    if start is None and end is None:
        start = now - timedelta(days=REPORT_DEFAULT_DAYS)
    playbook = ctx.services.playbooks.in_force(now.date())
    with ctx.services.sessions.read() as session:
        return build_sla_report(session, start, end, now, playbook)


REPORT_DEFAULT_DAYS = 90


@contextmanager
def _exporting(ctx: WebContext, viewer: Viewer) -> Iterator[Session]:
    """A read session for an export, after checking the viewer may export; an export too large
    is the 400 naming the filter that narrows it."""
    _require_auditor(viewer)
    try:
        with ctx.services.sessions.read() as session:
            yield session
    except exports.TooLarge as exc:
        raise ExportTooLarge([(exc.field, str(exc))]) from None


def export_disputes(ctx: WebContext, viewer: Viewer, filters: DisputeFilters, fmt: str) -> str:
    with _exporting(ctx, viewer) as session:
        return exports.disputes_export(session, viewer, filters, fmt)


def export_precedents(ctx: WebContext, viewer: Viewer, period: DateRange, fmt: str) -> str:
    """The full record of every precedent decided in the period (compliance and admins)."""
    with _exporting(ctx, viewer) as session:
        return exports.precedents_export(session, period, fmt)


def export_audit_period(ctx: WebContext, viewer: Viewer, period: DateRange, fmt: str) -> str:
    """Every audit entry recorded in the period, across disputes, with its hashes."""
    with _exporting(ctx, viewer) as session:
        return exports.audit_period_export(session, period, fmt)


def channel_health(ctx: WebContext, viewer: Viewer, period: DateRange) -> ChannelHealth:
    """The channel-health view over the alerts detected and the disputes filed in the period
    (compliance, admins). Without a period: the last 90 days, as the SLA report."""
    _require_auditor(viewer)
    now = datetime.now(UTC)
    start, end = period.bounds()
    if start is None and end is None:
        start = now - timedelta(days=REPORT_DEFAULT_DAYS)
    with ctx.services.sessions.read() as session:
        return build_channel_health(session, start, end, now)


def audit_trail(
    ctx: WebContext, viewer: Viewer, number: str
) -> tuple[list[DisputeEvent], int | None]:
    _require_auditor(viewer)
    with ctx.services.sessions.read() as session:
        if session.get(Dispute, number) is None:
            raise NotFound(number)
        events = list(
            session.exec(
                select(DisputeEvent)
                .where(DisputeEvent.dispute_number == number)
                .order_by(col(DisputeEvent.seq))
            ).all()
        )
    return events, first_broken_link(events)


def trail_texts(ctx: WebContext, events: list[DisputeEvent]) -> dict[str, str]:
    """The bodies of the stored texts these entries name, by id (`exports.trail_bodies`)."""
    with ctx.services.sessions.read() as session:
        return exports.trail_bodies(session, events)


def export_audit(ctx: WebContext, viewer: Viewer, number: str, fmt: str) -> str:
    events, _ = audit_trail(ctx, viewer, number)
    return exports.audit_export(events, trail_texts(ctx, events), fmt)


def export_response(body: str, filename: str, fmt: str) -> Response:
    """An export as a download: CSV or JSON."""
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- precedents (the full record, or the anonymised view for partners) ---------------------------


class PrecedentQuery(BaseModel):
    """The precedent library's query: words, facet filters, a decision period, a page. The
    board's decided exceptions listed beside the precedents, for those who read them, are found
    by the same words and clause, and narrowed by `state`."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    q: SearchWords = ""
    category: DisputeCategory | None = None
    outcome: Annotated[str, StringConstraints(max_length=64), StoredLine] | None = None
    tier: PartnerTier | None = None
    region: Annotated[str, StringConstraints(max_length=64), StoredLine] | None = None
    remedy: RemedyKind | None = None
    clause: Annotated[str, StringConstraints(max_length=128), StoredLine] | None = None
    sla: Literal["met", "breached"] | None = None
    decided_from: date | None = Field(default=None, alias="from")
    decided_to: date | None = Field(default=None, alias="to")
    page: Annotated[int, Field(ge=1, le=100)] = 1
    state: ExceptionState | None = Field(
        default=None,
        description="The board exceptions' state (approved, denied, expired): narrows only the "
        "list of exceptions, which compliance, the board and admins are shown",
    )

    def filters(self) -> SearchFilters:
        start = datetime.combine(self.decided_from, time(), UTC) if self.decided_from else None
        end = (
            datetime.combine(self.decided_to + timedelta(days=1), time(), UTC)
            if self.decided_to
            else None
        )
        return SearchFilters(
            category=self.category.value if self.category else None,
            outcome=self.outcome,
            tier=self.tier.value if self.tier else None,
            region=self.region,
            remedy=self.remedy.value if self.remedy else None,
            clause=self.clause,
            sla=self.sla,
            decided_from=start,
            decided_to=end,
        )

    def selected(self) -> dict[str, str]:
        """The facet filters in force, as the facet counts name their values."""
        facets = ("category", "outcome", "tier", "region", "remedy", "clause", "sla")
        dumped = self.model_dump(mode="json")
        return {name: str(dumped[name]) for name in facets if dumped[name]}

    def as_query(self, **change: Any) -> str:
        """This query as URL parameters, with some changed (a facet link, the next page)."""
        values = {**self.model_dump(by_alias=True, mode="json"), "page": None, **change}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


LIBRARY_PAGE = 20


def precedent_library(
    session: Session,
    viewer: Viewer,
    query: PrecedentQuery,
    threshold: Decimal,
    k: int = DEFAULT_K,
) -> dict[str, Any]:
    """One page of the precedent library: ranked hits with snippets, the number of matches,
    facet counts and notes on how the query was read. Partners search the anonymised view."""
    public = viewer.role is Role.PARTNER
    result = full_text_search(
        session,
        query.q,
        public=public,
        filters=query.filters(),
        limit=LIBRARY_PAGE,
        offset=(query.page - 1) * LIBRARY_PAGE,
    )
    rows = {
        p.id: p
        for p in session.exec(
            select(Precedent).where(col(Precedent.id).in_([h.id for h in result.hits] or [-1]))
        ).all()
    }
    # The directory is read only to anonymise hits (2 ms a search at the demo's size).
    population = load_population(session, k) if public and result.hits else None
    hits = [
        {
            **precedent_view(rows[h.id], threshold, anonymise_for=population),
            "score": round(h.score, 3),
            "snippet_html": h.snippet_html,
        }
        for h in result.hits
        if h.id in rows
    ]
    return {
        "total": result.total,
        "exact_total": result.exact_total,
        "page": query.page,
        "pages": max(1, -(-result.total // LIBRARY_PAGE)),
        "hits": hits,
        "facets": result.facets,
        "notes": list(result.notes),
    }


def search_precedents(
    session: Any, viewer: Viewer, q: str, threshold: Decimal, k: int = DEFAULT_K
) -> list[dict[str, Any]]:
    """Precedents matching a query (full text, ranked): partners search and read only the
    anonymised view, so a party's name can neither find nor show a precedent."""
    public = viewer.role is Role.PARTNER
    result = full_text_search(session, q, public=public, limit=50)
    # The directory is read only to anonymise hits (2 ms a search at the demo's size).
    population = load_population(session, k) if public and result.hits else None
    found: list[dict[str, Any]] = []
    for hit in result.hits:
        row = session.get(Precedent, hit.id)
        if row is None:
            continue
        found.append(
            {
                **precedent_view(row, threshold, anonymise_for=population),
                "snippet_html": hit.snippet_html,
            }
        )
    return found


def precedent_view(
    p: Precedent, threshold: Decimal, *, anonymise_for: Population | None
) -> dict[str, Any]:
    """The full record, or with `anonymise_for` (the directory it is anonymised against), the
    anonymised view."""
    if anonymise_for is None:
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
    view = anonymised(p, anonymise_for, threshold)
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


# --- conflict alerts (admins) ---------------------------------------------------------------------


def _alert_refused(refused: AlertRefused) -> Exception:
    said = str(refused)
    if said.startswith("no alert"):
        return NotFound(said)
    field, colon, why = said.partition(": ")
    if colon and re.fullmatch(r"[a-z_][a-z0-9_.]*", field):
        return BadInput([(field, why)])  # the filing made from it refused one of its fields
    if " names no " in said:
        return BadInput([("alert", said)])
    return AlertDecided(said)


def dismiss_alert(
    ctx: WebContext, viewer: Viewer, alert_id: int, dismissal: alerts.Dismissal
) -> ConflictAlert:
    """Dismiss an open alert with a reason; 409 when it is decided already (by whom, when)."""
    _require_admin(viewer)
    now = datetime.now(UTC)
    try:
        alert = alerts.dismiss(
            ctx.services.sessions, alert_id, by=viewer.actor.id, dismissal=dismissal, now=now
        )
    except AlertRefused as refused:
        raise _alert_refused(refused) from None
    alert_notices.tell_dismissed(ctx.services.outbox, ctx.services.sessions, alert_id, now)
    return alert


async def convert_alert(
    ctx: WebContext, viewer: Viewer, alert_id: int, wanted: conversion.Conversion
) -> FilingResult:
    """Make an open alert a dispute (accord.disputes.conversion): 409 when it is decided
    already, 422 naming the field when the filing is refused (the alert stays open)."""
    _require_admin(viewer)
    try:
        return await conversion.convert(
            build_filing(ctx.services, ctx.temporal()),
            ctx.services.sessions,
            alert_id,
            wanted,
            by=viewer.actor,
            now=datetime.now(UTC),
        )
    except AlertRefused as refused:
        raise _alert_refused(refused) from None
    except FilingRejected as rejected:
        raise BadInput([(e.field, e.message) for e in rejected.errors]) from None
