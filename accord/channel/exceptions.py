"""Exceptions to the rules of engagement: what a partner may ask the board for, whom it
affects, the record of each step, and which approved exceptions are in force.

A request is checked here against the playbook in force (`engagement.exceptions`) and the
channel data before anything is stored or started: a clause the playbook does not let the
board except, a scope it does not allow, a date past its longest duration, or a protection
nobody holds there is refused naming the field and the rule. The workflow
(workflows/exception.py) then owns the request; this module keeps its read model and its audit
(`exception_event`), and answers detection and the engagement facts with the exceptions in
force.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator
from sqlmodel import Session, col, select

from accord.playbooks.library import Engagement, Playbook
from accord.rules.consistency import clause_key, clause_ref
from models.enums import AlertKind, ExceptionState
from models.payloads import ExceptionStep
from models.payloads.common import PartnerId, Ref
from models.tables import (
    Account,
    ChannelException,
    ExceptionEvent,
    Partner,
    Territory,
)
from models.text import StoredLine, StoredProse

Scope = Literal["account", "territory"]

COVERED_KINDS: dict[str, frozenset[AlertKind]] = {
    # The protection a clause's table looks at, and the alerts that protection raises.
    "exclusive_territory": frozenset({AlertKind.EXCLUSIVE_TERRITORY}),
    "named_account": frozenset({AlertKind.LEAD_AGAINST_ROUTING, AlertKind.SAME_CUSTOMER}),
}


class ExceptionRefused(Exception):
    """Why a request or an action on an exception is refused: which field, and the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ExceptionRequest(BaseModel):
    """A request as a partner (or an admin for them) makes it: through the API, the web form
    or `accord exceptions request`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    partner_id: PartnerId
    clause: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StoredLine
    ]
    account: Ref | None = None
    territory: Ref | None = None
    until: date
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=20, max_length=5_000), StoredProse
    ]
    """Why the exception is asked for: at least a sentence."""

    @model_validator(mode="after")
    def _one_scope(self) -> ExceptionRequest:
        if (self.account is None) == (self.territory is None):
            raise ValueError("name one account or one territory the exception covers")
        return self

    @property
    def scope(self) -> tuple[Scope, str]:
        if self.account is not None:
            return "account", self.account
        assert self.territory is not None
        return "territory", self.territory


@dataclass(frozen=True)
class Prepared:
    """A request the playbook and the channel data allow: the row to store, and the rules
    its workflow follows."""

    row: ChannelException
    objection_days: int
    decision_days: int
    board_calendar: str
    panel_functions: tuple[str, ...]
    warning_fractions: tuple[float, ...]


def protected_facts(playbook: Playbook, clause: str) -> tuple[str, ...]:
    """The protections (`COVERED_KINDS`' facts) the clause's decision table looks at."""
    return protections(playbook.engagement, clause)


def protections(engagement: Engagement | None, clause: str) -> tuple[str, ...]:
    """`protected_facts` for detection, which is handed the engagement rules alone."""
    table = engagement.table(clause) if engagement else None
    if table is None:
        return ()
    asked = {name for rule in table.rules for name in rule.when.asked()}
    return tuple(fact for fact in COVERED_KINDS if fact in asked)


def end_of(day: date, zone: str) -> datetime:
    """The first instant after `day` on the board calendar's clock: until then it is `day`."""
    return datetime.combine(day + timedelta(days=1), time(), ZoneInfo(zone))


def prepare(
    session: Session,
    playbook: Playbook,
    request: ExceptionRequest,
    *,
    requested_by: str,
    now: datetime,
) -> Prepared:
    """The request checked against `playbook` (the one in force) and the channel data; raises
    ExceptionRefused naming the field and the rule. Nothing is written."""
    version = playbook.version
    rules = playbook.engagement.exceptions if playbook.engagement else None
    if rules is None:
        raise ExceptionRefused("clause", f"playbook {version} lets the board except no rule")
    allowed = rules.allowed(request.clause)
    if allowed is None:
        offered = "; ".join(
            f"{clause_ref(c.clause)} ({', '.join(c.scopes)})" for c in rules.clauses
        )
        raise ExceptionRefused(
            "clause",
            f"{clause_ref(request.clause)} may not be excepted under playbook {version}: "
            f"the board may except {offered}",
        )
    assert playbook.engagement is not None
    table = playbook.engagement.table(allowed.clause)
    assert table is not None  # the playbook's own check (Engagement._consistent)
    clause = table.clause.strip()
    kind, ref = request.scope
    if kind not in allowed.scopes:
        raise ExceptionRefused(
            kind,
            f"{clause_ref(clause)} may be excepted for {' or '.join(allowed.scopes)} only "
            f"(playbook {version})",
        )
    calendar = playbook.calendars[playbook.board_calendar]
    today = now.astimezone(ZoneInfo(calendar.time_zone)).date()
    longest = today + timedelta(days=rules.longest_days)
    if request.until <= today:
        raise ExceptionRefused("until", f"{request.until} is not after today ({today})")
    if request.until > longest:
        raise ExceptionRefused(
            "until",
            f"an exception lasts at most {rules.longest_days} days under playbook {version}: "
            f"until {longest} at the latest",
        )
    # Locked (PostgreSQL; SQLite's writer is one already): the same request sent twice at once
    # waits here for the other's commit, and then finds it below as a duplicate.
    partner = session.get(Partner, request.partner_id, with_for_update=True)
    if partner is None or not partner.active:
        raise ExceptionRefused("partner_id", f"{request.partner_id!r} is not an active partner")
    if partner.is_direct_sales:
        raise ExceptionRefused(
            "partner_id", "the vendor's direct sales is bound by the rules, not excepted from them"
        )
    account = session.get(Account, ref) if kind == "account" else None
    territory = session.get(Territory, ref) if kind == "territory" else None
    if kind == "account" and account is None:
        raise ExceptionRefused("account", f"no account {ref!r} in the channel data")
    if kind == "territory" and territory is None:
        raise ExceptionRefused("territory", f"no territory {ref!r} in the channel data")
    affected = affected_partners(session, playbook, clause, kind, ref)
    affected.discard(partner.id)
    if not affected:
        raise ExceptionRefused(
            kind,
            f"{clause_ref(clause)} protects no other partner at {kind} {ref}: "
            "there is nothing to except",
        )
    duplicate = _same_request(session, partner.id, clause, kind, ref, now)
    if duplicate is not None:
        raise ExceptionRefused(
            kind,
            f"{duplicate.state.value} exception EXC-{duplicate.id} already covers "
            f"{clause_ref(clause)} at {kind} {ref} for {partner.id}",
        )
    row = ChannelException(
        partner_id=partner.id,
        clause=clause,
        scope_kind=kind,
        scope_ref=ref,
        affected_partner_ids=sorted(affected),
        reason=request.reason,
        requested_by=requested_by,
        requested_at=now,
        until=request.until,
        expires_at=end_of(request.until, calendar.time_zone),
        playbook_version=version,
        state=ExceptionState.REQUESTED,
    )
    return Prepared(
        row=row,
        objection_days=rules.objection_days,
        decision_days=rules.decision_days,
        board_calendar=playbook.board_calendar,
        panel_functions=tuple(playbook.panel.functions),
        warning_fractions=tuple(playbook.warnings),
    )


def affected_partners(
    session: Session, playbook: Playbook, clause: str, kind: str, ref: str
) -> set[str]:
    """The partners whose protection under `clause` the exception would lift: the exclusive
    holder of the territory (the account's, for an account), the partner the account is named
    to."""
    found: set[str] = set()
    facts = protected_facts(playbook, clause)
    account = session.get(Account, ref) if kind == "account" else None
    if "exclusive_territory" in facts:
        code = ref if kind == "territory" else (account.territory_code if account else None)
        territory = session.get(Territory, code) if code else None
        if territory is not None and territory.exclusive and territory.partner_id:
            found.add(territory.partner_id)
    if "named_account" in facts and account is not None and account.partner_id:
        found.add(account.partner_id)
    return found


def _same_request(
    session: Session, partner_id: str, clause: str, kind: str, ref: str, now: datetime
) -> ChannelException | None:
    rows = session.exec(
        select(ChannelException).where(
            ChannelException.partner_id == partner_id,
            ChannelException.scope_kind == kind,
            ChannelException.scope_ref == ref,
            col(ChannelException.state).in_(
                (ExceptionState.REQUESTED, ExceptionState.IN_REVIEW, ExceptionState.APPROVED)
            ),
        )
    )
    for row in rows:
        if clause_key(row.clause) == clause_key(clause) and (
            row.state.is_open or row.expires_at > now
        ):
            return row
    return None


def record(session: Session, step: ExceptionStep) -> bool:
    """Append the step to the audit and project it onto the read model, once: False when the
    step was recorded already (a retried activity)."""
    done = session.exec(
        select(ExceptionEvent.id).where(
            ExceptionEvent.exception_id == step.exception_id, ExceptionEvent.step == step.step
        )
    ).first()
    if done is not None:
        return False
    row = session.get(ChannelException, step.exception_id)
    if row is None:
        raise LookupError(f"no exception {step.exception_id}")
    session.add(
        ExceptionEvent(
            exception_id=step.exception_id,
            step=step.step,
            at=step.at,
            actor=step.actor,
            action=step.action,
            summary=step.summary,
            detail=step.detail,
        )
    )
    if step.state is not None:
        row.state = step.state
    if step.objections_close_at is not None:
        row.objections_close_at = step.objections_close_at
    if step.decision_due_at is not None:
        row.decision_due_at = step.decision_due_at
    if step.panel is not None:
        row.panel = step.panel
        if not step.panel:  # no panel sits (being drawn again): nor does its deadline run
            row.decision_due_at = None
    if step.decision is not None:
        row.decided_by = step.decision.actor.id
        row.decided_at = step.at
        row.decision_reason = step.decision.reason
    session.add(row)
    # A second attempt racing this one fails on the unique step and, retried, finds it here.
    session.flush()
    return True


def history(session: Session, exception_id: int) -> list[ExceptionEvent]:
    return list(
        session.exec(
            select(ExceptionEvent)
            .where(ExceptionEvent.exception_id == exception_id)
            .order_by(col(ExceptionEvent.step))
        )
    )


def listed(
    session: Session,
    *,
    state: ExceptionState | None = None,
    partner_id: str | None = None,
    clause: str | None = None,
    most: int = 100,
    skip: int = 0,
) -> tuple[list[ChannelException], int]:
    """Exceptions matching the filters, newest first, and how many match in all. A partner's
    filter finds those it asked for and those that affect it."""
    query = select(ChannelException)
    if state is not None:
        query = query.where(ChannelException.state == state)
    rows = list(session.exec(query.order_by(col(ChannelException.id).desc())))
    if partner_id is not None:
        rows = [r for r in rows if partner_id in (r.partner_id, *r.affected_partner_ids)]
    if clause is not None:
        rows = [r for r in rows if clause_key(r.clause) == clause_key(clause)]
    return rows[skip : skip + most], len(rows)


@dataclass(frozen=True)
class InForce:
    """An approved exception, as detection and the engagement facts consult it."""

    id: int
    partner_id: str
    clause: str
    scope_kind: str
    scope_ref: str
    from_at: datetime
    expires_at: datetime
    until: date
    """The last day it covers (`expires_at` is the end of it on the board calendar)."""
    affected: frozenset[str] = frozenset()
    """The partners it was granted against (told, and able to object): it lifts their
    protection only, never that of a partner who later holds the territory or account."""

    @property
    def number(self) -> str:
        return f"EXC-{self.id}"

    def covers(self, account_code: str | None, territory_code: str | None) -> bool:
        if self.scope_kind == "account":
            return account_code == self.scope_ref
        return territory_code == self.scope_ref

    def in_force_at(self, moment: datetime) -> bool:
        return self.from_at <= moment < self.expires_at

    def in_force_on(self, day: date) -> bool:
        """Whether it covered `day`, read as the engagement facts read days: the UTC date of
        its approval through the last day it was granted for."""
        return self.from_at.date() <= day <= self.until


def approved(
    session: Session, partner_ids: Iterable[str] | None = None, *, expired: bool = False
) -> list[InForce]:
    """The approved exceptions (each with when it came into force and when it ends), of the
    given partners or all; with `expired`, those that have run out too (a dispute over an
    earlier day is judged by the exceptions in force that day)."""
    states = [ExceptionState.APPROVED, *([ExceptionState.EXPIRED] if expired else [])]
    query = select(ChannelException).where(col(ChannelException.state).in_(states))
    if partner_ids is not None:
        query = query.where(col(ChannelException.partner_id).in_(sorted(set(partner_ids))))
    found = []
    for row in session.exec(query):
        assert row.id is not None
        found.append(
            InForce(
                id=row.id,
                partner_id=row.partner_id,
                clause=row.clause,
                scope_kind=row.scope_kind,
                scope_ref=row.scope_ref,
                from_at=row.decided_at or row.requested_at,
                expires_at=row.expires_at,
                until=row.until,
                affected=frozenset(row.affected_partner_ids),
            )
        )
    return found


def summary(
    row: ChannelException, *, insider: bool = True, partner_id: str | None = None
) -> dict[str, Any]:
    """The exception as the API and exports show it. To a partner (not `insider`, reading as
    `partner_id`), the people stay the vendor's and their own: who asked only to the partner
    who asked, who decided to nobody, the panel by name and function (no address)."""
    shown = _summary(row)
    if insider:
        return shown
    panel = row.panel or {}
    chair = panel.get("chair") or None
    return {
        **shown,
        "requested_by": row.requested_by if partner_id == row.partner_id else None,
        "decided_by": None,
        "panel": {
            "members": [
                {"name": m.get("name"), "function": m.get("function")}
                for m in panel.get("members", [])
            ],
            "chair": {"name": chair.get("name")} if isinstance(chair, dict) else None,
        }
        if panel
        else {},
    }


def _summary(row: ChannelException) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": f"EXC-{row.id}",
        "partner_id": row.partner_id,
        "clause": row.clause,
        "scope": {"kind": row.scope_kind, "ref": row.scope_ref},
        "affected_partner_ids": row.affected_partner_ids,
        "until": row.until.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "state": row.state.value,
        "requested_by": row.requested_by,
        "requested_at": row.requested_at.isoformat(),
        "reason": row.reason,
        "objections_close_at": (
            row.objections_close_at.isoformat() if row.objections_close_at else None
        ),
        "decision_due_at": row.decision_due_at.isoformat() if row.decision_due_at else None,
        "panel": row.panel,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decision_reason": row.decision_reason,
        "playbook_version": row.playbook_version,
    }


SEALED_DETAIL = frozenset({"votes"})
"""Detail keys only the board, compliance and admins read (the opened ballot)."""


OUTSIDER_SUMMARY = {
    "panel_incomplete": "no panel could be seated yet: the admins complete the board",
    "ballot_opened": "the panel's ballot was opened",
    "approved": "approved by the board",
    "denied": "denied by the board",
}
"""What partners read of the steps whose summary carries the board's own matters: how it voted
(they read the chair's decision and reasons), and who could not sit and why (a declared
conflict is staff's, as in a dispute)."""


def event_view(event: ExceptionEvent, *, insider: bool) -> dict[str, Any]:
    detail = (
        event.detail
        if insider
        else {k: v for k, v in event.detail.items() if k not in SEALED_DETAIL and k != "reason"}
    )
    return {
        "step": event.step,
        "at": event.at.isoformat(),
        "actor": event.actor if insider else ("accord" if event.actor == "accord" else "—"),
        "action": event.action,
        "summary": event.summary if insider else OUTSIDER_SUMMARY.get(event.action, event.summary),
        "detail": detail,
    }
