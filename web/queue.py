"""The work queue: a person's open tasks with what they need to work from it without opening
each dispute (the parties, category, stage, amount, what is awaited and from whom, the SLA state
and the deadline), sorted and filtered as asked.

Read from the read model alone, in one SQL statement per page (no call to Temporal, no query
per row). Who sees which task follows accord.disputes.access: only the tasks a person may act on, on
disputes they may see now (a role that ended leaves its tasks behind, unseen).

The task inbox (mediators, admins, partners), the board's review queue and the API's task list
all come from `work_queue`; its query parameters are read by `read_queue_query`, which refuses a
bad value naming the parameter (`BadQuery`, a 400) and ignores parameters it does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, and_, case, exists, func, literal, null, or_, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from accord.disputes.access import Viewer, dispute_scope
from accord.platform import wording
from models.enums import DisputeCategory, DisputeStage, Role, TaskKind, TaskState
from models.tables import Dispute, DisputeParty, Partner, Person, Task, UTCDateTime
from web.problems import BadQuery

QUEUE_LIMIT = 200
"""Rows on one page of a queue: the filters narrow a longer one, `page` goes on through it."""
LAST_PAGE = 100_000
"""The highest `page` asked for (as the dispute lists'): beyond it, a 400 naming it."""


class Sla(StrEnum):
    """Where a task stands against its deadline (SPEC section 4: warnings at 50 % and 80 % of
    the window, then the breach)."""

    ON_TIME = "on_time"
    WARNED_50 = "warned_50"
    """Half of the deadline's business time is used: the workflow has warned its owner
    (`_sla_column` says how a task off its stage's clock is reckoned)."""
    WARNED_80 = "warned_80"
    OVERDUE = "overdue"
    NONE = "none"
    """No deadline."""


SLA_LABELS = {
    Sla.ON_TIME: "on time",
    Sla.WARNED_50: "warned: half the time used",
    Sla.WARNED_80: "warned: 80% of the time used",
    Sla.OVERDUE: "overdue",
    Sla.NONE: "no deadline",
}


class SortKey(StrEnum):
    DUE = "due"
    AMOUNT = "amount"
    STAGE = "stage"
    CATEGORY = "category"
    KIND = "kind"
    DISPUTE = "dispute"


SORT_LABELS = {
    SortKey.DUE: "deadline",
    SortKey.AMOUNT: "amount",
    SortKey.STAGE: "stage",
    SortKey.CATEGORY: "category",
    SortKey.KIND: "task",
    SortKey.DISPUTE: "dispute number",
}

DESCENDING_FIRST = frozenset({SortKey.AMOUNT})
"""Keys sorted largest first unless `order=asc` is asked: the biggest amount is the one to see."""

TASK_LABELS = {k: wording.capital(wording.label(k)) for k in TaskKind}
STAGE_LABELS = {s: wording.label(s) for s in DisputeStage}
CATEGORY_LABELS = {c: wording.label(c) for c in DisputeCategory}
"""The words of accord.platform.wording, by member: the queue's selects, columns and sort order."""

# What the task waits on: the viewer's own step, or (for the tasks that wait on others) the
# others' steps, named with the people or partners who owe them.
_OWN_STEP = {
    TaskKind.ACCEPT_ASSIGNMENT: "your acceptance (or recusal)",
    TaskKind.MEDIATE: "your next step: a note, an information request, an offer or impasse",
    TaskKind.ANSWER_INFORMATION: "your answer to the information request",
    TaskKind.RESPOND_TO_OFFER: "your response to the settlement offer",
    TaskKind.ASSIGN_MEDIATOR: "your choice of a mediator",
    TaskKind.FORMAL_REVIEW: "a review panel to be drawn from the board",
    TaskKind.RESOLVE_REMEDY: "your retry or waiver of the failing remedy",
    TaskKind.COMPOSE_PANEL: "your completion of the board, then a panel redraw",
    TaskKind.CAST_VOTE: "your vote",
    TaskKind.ISSUE_RULING: "your ruling",
    TaskKind.EXECUTIVE_REVIEW: "a ruling from the panel, which you are to obtain",
    TaskKind.RESOLVE_DEADLINE: "your correction of the calendar (and an extension if need be)",
    TaskKind.RESOLVE_MAIL: "your resend or dismissal of the refused email",
}
_OTHERS_STEP = {
    TaskKind.ANSWER_INFORMATION: "answer to information request from",
    TaskKind.RESPOND_TO_OFFER: "response to the settlement offer from",
    TaskKind.CAST_VOTE: "a vote from the panel:",
    TaskKind.ISSUE_RULING: "the ruling from the chair,",
}
WAITS_ON_OTHERS = {
    TaskKind.MEDIATE: (TaskKind.ANSWER_INFORMATION, TaskKind.RESPOND_TO_OFFER),
    TaskKind.ISSUE_RULING: (TaskKind.CAST_VOTE,),
    TaskKind.EXECUTIVE_REVIEW: (TaskKind.CAST_VOTE, TaskKind.ISSUE_RULING),
}
"""A task that waits on others' open tasks on the same dispute, and on which of their kinds."""
_OTHER_KINDS = tuple(dict.fromkeys(k for kinds in WAITS_ON_OTHERS.values() for k in kinds))

_UNIT = "\x1f"
_RECORD = "\x1e"
"""Separators of the values aggregated into one column (names hold no control characters:
models.text refuses them)."""


@dataclass(frozen=True)
class QueueQuery:
    """How a queue is sorted and narrowed; the defaults are the soonest deadline first."""

    sort: SortKey = SortKey.DUE
    descending: bool = False
    categories: frozenset[DisputeCategory] = frozenset()
    stages: frozenset[DisputeStage] = frozenset()
    slas: frozenset[Sla] = frozenset()
    kinds: frozenset[TaskKind] = frozenset()
    page: int = 1
    """1 for the first QUEUE_LIMIT rows, 2 for the next ones, and so on."""

    def as_params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query as URL parameters (for links that keep it), with `changes` made."""
        query = replace(self, **changes)
        params: list[tuple[str, str]] = []
        if query.sort is not SortKey.DUE:
            params.append(("sort", query.sort.value))
        if query.descending != (query.sort in DESCENDING_FIRST):
            params.append(("order", "desc" if query.descending else "asc"))
        for name, values in (
            ("category", query.categories),
            ("stage", query.stages),
            ("sla", query.slas),
            ("kind", query.kinds),
        ):
            params.extend((name, v.value) for v in sorted(values, key=lambda v: v.value))
        if query.page != 1:
            params.append(("page", str(query.page)))
        return params

    def sorted_by(self, key: SortKey) -> list[tuple[str, str]]:
        """Parameters for a column heading's link: sort by `key`, or reverse it if it is the
        sort already."""
        descending = not self.descending if key is self.sort else key in DESCENDING_FIRST
        return self.as_params(sort=key, descending=descending, page=1)

    @property
    def filtered(self) -> bool:
        return bool(self.categories or self.stages or self.slas or self.kinds)


_PARAMETERS: dict[str, tuple[type[StrEnum], Mapping[Any, str], str]] = {
    "category": (DisputeCategory, CATEGORY_LABELS, "a category"),
    "stage": (DisputeStage, STAGE_LABELS, "a stage"),
    "sla": (Sla, SLA_LABELS, "a deadline state"),
    "kind": (TaskKind, TASK_LABELS, "a kind of task"),
}


def _values(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(m.value for m in enum)


def read_queue_query(params: Iterable[tuple[str, str]]) -> QueueQuery:
    """The queue's query parameters (a GET form or a link): `sort`, `order` (asc or desc),
    `page` (1 to LAST_PAGE) and any number of `category`, `stage`, `sla` and `kind` filters
    (several values of one are alternatives). An empty value means no value (a select at
    "any"); a parameter not named here is ignored. Every bad value is refused, naming its
    parameter and what it may be; the value itself is not repeated (it may be anything: a NUL,
    a megabyte, a script)."""
    given: dict[str, list[str]] = {}
    for name, value in params:
        if value.strip():
            given.setdefault(name, []).append(value.strip())
    errors: list[tuple[str, str]] = []
    sort = SortKey.DUE
    descending: bool | None = None
    if "sort" in given:
        if len(given["sort"]) > 1:
            errors.append(("sort", "give one way to sort"))
        elif given["sort"][0] not in _values(SortKey):
            errors.append(
                ("sort", f"not a way to sort; use one of: {', '.join(k.value for k in SortKey)}")
            )
        else:
            sort = SortKey(given["sort"][0])
    if "order" in given:
        if len(given["order"]) > 1 or given["order"][0] not in ("asc", "desc"):
            errors.append(("order", "must be asc (smallest first) or desc (largest first)"))
        else:
            descending = given["order"][0] == "desc"
    page = 1
    if "page" in given:
        text = given["page"][0]
        number = text.isascii() and text.isdigit() and len(text) <= len(str(LAST_PAGE))
        if len(given["page"]) > 1 or not number or not 1 <= int(text) <= LAST_PAGE:
            errors.append(("page", f"must be a whole number from 1 to {LAST_PAGE:,}"))
        else:
            page = int(text)
    chosen: dict[str, frozenset[Any]] = {}
    for name, (enum, labels, what) in _PARAMETERS.items():
        values = given.get(name, [])
        known = _values(enum)
        unknown = [v for v in values if v not in known]
        if unknown:
            allowed = ", ".join(f"{m.value} ({labels[m]})" for m in enum)
            errors.append((name, f"not {what} this queue knows; use one of: {allowed}"))
        chosen[name] = frozenset(enum(v) for v in values if v in known)
    if errors:
        raise BadQuery(errors)
    return QueueQuery(
        sort=sort,
        descending=sort in DESCENDING_FIRST if descending is None else descending,
        categories=chosen["category"],
        stages=chosen["stage"],
        slas=chosen["sla"],
        kinds=chosen["kind"],
        page=page,
    )


# --- SQL ----------------------------------------------------------------------------------------


class _epoch(FunctionElement[float]):
    """Seconds since 1970 of a UTC timestamp column, on either backend."""

    type = Float()
    inherit_cache = True
    name = "epoch"


@compiles(_epoch, "sqlite")
def _epoch_sqlite(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (models.tables.UTCDateTime).
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(_epoch, "postgresql")
def _epoch_postgresql(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT)"


STAGE_CLOCKS = (
    ((TaskKind.ACCEPT_ASSIGNMENT,), DisputeStage.TRIAGE),
    ((TaskKind.MEDIATE, TaskKind.RESPOND_TO_OFFER), DisputeStage.MEDIATION),
    ((TaskKind.ANSWER_INFORMATION,), DisputeStage.AWAITING_PARTY),
    ((TaskKind.CAST_VOTE, TaskKind.ISSUE_RULING), DisputeStage.FORMAL_REVIEW),
)
"""Tasks opened with their stage's deadline: while the dispute is in that stage, the deadline
that stands is the dispute's (an admin's extension of the acceptance, mediation or information
deadline, or the mediation clock moved after a party's answer, moves it; the task row keeps the
one it opened with)."""


PAUSED_CLOCKS = (
    (TaskKind.MEDIATE, DisputeStage.AWAITING_PARTY),
    (TaskKind.RESPOND_TO_OFFER, DisputeStage.AWAITING_PARTY),
)
"""Tasks whose clock stands still in a stage: mediation, and the responses to its offers (open
until mediation ends), while a party owes information (the deadline then moves by the time
paused). No deadline runs for them: none is shown or counted
down to, and they are not overdue."""


def _due_column(d: Any) -> Any:
    paused = [
        (and_(col(Task.kind) == kind, col(d.stage) == stage), null())
        for kind, stage in PAUSED_CLOCKS
    ]
    current = [
        (
            and_(
                col(Task.kind).in_(kinds),
                col(d.stage) == stage,
                col(d.stage_deadline).is_not(None),
            ),
            col(d.stage_deadline),
        )
        for kinds, stage in STAGE_CLOCKS
    ]
    return type_coerce(case(*paused, *current, else_=col(Task.due_at)), UTCDateTime())


def _on_stage_clock(d: Any) -> Any:
    """The task runs on its dispute's stage deadline (`STAGE_CLOCKS`), and the workflow's
    warning instants for that deadline are recorded."""
    return or_(
        *(
            and_(
                col(Task.kind).in_(kinds),
                col(d.stage) == stage,
                col(d.stage_deadline).is_not(None),
                or_(
                    col(d.stage_warning_50_at).is_not(None),
                    col(d.stage_warning_80_at).is_not(None),
                ),
            )
            for kinds, stage in STAGE_CLOCKS
        )
    )


def standing_due(d: Any) -> Any:
    """The deadline that stands for a task (`STAGE_CLOCKS`, `PAUSED_CLOCKS`), over `d`, an
    alias of the dispute table joined to the task: what `accord tasks` counts down to too."""
    return _due_column(d)


def _sla_column(now: datetime, due_at: Any, d: Any) -> Any:
    """Where a task stands. On its stage's clock, at the instants the workflow warns its owner
    (50 % and 80 % of the deadline's business time: a weekend or a holiday uses none of it, and
    after an extension the warnings not yet sent move with the deadline); otherwise, and for a
    deadline recorded before those instants were, at those fractions of the time between the
    task's opening and its deadline."""
    made, due, at = _epoch(Task.created_at), _epoch(due_at), now.timestamp()
    business = _on_stage_clock(d)
    return case(
        (due_at.is_(None), literal(Sla.NONE.value)),
        (due_at <= now, literal(Sla.OVERDUE.value)),
        (business & (col(d.stage_warning_80_at) <= now), literal(Sla.WARNED_80.value)),
        (business & (col(d.stage_warning_50_at) <= now), literal(Sla.WARNED_50.value)),
        (business, literal(Sla.ON_TIME.value)),
        (made * 0.2 + due * 0.8 <= at, literal(Sla.WARNED_80.value)),
        (made * 0.5 + due * 0.5 <= at, literal(Sla.WARNED_50.value)),
        else_=literal(Sla.ON_TIME.value),
    )


def _rank(column: Any, order: Sequence[StrEnum]) -> Any:
    return case({m.value: i for i, m in enumerate(order)}, value=column, else_=len(order))


def _by_label(labels: Mapping[Any, str]) -> list[Any]:
    return sorted(labels, key=lambda m: labels[m].lower())


@dataclass(frozen=True)
class Awaited:
    what: str
    """What the task waits on, in words: "your vote", "answer to information request from"."""
    from_whom: tuple[str, ...] = ()
    """Who owes it (partners' or people's names), when it is not the viewer."""

    @property
    def text(self) -> str:
        if not self.from_whom:
            return self.what
        return f"{self.what} {wording.join(self.from_whom)}"


@dataclass(frozen=True)
class QueueItem:
    task: Task
    due_at: datetime | None
    """The deadline that stands (`STAGE_CLOCKS`); the task's own otherwise."""
    sla: Sla
    category: DisputeCategory | None
    stage: DisputeStage | None
    amount: Decimal | None
    currency: str | None
    claimant: str | None
    respondents: tuple[str, ...]
    awaiting: tuple[Awaited, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        # The kind in words; a title that says more than kind and number (mail the server
        # refused, and to whom) follows it, as accord.platform.wording.task words it.
        said = wording.task(self.task).removesuffix(f" {self.task.dispute_number}")
        kind = wording.label(self.task.kind)
        return TASK_LABELS[self.task.kind] + said.removeprefix(kind)

    @property
    def sla_label(self) -> str:
        return SLA_LABELS[self.sla]

    @property
    def parties(self) -> str:
        """'Northwind Traders v Contoso Systems and Adatum GmbH'."""
        respondents = wording.join(self.respondents)
        if self.claimant is None:
            return respondents
        return f"{self.claimant} v {respondents}" if self.respondents else self.claimant

    @property
    def money(self) -> str:
        return "-" if self.amount is None else wording.money(self.amount, self.currency)

    @property
    def awaiting_text(self) -> str:
        return "; ".join(a.text for a in self.awaiting)


def _aggregate(expression: Any) -> Any:
    return func.aggregate_strings(expression, _RECORD)


def work_queue(
    session: Session,
    viewer: Viewer,
    query: QueueQuery | None = None,
    *,
    now: datetime | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[QueueItem]:
    """The viewer's open tasks, as `query` asks, in one SQL statement."""
    query = query or QueueQuery()
    now = now or datetime.now(UTC)
    mine: list[str] = [viewer.actor.id]
    if viewer.actor.partner_id:
        mine.append(viewer.actor.partner_id)

    party_name = aliased(Partner)
    parties = (
        select(_aggregate(col(DisputeParty.side) + _UNIT + col(party_name.name)))
        .join(party_name, col(party_name.id) == col(DisputeParty.partner_id))
        .where(col(DisputeParty.dispute_number) == col(Task.dispute_number))
        .correlate(Task)
        .scalar_subquery()
    )
    other = aliased(Task)
    other_partner = aliased(Partner)
    other_person = aliased(Person)
    others = (
        select(
            _aggregate(
                col(other.kind)
                + _UNIT
                + func.coalesce(col(other_partner.name), col(other_person.name), "someone")
            )
        )
        .select_from(other)
        .outerjoin(other_partner, col(other_partner.id) == col(other.assignee_id))
        .outerjoin(other_person, col(other_person.id) == col(other.assignee_id))
        .where(
            col(other.dispute_number) == col(Task.dispute_number),
            col(other.state) == TaskState.OPEN,
            col(other.key) != col(Task.key),
            col(other.kind).in_(_OTHER_KINDS),
            col(Task.kind).in_(tuple(WAITS_ON_OTHERS)),
        )
        .correlate(Task)
        .scalar_subquery()
    )
    # The dispute's columns come from an alias: accord.disputes.access's scope is an EXISTS on the
    # dispute table itself, per task, by the dispute's key (as the inbox always asked it).
    d = aliased(Dispute)
    due = _due_column(d)
    sla = _sla_column(now, due, d)
    statement = (
        select(  # type: ignore[call-overload]
            Task,
            due,
            col(d.category),
            col(d.stage),
            col(d.amount_at_stake),
            col(d.currency),
            parties,
            others,
            sla,
        )
        .select_from(Task)
        .outerjoin(d, col(d.number) == col(Task.dispute_number))
        .where(col(Task.state) == TaskState.OPEN)
    )
    if not viewer.sees_everything:
        statement = statement.where(
            exists().where(col(Dispute.number) == col(Task.dispute_number), dispute_scope(viewer))
        )
    if viewer.role is Role.ADMIN:
        statement = statement.where(
            col(Task.assignee_id).in_(mine)
            | (col(Task.assignee_id).is_(None) & (col(Task.assignee_role) == Role.ADMIN))
        )
    else:
        statement = statement.where(col(Task.assignee_id).in_(mine))
    if query.categories:
        statement = statement.where(col(d.category).in_(query.categories))
    if query.stages:
        statement = statement.where(col(d.stage).in_(query.stages))
    if query.kinds:
        statement = statement.where(col(Task.kind).in_(query.kinds))
    if query.slas:
        statement = statement.where(sla.in_([s.value for s in query.slas]))
    statement = statement.order_by(*_order(query, d, due))
    statement = statement.offset((query.page - 1) * limit).limit(limit)
    rows = session.exec(statement).all()
    return [_item(*row) for row in rows]


def _order(query: QueueQuery, d: Any, due_at: Any) -> list[Any]:
    """The sort asked for, nulls (no deadline, no amount) last either way; ties by deadline,
    then dispute number and task, so the order is the same on every backend and every load."""

    def direction(expression: Any) -> Any:
        return expression.desc() if query.descending else expression.asc()

    due = [due_at.is_(None), due_at.asc()]
    ties = [col(Task.dispute_number).asc(), col(Task.key).asc()]
    if query.sort is SortKey.DUE:
        return [due_at.is_(None), direction(due_at), *ties]
    if query.sort is SortKey.AMOUNT:
        amount = col(d.amount_at_stake)
        return [amount.is_(None), direction(amount), col(d.currency).asc(), *due, *ties]
    if query.sort is SortKey.STAGE:
        key = _rank(col(d.stage), list(DisputeStage))
    elif query.sort is SortKey.CATEGORY:
        key = _rank(col(d.category), _by_label(CATEGORY_LABELS))
    elif query.sort is SortKey.KIND:
        key = _rank(col(Task.kind), _by_label(TASK_LABELS))
    else:
        return [direction(col(Task.dispute_number)), col(Task.key).asc()]
    return [direction(key), *due, *ties]


def _split(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    pairs = []
    for record in text.split(_RECORD):
        head, _, tail = record.partition(_UNIT)
        pairs.append((head, tail))
    return pairs


def _item(
    task: Task,
    due_at: datetime | None,
    category: DisputeCategory | None,
    stage: DisputeStage | None,
    amount: Decimal | None,
    currency: str | None,
    parties: str | None,
    others: str | None,
    sla: str,
) -> QueueItem:
    sides = _split(parties)
    claimants = sorted(name for side, name in sides if side == "claimant")
    respondents = tuple(sorted(name for side, name in sides if side != "claimant"))
    return QueueItem(
        task=task,
        due_at=due_at,
        sla=Sla(sla),
        category=category,
        stage=stage,
        amount=amount,
        currency=currency,
        claimant=", ".join(claimants) or None,
        respondents=respondents,
        awaiting=awaited(task.kind, _split(others)),
    )


def awaited(kind: TaskKind, others: list[tuple[str, str]]) -> tuple[Awaited, ...]:
    """What a task waits on: the others' open steps it waits for, else the viewer's own."""
    owed: dict[TaskKind, list[str]] = {}
    for other_kind, name in others:
        if other_kind in WAITS_ON_OTHERS.get(kind, ()):
            owed.setdefault(TaskKind(other_kind), []).append(name)
    if not owed:
        return (Awaited(_OWN_STEP[kind]),)
    return tuple(
        Awaited(_OTHERS_STEP[k], tuple(sorted(set(names))))
        for k, names in sorted(owed.items(), key=lambda kv: _OTHER_KINDS.index(kv[0]))
    )
