"""An import of channel data: one file (CSV or a Salesforce export) or rows posted to the API,
of one kind of object.

All or nothing: every row is read and checked first (its fields, then what it names: partners,
territories, accounts), and a single problem anywhere refuses the whole file, each problem named
by row and field, with nothing of it written. Incremental: a row whose external id is stored
with the same or a later modification time is left as it is (`unchanged`), so importing the
same export twice, or a full export after a partial one, only writes what changed.

Imports of one kind take turns (a lock held while one writes), so two imports naming the same
new external id cannot both create it. The `channel_import` row records progress in its own
short transactions (the web page and the API read it while the import runs) and the outcome.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy import Table, insert, update
from sqlmodel import Session, col, select

from accord.channel import detection
from accord.channel.names import customer_key
from accord.channel.rows import (
    PLURALS,
    ROWS,
    SALESFORCE_TYPES,
    Row,
    load_json,
    required,
    salesforce_values,
)
from accord.platform.db import SessionFactory, hold_turn
from accord.playbooks.library import Engagement
from models.enums import ChannelKind, ImportFormat, ImportState
from models.tables import (
    Account,
    ChannelImport,
    DealRegistration,
    Lead,
    Opportunity,
    Partner,
    Territory,
)
from models.text import plain_error

SHOWN_PROBLEMS = 200
"""Problems kept with a refused import (its count says how many there were)."""
PROGRESS_EVERY = 5_000
"""Rows between two progress records."""
STALE_AFTER = timedelta(minutes=10)
"""A running import's record not touched for this long was ended with its process: its
transaction rolled back, nothing of it was written (a write of 100,000 rows takes seconds)."""
WRITE_BATCH = 2_000


@dataclass(frozen=True)
class Problem:
    row: int | None
    """The CSV line (the header is line 1), the Salesforce record's or posted row's position
    (from 1); None for the file as a whole."""
    field: str | None
    """As the file names it (its column, or the Salesforce field)."""
    problem: str

    def said(self, file_name: str, fmt: ImportFormat) -> str:
        where = [file_name]
        if self.row is not None:
            where.append(f"{'row' if fmt is ImportFormat.CSV else 'record'} {self.row}")
        if self.field is not None:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.problem}"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "problem": self.problem}


class ImportRefused(Exception):
    def __init__(self, record: ChannelImport, problems: list[Problem]) -> None:
        self.record = record
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s)")


Progress = Callable[[ImportState, int, int], None]
"""Told (state, rows done, rows in all) as an import goes on."""


@dataclass
class _Read:
    source: dict[str, Any]
    row: int
    names: dict[str, str]
    """Our field name -> the file's name for it."""


Checked = list[tuple[int, Row, dict[str, str]]]
"""Each row that passed its own checks: its position, its values, the file's field names."""


# --- reading a file ------------------------------------------------------------------------------


def _csv_rows(kind: ChannelKind, data: bytes) -> Iterator[_Read | Problem]:
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        yield Problem(
            line,
            None,
            f"is not UTF-8 (byte 0x{data[exc.start]:02X} at offset {exc.start}): save the file"
            " as UTF-8 and import it again",
        )
        return
    reader = csv.reader(io.StringIO(decoded, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield Problem(1, None, f"is not a readable CSV header ({exc})")
        return
    if header is None:
        yield Problem(None, None, "is empty: a header line, then one line per row")
        return
    header = [h.strip() for h in header]
    fields = ROWS[kind].model_fields
    if len(header) > 2 * len(fields):
        # Not a file of this kind: said once, not once for each of a million columns.
        yield Problem(
            1,
            None,
            f"has {len(header):,} columns; a file of {PLURALS[kind]} has at most"
            f" {len(fields)} ({', '.join(fields)})",
        )
        return
    known = set(fields)
    bad_header = False
    for position, name in enumerate(header, start=1):
        if name not in known:
            bad_header = True
            yield Problem(
                1,
                name[:64] or f"column {position}",
                f"is not a column of {PLURALS[kind]} files (they have: {', '.join(fields)})",
            )
        elif header.index(name) != position - 1:
            bad_header = True
            yield Problem(
                1, name, f"appears twice (columns {header.index(name) + 1} and {position})"
            )
    for name in required(kind):
        if name not in header:
            bad_header = True
            yield Problem(1, name, "is a required column, missing from the header")
    if bad_header:
        return
    names = {name: name for name in header}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Problem(line, None, f"is not readable CSV ({exc})")
            return
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if len(cells) != len(header):
            yield Problem(
                reader.line_num,
                None,
                f"has {len(cells)} cells where the header has {len(header)} columns",
            )
            continue
        yield _Read(dict(zip(header, cells, strict=True)), reader.line_num, names)


def _salesforce_rows(kind: ChannelKind, data: bytes) -> Iterator[_Read | Problem]:
    try:
        document = load_json(data)
    except ValueError as exc:
        yield Problem(None, None, str(exc))
        return
    records = document.get("records") if isinstance(document, dict) else document
    if not isinstance(records, list):
        yield Problem(
            None,
            None,
            'is not a Salesforce export: expected {"records": [...]} (a REST query result)'
            " or a list of records",
        )
        return
    expected = next(name for name, k in SALESFORCE_TYPES.items() if k is kind)
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            yield Problem(position, None, "is not a record (a JSON object)")
            continue
        attributes = record.get("attributes")
        kind_of = attributes.get("type") if isinstance(attributes, dict) else None
        if kind_of != expected:
            said = "no attributes.type" if kind_of is None else f"type {str(kind_of)[:64]!r}"
            yield Problem(
                position,
                "attributes.type",
                f"has {said}: an import of {PLURALS[kind]} holds {expected} records only",
            )
            continue
        values, names = salesforce_values(kind, record)
        yield _Read(values, position, names)


def _api_rows(kind: ChannelKind, data: bytes) -> Iterator[_Read | Problem]:
    try:
        rows = load_json(data)
    except ValueError as exc:
        yield Problem(None, None, str(exc))
        return
    if not isinstance(rows, list):
        yield Problem(None, None, "is not a JSON list of rows")
        return
    for position, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            yield Problem(position, None, "is not a row (a JSON object)")
            continue
        yield _Read(row, position, {name: name for name in row})


READERS = {
    ImportFormat.CSV: _csv_rows,
    ImportFormat.SALESFORCE: _salesforce_rows,
    ImportFormat.API: _api_rows,
}

_HINTS = {
    "country": "a two-letter country code (ISO 3166, e.g. DE)",
    "countries": "two-letter country codes (ISO 3166, e.g. DE AT CH)",
    "currency": "a three-letter currency code (ISO 4217, e.g. EUR)",
    "customer_domain": "a web or email address (acme.com, https://www.acme.com, jo@acme.com)",
    "domain": "a web address (acme.com, https://www.acme.com)",
    "email": "an email address",
}


def _said(error: Any, field: str) -> str:
    kind = error.get("type")
    value = error.get("input")
    if kind == "missing":
        return "is required, and empty or missing"
    if kind == "extra_forbidden":
        return "is not a field of this kind of row"
    if kind in {"timezone_aware", "datetime_from_date_parsing", "datetime_parsing"}:
        return (
            "is not a date and time with its offset (2026-11-02T10:00:00Z, 2026-11-02T10:00:00"
            "+01:00) nor a date (2026-11-02)"
        )
    if field in _HINTS and kind in {
        "string_pattern_mismatch",
        "string_too_short",
        "string_too_long",
        "too_short",
    }:
        return f"is not {_HINTS[field]} ({str(value)[:40]!r})"
    if kind in {"decimal_parsing", "decimal_type"}:
        return f"is not a number like 125000.00 ({str(value)[:40]!r})"
    return plain_error(error)


def _checked(kind: ChannelKind, read: _Read) -> Row | list[Problem]:
    try:
        return ROWS[kind].model_validate(read.source)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = error.get("loc") or ()
            ours = str(loc[0]) if loc else None
            field = read.names.get(ours, ours) if ours else None
            problems.append(Problem(read.row, field, _said(error, ours or "")))
        return problems


# --- the import ----------------------------------------------------------------------------------

TABLES: dict[ChannelKind, Any] = {
    ChannelKind.REGISTRATION: DealRegistration,
    ChannelKind.OPPORTUNITY: Opportunity,
    ChannelKind.LEAD: Lead,
    ChannelKind.ACCOUNT: Account,
    ChannelKind.TERRITORY: Territory,
}


def begin(
    sessions: SessionFactory,
    *,
    kind: ChannelKind,
    fmt: ImportFormat,
    file_name: str,
    data: bytes,
    started_by: str,
    now: datetime | None = None,
) -> ChannelImport:
    """Records an import about to run (READING), and returns its record."""
    now = now or datetime.now(UTC)
    record = ChannelImport(
        kind=kind,
        format=fmt,
        file_name=file_name[:255],
        digest=hashlib.sha256(data).hexdigest(),
        state=ImportState.READING,
        started_by=started_by[:64],
        started_at=now,
        heartbeat_at=now,
    )
    with sessions.begin() as session:
        session.add(record)
        session.flush()
    return record


def run(
    sessions: SessionFactory,
    record: ChannelImport,
    data: bytes,
    *,
    progress: Progress | None = None,
    engagement: Engagement | None = None,
) -> ChannelImport:
    """Reads, checks and writes the import `begin` recorded. Returns its record, DONE; raises
    ImportRefused (its record REFUSED, with the problems) when anything was wrong.
    `engagement`: the rules in force, whose pricing bands and lead routing detection checks
    (without them, only overlaps are looked for)."""
    assert record.id is not None
    kind, fmt = record.kind, record.format
    tell = _Reporter(sessions, record.id, progress)
    rows: Checked = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for item in READERS[fmt](kind, data):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        checked = _checked(kind, item)
        if isinstance(checked, list):
            problems.extend(checked)
        else:
            rows.append((item.row, checked, item.names))
        # Said of a row with other problems too: the file is fixed in one pass.
        external_id = item.source.get("external_id")
        if isinstance(external_id, str) and external_id.strip():
            first = seen.setdefault(external_id.strip(), item.row)
            if first != item.row:
                problems.append(
                    Problem(
                        item.row,
                        item.names.get("external_id", "external_id"),
                        f"{external_id.strip()[:64]!r} is also in {_row_word(fmt)} {first}",
                    )
                )
        tell.reading(len(rows) + len(problems))
    if not problems and not rows:
        problems.append(Problem(None, None, f"holds no {PLURALS[kind]}"))
    if problems:
        # What the good rows name is checked too: every problem of the file is said at once.
        with sessions.read() as session:
            problems += _references(session, kind, fmt, rows)
        _refuse(sessions, record, sorted(problems, key=lambda p: p.row or 0))
    tell.state(ImportState.WRITING, 0, len(rows))
    try:
        with sessions.begin() as session:
            hold_turn(session, f"channel import of {kind.value}")  # one per kind
            problems = _references(session, kind, fmt, rows)
            if problems:
                raise _Rollback(problems)
            *counts, changed = _write(
                session, kind, record.id, [(r, names) for _, r, names in rows], tell
            )
            # In the same transaction: the rows and the alerts they raise land together, or
            # neither (an import that ended midway leaves no row that was never looked at).
            detected = _detect(session, kind, changed, record.id, engagement)
            done = session.get(ChannelImport, record.id)
            assert done is not None
            done.state = ImportState.DONE
            done.created, done.updated, done.unchanged = counts
            done.alerts_raised, done.alerts_refreshed = detected.raised, detected.refreshed
            done.rows_total = done.rows_done = len(rows)
            done.finished_at = done.heartbeat_at = datetime.now(UTC)
    except _Rollback as stop:
        _refuse(sessions, record, stop.problems)
    if progress is not None:
        progress(ImportState.DONE, len(rows), len(rows))
    return done


def import_file(
    sessions: SessionFactory,
    *,
    kind: ChannelKind,
    fmt: ImportFormat,
    file_name: str,
    data: bytes,
    started_by: str,
    progress: Progress | None = None,
    engagement: Engagement | None = None,
) -> ChannelImport:
    record = begin(
        sessions, kind=kind, fmt=fmt, file_name=file_name, data=data, started_by=started_by
    )
    return run(sessions, record, data, progress=progress, engagement=engagement)


def _row_word(fmt: ImportFormat) -> str:
    return "row" if fmt is ImportFormat.CSV else "record"


class _Rollback(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems


def _refuse(sessions: SessionFactory, record: ChannelImport, problems: list[Problem]) -> NoReturn:
    with sessions.begin() as session:
        refused = session.get(ChannelImport, record.id)
        assert refused is not None
        refused.state = ImportState.REFUSED
        refused.problem_count = len(problems)
        refused.problems = [p.as_dict() for p in problems[:SHOWN_PROBLEMS]]
        refused.finished_at = refused.heartbeat_at = datetime.now(UTC)
    raise ImportRefused(refused, problems)


class _Reporter:
    def __init__(self, sessions: SessionFactory, import_id: int, told: Progress | None) -> None:
        self.sessions = sessions
        self.import_id = import_id
        self.told = told
        self.last = 0

    def reading(self, done: int) -> None:
        if done - self.last >= PROGRESS_EVERY:
            self.last = done
            self.state(ImportState.READING, done, 0)

    def state(self, state: ImportState, done: int, total: int) -> None:
        with self.sessions.begin() as session:
            record = session.get(ChannelImport, self.import_id)
            assert record is not None
            record.state = state
            record.rows_done, record.rows_total = done, total
            record.heartbeat_at = datetime.now(UTC)
        if self.told is not None:
            self.told(state, done, total)

    def writing(self, done: int, total: int) -> None:
        # Inside the write transaction: SQLite's one writer is held by it, so the record is
        # not touched until the end; the caller is told all the same.
        if self.told is not None:
            self.told(ImportState.WRITING, done, total)


def _references(
    session: Session, kind: ChannelKind, fmt: ImportFormat, rows: Checked
) -> list[Problem]:
    """What the rows name and the database must hold: partners (by id, or by CRM id in a
    Salesforce export), territories, accounts. The rows' partner ids are replaced by the
    partner's own id where the export named it by CRM id."""
    partners = {p.id: p for p in session.exec(select(Partner))}
    by_crm = {p.crm_id: p.id for p in partners.values() if p.crm_id}
    territories = set(session.exec(select(Territory.code)))
    if kind is ChannelKind.TERRITORY:
        territories |= {r.external_id for _, r, _ in rows}
    accounts: set[str] | None = None
    problems: list[Problem] = []
    resolved: Checked = []
    for position, row, names in rows:
        changes: dict[str, Any] = {}
        partner = getattr(row, "partner_id", None)
        if partner is not None:
            if fmt is ImportFormat.SALESFORCE:
                if partner in by_crm:
                    changes["partner_id"] = by_crm[partner]
                else:
                    problems.append(
                        Problem(
                            position,
                            names.get("partner_id", "partner_id"),
                            f"{partner!r} is the CRM id of no partner in the directory (its"
                            " partner's crm_id)",
                        )
                    )
            elif partner not in partners:
                problems.append(
                    Problem(
                        position,
                        names.get("partner_id", "partner_id"),
                        f"{partner!r} is no partner in the directory",
                    )
                )
        territory = getattr(row, "territory_code", None)
        if territory is not None and territory not in territories:
            problems.append(
                Problem(
                    position,
                    names.get("territory_code", "territory_code"),
                    f"{territory!r} is no territory (import territories first)",
                )
            )
        account = getattr(row, "account_code", None)
        if account is not None and kind is not ChannelKind.ACCOUNT:
            if accounts is None:
                accounts = set(session.exec(select(Account.code)))
            if account not in accounts:
                problems.append(
                    Problem(
                        position,
                        names.get("account_code", "account_code"),
                        f"{account!r} is no account (import accounts first)",
                    )
                )
        resolved.append((position, row.model_copy(update=changes) if changes else row, names))
    rows[:] = resolved
    return problems


def _columns(kind: ChannelKind, row: Row, import_id: int) -> dict[str, Any]:
    values = row.model_dump()
    if kind is ChannelKind.ACCOUNT:
        values["code"] = values.pop("external_id")
        return values
    if kind is ChannelKind.TERRITORY:
        values["code"] = values.pop("external_id")
        return values
    values["customer_key"] = (
        customer_key(values["customer_name"]) or values["customer_name"].casefold()
    )
    values["import_id"] = import_id
    return values


def _write(
    session: Session,
    kind: ChannelKind,
    import_id: int,
    rows: list[tuple[Row, dict[str, str]]],
    tell: _Reporter,
) -> tuple[int, int, int, list[str]]:
    """(created, updated, unchanged, the external ids created or updated)."""
    model = TABLES[kind]
    table: Table = model.__table__
    directory = kind in (ChannelKind.ACCOUNT, ChannelKind.TERRITORY)
    key = table.c.code if directory else table.c.external_id
    stored: dict[str, tuple[Any, datetime | None]] = {}
    wanted = [r.external_id for r, _ in rows]
    for start in range(0, len(wanted), 10_000):
        chunk = wanted[start : start + 10_000]
        pk = table.c.code if directory else table.c.id
        for found_key, found_pk, modified in session.execute(
            select(key, pk, table.c.modified_at).where(key.in_(chunk))
        ):
            stored[found_key] = (found_pk, _utc(modified))
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for row, _ in rows:
        previous = stored.get(row.external_id)
        if previous is not None and previous[1] is not None and previous[1] >= row.modified_at:
            unchanged += 1
            continue
        values = _columns(kind, row, import_id)
        if previous is None:
            creates.append(values)
        else:
            if not directory:
                values["id"] = previous[0]
            updates.append(values)
    done = 0
    total = len(creates) + len(updates)
    for batch in _batches(creates):
        session.execute(insert(table), batch)
        done += len(batch)
        tell.writing(done, total)
    for batch in _batches(updates):
        # SQLAlchemy's bulk UPDATE by primary key: one statement, executed for each row.
        session.execute(update(model), batch)
        done += len(batch)
        tell.writing(done, total)
    changed = [v["code" if directory else "external_id"] for v in (*creates, *updates)]
    return len(creates), len(updates), unchanged, changed


DETECTED = {
    ChannelKind.REGISTRATION: "registration",
    ChannelKind.OPPORTUNITY: "opportunity",
}
"""The kinds whose changed rows are looked at alone; a change of accounts or territories can
change any registration's alerts, so everything is looked at again."""


def _detect(
    session: Session,
    kind: ChannelKind,
    changed: list[str],
    import_id: int,
    engagement: Engagement | None,
) -> detection.Detected:
    if not changed:
        return detection.Detected(0, 0, 0)
    now = datetime.now(UTC)
    if kind is ChannelKind.LEAD:
        if engagement is None:
            return detection.Detected(0, 0, 0)
        return detection.detect_leads(session, changed, engagement, import_id=import_id, now=now)
    refs = {f"{DETECTED[kind]}:{e}" for e in changed} if kind in DETECTED else None
    found = detection.detect(
        session, changed=refs, import_id=import_id, now=now, engagement=engagement
    )
    if engagement is None or kind is ChannelKind.OPPORTUNITY:
        return found
    # Where a lead should have gone can change with the registrations, named accounts and
    # territories imported after it (a CRM export arriving late): those leads are looked at again.
    leads = detection.leads_routed_by(session, kind, changed)
    again = detection.detect_leads(session, leads, engagement, import_id=import_id, now=now)
    return detection.Detected(
        found.raised + again.raised,
        found.refreshed + again.refreshed,
        found.decided + again.decided,
    )


def _batches(values: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(values), WRITE_BATCH):
        yield values[start : start + WRITE_BATCH]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def state_now(record: ChannelImport, now: datetime) -> ImportState:
    """The import's state as of `now`: a running one whose process ended (its record untouched
    for STALE_AFTER) is STOPPED, nothing of it written."""
    running = record.state in (ImportState.READING, ImportState.WRITING)
    if running and now - record.heartbeat_at > STALE_AFTER:
        return ImportState.STOPPED
    return record.state


def recent(session: Session, most: int = 50) -> list[ChannelImport]:
    return list(
        session.exec(select(ChannelImport).order_by(col(ChannelImport.id).desc()).limit(most))
    )
