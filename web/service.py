"""What the pages and the API do, once: file, act, add evidence, list, export.

Every function takes the viewer and checks what they may see before anything else, so a
route cannot forget it; a dispute that is not theirs is "not found", before any validator
could say something about it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
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
from sqlalchemy import ColumnElement, false, func, null, or_, true, union_all
from sqlalchemy.sql.elements import False_
from sqlalchemy.sql.selectable import SelectBase
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar
from starlette.datastructures import FormData
from starlette.requests import Request

from accord.application import build_filing
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
from accord.disputes import evidence, texts
from accord.disputes.access import (
    Viewer,
    can_see_dispute,
    dispute_scope,
    may_read_evidence,
    may_read_raw_audit,
    side_of,
    standing,
)
from accord.disputes.filing import FilingRejected
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
from accord.disputes.search import dispute_hits, dispute_matches, dispute_text_match
from accord.precedents.anonymity import DEFAULT_K, Population, load_population
from accord.precedents.library import anonymised
from accord.precedents.search import Filters as SearchFilters
from accord.precedents.search import search_precedents as full_text_search
from accord.reports.sla import SlaReport
from accord.reports.sla import sla_report as build_sla_report
from accord.rules.audit import first_broken_link
from accord.rules.transitions import why_not
from intake.processor import IntakeProcessor, NotHeld
from intake.processor import listed as listed_inbound
from models.enums import (
    Action,
    DisputeCategory,
    DisputeStage,
    EvidenceVisibility,
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
    Dispute,
    DisputeEvent,
    DisputeParty,
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
from notifications.outbox import OutboxRefused, answered_message
from web import evidence as uploads
from web import idempotency
from web.auth import TokenName
from web.context import WebContext
from web.forms import field_errors
from web.problems import BadInput, ExportTooLarge, Forbidden, TooMany
from web.views import NotFound
from workflows.dispute import DisputeWorkflow

PAGE_SIZE = 50


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


NUMBER_PREFIX = re.compile(r"DSP(-\d{0,4}(-\d{0,6})?)?")
"""A dispute number or the start of one (DSP-2026-000123, dsp-2026): searched by number."""


SearchWords = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), StoredLine]
"""What a person types into a search box: one line, refused (naming the box) when it holds what
no database can be asked about."""
PartyFilter = Annotated[str, StringConstraints(max_length=64), StoredLine]


class DisputeFilters(BaseModel):
    """What a dispute list can be narrowed by; the same for pages, API and exports."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    stage: DisputeStage | None = None
    category: DisputeCategory | None = None
    party: PartyFilter | None = None
    q: SearchWords | None = None
    filed_from: date | None = None
    filed_to: date | None = None
    open_only: bool = False

    def as_query(self) -> dict[str, str]:
        return {
            k: str(v.value if hasattr(v, "value") else v)
            for k, v in self.model_dump().items()
            if v not in (None, False, "")
        }


def _own_partner(viewer: Viewer) -> str | None:
    """A partner user's partner, whose disputes are its whole scope; None for every other role
    and for a partner account with no partner (an empty id is none: its scope finds nothing)."""
    return (viewer.actor.partner_id or None) if viewer.role is Role.PARTNER else None


def _required_parties(viewer: Viewer, filters: DisputeFilters) -> tuple[str, ...]:
    """The partners a dispute must have among its parties to be listed: a partner's own (its
    whole scope) and the party filter's."""
    return tuple(p for p in (_own_partner(viewer), filters.party) if p)


def _narrowed(
    viewer: Viewer, filters: DisputeFilters, *, parties_apart: bool = False
) -> list[ColumnElement[bool]]:
    """Conditions on a dispute row: the disputes this viewer may see that pass the filters other
    than the words (none at all for one who sees everything, unfiltered). With `parties_apart`,
    without the conditions on the dispute's parties (`_required_parties`), which the caller
    applies its own way.

    Words search the full text (facts included) and show snippets of it: only the disputes the
    viewer reads beyond the case summary are searched."""
    conditions: list[ColumnElement[bool]] = []
    if not viewer.sees_everything and not (parties_apart and _own_partner(viewer)):
        conditions.append(dispute_scope(viewer, summary=not filters.q))
    if filters.stage:
        conditions.append(col(Dispute.stage) == filters.stage)
    if filters.category:
        conditions.append(col(Dispute.category) == filters.category)
    if filters.party and not parties_apart:
        conditions.append(
            col(Dispute.number).in_(
                select(DisputeParty.dispute_number).where(DisputeParty.partner_id == filters.party)
            )
        )
    if filters.filed_from:
        conditions.append(
            col(Dispute.filed_at) >= datetime.combine(filters.filed_from, time(), UTC)
        )
    if filters.filed_to and filters.filed_to < date.max:  # the last day there is bounds nothing
        # Up to the next day's start: the whole day, its last microsecond included.
        next_day = datetime.combine(filters.filed_to + timedelta(days=1), time(), UTC)
        conditions.append(col(Dispute.filed_at) < next_day)
    if filters.open_only:
        conditions.append(col(Dispute.closed_at).is_(None))
    return conditions


def _filtered(viewer: Viewer, filters: DisputeFilters, dialect: str) -> tuple[Any, Any]:
    """The disputes this viewer may see that pass the filters, and, when there are words to
    search, the full-text rank to order them by (lower is better; else None)."""
    query = select(Dispute).where(true(), *_narrowed(viewer, filters))
    if not filters.q:
        return query, None
    # The disputes the words find by full text, and by number when they are (the start of) a
    # dispute number: looked up in indexes, never by reading every dispute.
    prefix = filters.q.strip().upper()
    by_number = col(Dispute.number).startswith(prefix) if NUMBER_PREFIX.fullmatch(prefix) else None
    if dialect == "postgresql":
        # One table: its GIN index and the number's pattern index (0012) combine. A dispute
        # found by number alone ranks 0, after every text match (their ranks are negative).
        on_text = dispute_text_match(filters.q)
        found = [c for c in (on_text[0] if on_text else None, by_number) if c is not None]
        if not found:
            return query.where(false()), None
        return query.where(or_(*found)), on_text[1] if on_text else None
    found_by: list[SelectBase] = []
    matches = dispute_matches(filters.q)
    text_hits = None if matches is None else matches.subquery("text_hits")
    if text_hits is not None:
        found_by.append(select(text_hits.c.number, text_hits.c.rank))
    if by_number is not None:
        # SQLite's LIKE ignores case and so cannot use the key's index; a range can.
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        by_number &= (col(Dispute.number) >= prefix) & (col(Dispute.number) < after)
        if text_hits is not None:  # each dispute once: a full-text hit keeps its rank
            by_number &= col(Dispute.number).not_in(select(text_hits.c.number))
        found_by.append(
            select(col(Dispute.number).label("number"), null().label("rank")).where(by_number)
        )
    if not found_by:
        return query.where(false()), None
    hits = (found_by[0] if len(found_by) == 1 else union_all(*found_by)).subquery("hits")
    return query.join(hits, hits.c.number == Dispute.number), hits.c.rank


def list_disputes(
    session: Session, viewer: Viewer, filters: DisputeFilters, *, page: int = 1
) -> tuple[list[Dispute], int]:
    dialect = session.get_bind().dialect.name
    if filters.q:
        return _search(session, viewer, filters, filters.q, page, dialect)
    query, rank = _filtered(viewer, filters, dialect)
    if viewer.role is Role.PARTNER and filters == DisputeFilters():
        # "My disputes" unfiltered: the party rows count them without touching the disputes.
        total = session.exec(
            select(func.count())
            .select_from(DisputeParty)
            .where(DisputeParty.partner_id == viewer.actor.partner_id)
        ).one()
    else:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
    # The number last, as in the search: PostgreSQL's top-N sort orders ties afresh for each
    # page, so disputes filed in the same instant (an import, a burst of email) were listed
    # twice and others never.
    newest = (col(Dispute.filed_at).desc(), col(Dispute.number).desc())
    # Best match first; a dispute found by its number alone has no rank and comes after.
    order = [*newest] if rank is None else [rank.asc().nulls_last(), *newest]
    rows = session.exec(
        query.order_by(*order).offset((max(page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    ).all()
    return list(rows), int(total)


def _search(
    session: Session,
    viewer: Viewer,
    filters: DisputeFilters,
    words: str,
    page: int,
    dialect: str,
) -> tuple[list[Dispute], int]:
    """A list searched by words: the full-text matches, best first, then the disputes found by
    their number alone, newest first; as _filtered orders them, but counted and paged in the
    search index, so a common word's thousands of matches are never read as dispute rows."""
    # The parties apart: the search index holds them (on PostgreSQL), so a partner's matches
    # are found without reading its every dispute.
    narrowed = _narrowed(viewer, filters, parties_apart=True)
    if any(isinstance(c, False_) for c in narrowed):
        return [], 0  # sees no dispute (a partner account with no partner)
    parties = _required_parties(viewer, filters)
    offset = (max(page, 1) - 1) * PAGE_SIZE
    hits = dispute_hits(words, dialect)
    numbers: list[str] = []
    in_text = 0
    if hits is not None:
        in_text = session.execute(hits.count(*narrowed, parties=parties)).scalar_one()
        if offset < in_text:
            page_of = hits.page(*narrowed, parties=parties, offset=offset, limit=PAGE_SIZE)
            numbers = list(session.execute(page_of).scalars())
    prefix = words.strip().upper()
    by_number = 0
    if NUMBER_PREFIX.fullmatch(prefix):
        narrowed = _narrowed(viewer, filters)  # the parties too, on the dispute rows
        if dialect == "sqlite":
            # SQLite's LIKE ignores case and so cannot use the key's index; a range can.
            after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            numbered = [col(Dispute.number) >= prefix, col(Dispute.number) < after, *narrowed]
        else:  # the number's pattern index (0012)
            numbered = [col(Dispute.number).startswith(prefix), *narrowed]
        if hits is not None:  # each dispute once: a full-text hit keeps its rank
            numbered.append(col(Dispute.number).not_in(hits.numbers()))
        by_number = session.exec(select(func.count()).where(*numbered)).one()
        if len(numbers) < PAGE_SIZE and offset + len(numbers) < in_text + by_number:
            numbers += session.exec(
                select(Dispute.number)
                .where(*numbered)
                # The number last: disputes filed in the same instant are paged in one order.
                .order_by(col(Dispute.filed_at).desc(), col(Dispute.number).desc())
                .offset(max(0, offset - in_text))
                .limit(PAGE_SIZE - len(numbers))
            )
    rows = {
        d.number: d for d in session.exec(select(Dispute).where(col(Dispute.number).in_(numbers)))
    }
    return [rows[n] for n in numbers if n in rows], in_text + by_number


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

EXPORT_LIMIT = 100_000
"""The most records one export carries; asked for more, it is refused (ExportTooLarge)."""

_Row = TypeVar("_Row")


def _whole(
    session: Session, query: SelectOfScalar[_Row], what: str, field: str, narrow: str
) -> list[_Row]:
    """All of an export's records, or the refusal when there are more than EXPORT_LIMIT (one
    more is asked for): compliance must never take the first part of a period for all of it."""
    rows = list(session.exec(query.limit(EXPORT_LIMIT + 1)).all())
    if len(rows) > EXPORT_LIMIT:
        raise ExportTooLarge(
            [
                (
                    field,
                    f"the export would hold more than {EXPORT_LIMIT:,} {what}, more than one"
                    f" file carries: {narrow}",
                )
            ]
        )
    return rows


DISPUTE_COLUMNS = (
    "number",
    "category",
    "stage",
    "claimant_id",
    "respondent_ids",
    "summary",
    "amount_at_stake",
    "currency",
    "mediator_id",
    "playbook_version",
    "filed_at",
    "stage_deadline",
    "closed_at",
    "outcome",
)


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
    with ctx.services.sessions.read() as session:
        return build_sla_report(session, start, end, now)


def export_sla_report(report: SlaReport, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=1)
    return _serialise(report.rows(), ("section", "name", "measure", "value"), fmt)


REPORT_DEFAULT_DAYS = 90


def export_disputes(ctx: WebContext, viewer: Viewer, filters: DisputeFilters, fmt: str) -> str:
    _require_auditor(viewer)
    with ctx.services.sessions.read() as session:
        query, _ = _filtered(viewer, filters, session.get_bind().dialect.name)
        # The number after the time: disputes filed in one instant come out in one order.
        query = query.order_by(col(Dispute.filed_at), col(Dispute.number))
        rows = _whole(
            session,
            query,
            "disputes",
            "filed_from",
            "narrow it by filing dates (filed_from, filed_to), stage or category",
        )
        records = [{c: _plain(getattr(r, c)) for c in DISPUTE_COLUMNS} for r in rows]
    return _serialise(records, DISPUTE_COLUMNS, fmt)


AUDIT_COLUMNS = ("seq", "at", "actor_id", "actor_role", "action", "content", "prev_hash", "hash")
AUDIT_EXPORT_COLUMNS = (*AUDIT_COLUMNS, "texts")
"""An export's entry also has the bodies of the stored texts it names, by id (`texts`)."""
PRECEDENT_COLUMNS = (
    "dispute_number",
    "category",
    "outcome",
    "playbook_version",
    "clauses",
    "claimant_tier",
    "claimant_region",
    "amount_at_stake",
    "decided_at",
    "parties",
    "remedies",
    "facts",
    "rationale",
    "precedents_cited",
    "votes_summary",
)


class DateRange(BaseModel):
    """From a day to a day, both included; either end may be open."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    start: date | None = Field(default=None, alias="from")
    end: date | None = Field(default=None, alias="to")

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(self.start, time(), UTC) if self.start else None
        end = datetime.combine(self.end, time.max, UTC) if self.end else None
        return start, end


def export_precedents(ctx: WebContext, viewer: Viewer, period: DateRange, fmt: str) -> str:
    """The full record of every precedent decided in the period (compliance and admins)."""
    _require_auditor(viewer)
    start, end = period.bounds()
    query = select(Precedent).order_by(col(Precedent.decided_at), col(Precedent.dispute_number))
    if start:
        query = query.where(Precedent.decided_at >= start)
    if end:
        query = query.where(Precedent.decided_at <= end)
    with ctx.services.sessions.read() as session:
        rows = _whole(
            session,
            query,
            "precedents",
            "from",
            "choose a shorter period (from, to)",
        )
        records = [{c: _plain(getattr(r, c)) for c in PRECEDENT_COLUMNS} for r in rows]
    return _serialise(records, PRECEDENT_COLUMNS, fmt)


def export_audit_period(ctx: WebContext, viewer: Viewer, period: DateRange, fmt: str) -> str:
    """Every audit entry recorded in the period, across disputes, with its hashes."""
    _require_auditor(viewer)
    start, end = period.bounds()
    query = select(DisputeEvent).order_by(col(DisputeEvent.at), col(DisputeEvent.id))
    if start:
        query = query.where(DisputeEvent.at >= start)
    if end:
        query = query.where(DisputeEvent.at <= end)
    columns = ("dispute_number", *AUDIT_EXPORT_COLUMNS)
    with ctx.services.sessions.read() as session:
        rows = _whole(session, query, "audit entries", "from", "choose a shorter period (from, to)")
    bodies = trail_texts(ctx, rows)
    records = [{"dispute_number": r.dispute_number, **_audit_record(r, bodies)} for r in rows]
    return _serialise(records, columns, fmt)


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
    """The bodies of the stored texts these entries name (`*_ref`: id and hash), by id: the
    raw trail's readers read them with the entries, as they did when texts were inline. The
    entries stay as hashed; `accord verify` checks each body against its entry's hash."""
    with ctx.services.sessions.read() as session:
        return texts.bodies(session, (i for e in events for i in texts.referenced(e.content)))


def _audit_record(event: DisputeEvent, bodies: dict[str, str]) -> dict[str, Any]:
    record = {c: _plain(getattr(event, c)) for c in AUDIT_COLUMNS}
    named = texts.referenced(event.content)
    record["texts"] = {i: bodies[i] for i in named if i in bodies}
    return record


def export_audit(ctx: WebContext, viewer: Viewer, number: str, fmt: str) -> str:
    events, _ = audit_trail(ctx, viewer, number)
    bodies = trail_texts(ctx, events)
    records = [_audit_record(e, bodies) for e in events]
    return _serialise(records, AUDIT_EXPORT_COLUMNS, fmt)


def export_response(body: str, filename: str, fmt: str) -> Response:
    """An export as a download: CSV or JSON."""
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, list | dict):
        return value
    return value if value is None or isinstance(value, int | float | str) else str(value)


def _serialise(records: list[dict[str, Any]], columns: tuple[str, ...], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1, default=str)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                k: _csv_cell(json.dumps(v) if isinstance(v, list | dict) else v)
                for k, v in record.items()
            }
        )
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --- precedents (the full record, or the anonymised view for partners) ---------------------------


class PrecedentQuery(BaseModel):
    """The precedent library's query: words, facet filters, a decision period, a page."""

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
