"""The board's exceptions in the channel-health view: the requests made in the period by clause
and by their state now, how long the board took from request to decision, and the exceptions
in force now (whichever period is shown: what detection and the recommendation honour today).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from accord.channel.exceptions import approved
from accord.rules.consistency import clause_ref
from models.enums import ExceptionState
from models.tables import ChannelException


class ExceptionCount(BaseModel):
    """The requests of one clause made in the period that stand in one state now."""

    model_config = ConfigDict(frozen=True)
    clause: str
    """The clause's reference ("RoE 4.2")."""
    state: ExceptionState
    count: int


class ExceptionInForce(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    """Its row's id: the page /exceptions/{id}."""
    number: str
    partner_id: str
    partner: str
    clause: str
    scope_kind: str
    scope_ref: str
    approved_at: datetime
    until: date


class ExceptionsHealth(BaseModel):
    model_config = ConfigDict(frozen=True)
    requested: int
    """Requests made in the period."""
    counts: list[ExceptionCount]
    """By clause, then state, those with a request only."""
    decided: int
    """Of those requests, the ones the board decided (approved or denied, since expired too)."""
    median_hours_to_decision: float | None
    """Plain hours from request to decision, nights and weekends included."""
    in_force: list[ExceptionInForce]
    """Now, by when they end."""

    def rows(self) -> list[dict[str, Any]]:
        """For the view's CSV: (section, name, measure, value) rows."""
        out = [
            _row("exceptions", "requests", "requested", self.requested),
            _row("exceptions", "requests", "decided", self.decided),
            _row(
                "exceptions", "requests", "median_hours_to_decision", self.median_hours_to_decision
            ),
        ]
        out += [_row("exceptions_by_clause", c.clause, c.state.value, c.count) for c in self.counts]
        out += [
            _row(
                "exceptions_in_force",
                e.number,
                f"{e.partner_id} {e.clause} {e.scope_kind} {e.scope_ref}",
                e.until.isoformat(),
            )
            for e in self.in_force
        ]
        return out


def _row(section: str, name: str, measure: str, value: Any) -> dict[str, Any]:
    return {"section": section, "name": name, "measure": measure, "value": value}


def exceptions_health(
    session: Session,
    in_period: Callable[[Any, Any], Any],
    names: dict[str, str],
    now: datetime,
) -> ExceptionsHealth:
    """`in_period` narrows a query to the period by a column (the view's own)."""
    rows = list(
        session.exec(
            in_period(select(ChannelException), ChannelException.requested_at).order_by(
                col(ChannelException.requested_at), col(ChannelException.id)
            )
        )
    )
    counts = Counter((clause_ref(r.clause), r.state) for r in rows)
    states = list(ExceptionState)
    waits = [
        (r.decided_at - r.requested_at).total_seconds() / 3600
        for r in rows
        if r.decided_at is not None
        and r.state in (ExceptionState.APPROVED, ExceptionState.DENIED, ExceptionState.EXPIRED)
    ]
    in_force = sorted(
        (e for e in approved(session) if e.in_force_at(now)), key=lambda e: (e.until, e.id)
    )
    return ExceptionsHealth(
        requested=len(rows),
        counts=[
            ExceptionCount(clause=clause, state=state, count=n)
            for (clause, state), n in sorted(
                counts.items(), key=lambda item: (item[0][0], states.index(item[0][1]))
            )
        ],
        decided=len(waits),
        median_hours_to_decision=round(statistics.median(waits), 1) if waits else None,
        in_force=[
            ExceptionInForce(
                id=e.id,
                number=e.number,
                partner_id=e.partner_id,
                partner=names.get(e.partner_id, e.partner_id),
                clause=clause_ref(e.clause),
                scope_kind=e.scope_kind,
                scope_ref=e.scope_ref,
                approved_at=e.from_at,
                until=e.until,
            )
            for e in in_force
        ],
    )
