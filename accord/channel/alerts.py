"""The channel manager's alert queue: conflict alerts listed with filters, and dismissed with
a reason (accord.channel.detection raises them). A dismissal is final for that pair: the next
import finding the same overlap leaves it dismissed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from accord.disputes.evidence import Upload
from accord.platform.db import SessionFactory
from models.enums import AlertKind, AlertState
from models.tables import AlertEvent, ConflictAlert
from models.text import StoredProse

SNAPSHOT_DESCRIPTION = (
    "Conflict alert {alert} as detected: the objects, their owners and dates, and why they "
    "were matched"
)


def snapshot(alert: ConflictAlert) -> Upload:
    """The alert as detected, the evidence a dispute made from it starts with. Plain text
    (JSON in it): a type every deployment's evidence settings accept and serve; the same alert
    gives the same bytes, so it is stored once."""
    body: dict[str, Any] = {
        "alert": alert.id,
        "kind": alert.kind.value,
        "detected_at": alert.detected_at.isoformat(),
        "score": alert.score,
        "reasons": alert.reasons,
        **alert.evidence,
    }
    return Upload(
        filename=f"conflict-alert-{alert.id}.txt",
        content_type="text/plain",
        data=json.dumps(body, indent=1, sort_keys=True).encode(),
    )


class AlertRefused(Exception):
    """Why an alert cannot be acted on (gone, or decided already): said to the user."""


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000), StoredProse
]


class Dismissal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    reason: Reason


def listed(
    session: Session,
    *,
    kind: AlertKind | None = None,
    state: AlertState | None = AlertState.OPEN,
    partner_id: str | None = None,
    most: int = 100,
    skip: int = 0,
) -> tuple[list[ConflictAlert], int]:
    """The alerts matching the filters, highest score first, and how many match in all."""
    query = select(ConflictAlert)
    if kind is not None:
        query = query.where(ConflictAlert.kind == kind)
    if state is not None:
        query = query.where(ConflictAlert.state == state)
    rows = list(
        session.exec(query.order_by(col(ConflictAlert.score).desc(), col(ConflictAlert.id)))
    )
    if partner_id is not None:
        # A JSON list: filtered here, the same on SQLite and PostgreSQL.
        rows = [r for r in rows if partner_id in r.partner_ids]
    return rows[skip : skip + most], len(rows)


def open_count(session: Session) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(ConflictAlert)
            .where(ConflictAlert.state == AlertState.OPEN)
        ).one()
    )


def dismiss(
    sessions: SessionFactory, alert_id: int, *, by: str, dismissal: Dismissal, now: datetime
) -> ConflictAlert:
    """Dismiss an open alert with its reason; two channel managers at once: the second is
    told the first did."""
    with sessions.begin(immediate=True) as session:
        alert = session.exec(
            select(ConflictAlert).where(ConflictAlert.id == alert_id).with_for_update()
        ).first()
        if alert is None:
            raise AlertRefused(f"no alert {alert_id}")
        if alert.state is not AlertState.OPEN:
            raise AlertRefused(
                f"alert {alert_id} is {alert.state.value} already (by {alert.decided_by}"
                f" on {alert.decided_at:%Y-%m-%d %H:%M} UTC)"
            )
        alert.state = AlertState.DISMISSED
        alert.decided_by, alert.decided_at = by, now
        alert.decision_reason = dismissal.reason
        record(session, alert_id, now, by, "dismissed", reason=dismissal.reason)
        return alert


def record(
    session: Session, alert_id: int, at: datetime, actor: str, action: str, **detail: object
) -> None:
    """One entry of the alert's audit, in the caller's transaction (its decision's)."""
    session.add(AlertEvent(alert_id=alert_id, at=at, actor=actor, action=action, detail=detail))


def history(session: Session, alert_id: int) -> list[AlertEvent]:
    """The alert's audit: every decision on it, in the order taken."""
    return list(
        session.exec(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(col(AlertEvent.id))
        )
    )


def made_dispute(
    sessions: SessionFactory,
    alert_id: int,
    number: str,
    claimant_id: str,
    *,
    by: str,
    now: datetime,
) -> bool:
    """The alert is converted into dispute `number` (recorded once, whoever gets here first:
    the conversion, or the worker starting its stored filing after a crash)."""
    with sessions.begin() as session:
        done = session.execute(
            update(ConflictAlert)
            .where(col(ConflictAlert.id) == alert_id)
            .where(col(ConflictAlert.dispute_number).is_(None))
            .values(
                state=AlertState.CONVERTED,
                decided_by=by,
                dispute_number=number,
                decision_reason=f"made dispute {number} for {claimant_id}",
            )
        ).rowcount  # type: ignore[attr-defined]
        if done:
            record(session, alert_id, now, by, "converted", dispute=number, claimant=claimant_id)
        return bool(done)
