"""Compliance's exports, as CSV or JSON: disputes, precedents and audit trails, each whole or
refused (`TooLarge`), never cut short; spreadsheet formulas neutralised in CSV cells."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from accord.disputes import texts
from accord.disputes.access import Viewer
from accord.disputes.listing import DisputeFilters, filtered
from accord.reports.health import ChannelHealth
from accord.reports.sla import SlaReport
from models.tables import Dispute, DisputeEvent, Precedent

EXPORT_LIMIT = 100_000
"""The most records one export carries; asked for more, it is refused (TooLarge)."""


class TooLarge(ValueError):
    """An export holding more records than one file carries: refused whole, naming the filter
    (`field`) that narrows it, rather than cut short as if it were complete."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


_Row = TypeVar("_Row")


def whole(
    session: Session, query: SelectOfScalar[_Row], what: str, field: str, narrow: str
) -> list[_Row]:
    """All of an export's records, or the refusal when there are more than EXPORT_LIMIT (one
    more is asked for): compliance must never take the first part of a period for all of it."""
    rows = list(session.exec(query.limit(EXPORT_LIMIT + 1)).all())
    if len(rows) > EXPORT_LIMIT:
        raise TooLarge(
            field,
            f"the export would hold more than {EXPORT_LIMIT:,} {what}, more than one file"
            f" carries: {narrow}",
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

    def of(self, moment: Any, query: SelectOfScalar[_Row]) -> SelectOfScalar[_Row]:
        """`query` narrowed to the rows whose `moment` (a column) falls in the period."""
        start, end = self.bounds()
        if start:
            query = query.where(moment >= start)
        if end:
            query = query.where(moment <= end)
        return query


class OrderedDateRange(DateRange):
    """A period whose end is not before its start: one running backwards holds nothing, and a
    view of it would read as a period without a conflict."""

    @field_validator("end")
    @classmethod
    def _not_before_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if end is not None and start is not None and end < start:
            raise ValueError(f"is before the period's start (from {start})")
        return end


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, list | dict):
        return value
    return value if value is None or isinstance(value, int | float | str) else str(value)


def serialise(records: list[dict[str, Any]], columns: tuple[str, ...], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1, default=str)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                k: csv_cell(json.dumps(v) if isinstance(v, list | dict) else v)
                for k, v in record.items()
            }
        )
    return out.getvalue()


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def sla_export(report: SlaReport, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=1)
    return serialise(report.rows(), ("section", "name", "measure", "value"), fmt)


def health_export(report: ChannelHealth, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=1)
    return serialise(report.rows(), ("section", "name", "measure", "value"), fmt)


def disputes_export(session: Session, viewer: Viewer, filters: DisputeFilters, fmt: str) -> str:
    """The disputes the viewer may see that pass the filters, oldest filed first."""
    query, _ = filtered(viewer, filters, session.get_bind().dialect.name)
    # The number after the time: disputes filed in one instant come out in one order.
    query = query.order_by(col(Dispute.filed_at), col(Dispute.number))
    rows = whole(
        session,
        query,
        "disputes",
        "filed_from",
        "narrow it by filing dates (filed_from, filed_to), stage or category",
    )
    records = [{c: plain(getattr(r, c)) for c in DISPUTE_COLUMNS} for r in rows]
    return serialise(records, DISPUTE_COLUMNS, fmt)


def precedents_export(session: Session, period: DateRange, fmt: str) -> str:
    """The full record of every precedent decided in the period."""
    query = period.of(Precedent.decided_at, select(Precedent))
    query = query.order_by(col(Precedent.decided_at), col(Precedent.dispute_number))
    rows = whole(session, query, "precedents", "from", "choose a shorter period (from, to)")
    records = [{c: plain(getattr(r, c)) for c in PRECEDENT_COLUMNS} for r in rows]
    return serialise(records, PRECEDENT_COLUMNS, fmt)


def audit_period_export(session: Session, period: DateRange, fmt: str) -> str:
    """Every audit entry recorded in the period, across disputes, with its hashes."""
    query = period.of(DisputeEvent.at, select(DisputeEvent))
    query = query.order_by(col(DisputeEvent.at), col(DisputeEvent.id))
    columns = ("dispute_number", *AUDIT_EXPORT_COLUMNS)
    rows = whole(session, query, "audit entries", "from", "choose a shorter period (from, to)")
    bodies = trail_bodies(session, rows)
    records = [{"dispute_number": r.dispute_number, **audit_record(r, bodies)} for r in rows]
    return serialise(records, columns, fmt)


def audit_export(events: list[DisputeEvent], bodies: dict[str, str], fmt: str) -> str:
    """One dispute's trail, each entry with the bodies of the texts it names."""
    return serialise([audit_record(e, bodies) for e in events], AUDIT_EXPORT_COLUMNS, fmt)


def trail_bodies(session: Session, events: Iterable[DisputeEvent]) -> dict[str, str]:
    """The bodies of the stored texts these entries name (`*_ref`: id and hash), by id: the
    raw trail's readers read them with the entries, as they did when texts were inline. The
    entries stay as hashed; `accord verify` checks each body against its entry's hash."""
    return texts.bodies(session, (i for e in events for i in texts.referenced(e.content)))


def audit_record(event: DisputeEvent, bodies: dict[str, str]) -> dict[str, Any]:
    record = {c: plain(getattr(event, c)) for c in AUDIT_COLUMNS}
    named = texts.referenced(event.content)
    record["texts"] = {i: bodies[i] for i in named if i in bodies}
    return record
