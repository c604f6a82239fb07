"""The live read model: each dispute's state as its workflow last recorded it.

The workflow sends, with each audit entry, what changed in its `get_state` since the last one
it sent (`LiveDelta`); `project_live` applies it in the entry's transaction. Pages, the API and
`accord show` read `live_state`, so they never wait on the engine and work with the worker
stopped. What they show decides nothing: every action is checked again by the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import delete as sa_delete
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import Session, col, func, select

from accord.rules.transitions import allowed_actions
from models.enums import DisputeStage, Role
from models.payloads import DisputeState, HistoryEntry, LiveDelta, Payload
from models.tables import Dispute, DisputeEvent, DisputeLive, DisputeLiveNote

KEYED = ("offers", "information_requests")
"""Sections sent item by item, new or changed, by id."""


_LIVE = DisputeLive.__table__  # type: ignore[attr-defined]
_NOTE = DisputeLiveNote.__table__  # type: ignore[attr-defined]

# Core statements, not ORM loads and a unit-of-work flush: this runs with every audit entry,
# while its transaction holds SQLite's one writer (the ORM's bookkeeping was most of that hold).
_STORED = sa_select(
    _LIVE.c.version,
    _LIVE.c.state,
    sa_select(func.coalesce(func.max(_NOTE.c.position) + 1, 0))
    .where(_NOTE.c.dispute_number == bindparam("number"))
    .scalar_subquery()
    .label("notes"),
).where(_LIVE.c.dispute_number == bindparam("number"))
"""The stored live state, its version and how many notes it has, in one statement."""


def project_live(session: Session, number: str, at: datetime, live: LiveDelta) -> bool:
    """Apply one live change; False when the read model is not at the version it builds on
    (the workflow then sends its whole state). A change at or below the stored version is one
    applied already: a no-op."""
    db = session.connection()
    row = db.execute(_STORED, {"number": number}).first()
    if row is not None and row.version >= live.version:
        return True
    if live.base is None:
        state: dict[str, Any] = {name: [] for name in KEYED}
        if row is not None:
            db.execute(sa_delete(_NOTE).where(_NOTE.c.dispute_number == number))
    else:
        if row is None or row.version != live.base:
            return False
        if row.notes != live.notes_from:
            return False
        state = dict(row.state)
    state.update(live.sections)
    for name, items in (
        ("offers", live.offers),
        ("information_requests", live.information_requests),
    ):
        state[name] = _upserted(state.get(name) or [], items)
    if live.notes:
        db.execute(
            sa_insert(_NOTE),
            [
                {
                    "dispute_number": number,
                    "position": live.notes_from + i,
                    "note": note.model_dump(mode="json"),
                }
                for i, note in enumerate(live.notes)
            ],
        )
    values = {"version": live.version, "state": state, "updated_at": at}
    if row is None:
        db.execute(sa_insert(_LIVE).values(dispute_number=number, **values))
    else:
        db.execute(sa_update(_LIVE).where(_LIVE.c.dispute_number == number).values(**values))
    return True


def _upserted(stored: list[dict[str, Any]], items: Sequence[Payload]) -> list[dict[str, Any]]:
    by_id = {str(item["id"]): item for item in stored}
    for item in items:
        dumped = item.model_dump(mode="json")
        by_id[str(dumped["id"])] = dumped
    return list(by_id.values())


def live_state(session: Session, number: str, *, history: bool = False) -> DisputeState | None:
    """The dispute's live state from the read model; None when its workflow has sent none yet.

    The actions each role may take come from the transition table, as the workflow's own; the
    history, when asked for, from the audit trail (the workflow's is the same entries)."""
    row = session.get(DisputeLive, number)
    if row is None:
        return None
    notes = session.exec(
        select(DisputeLiveNote.note)
        .where(DisputeLiveNote.dispute_number == number)
        .order_by(col(DisputeLiveNote.position))
    ).all()
    state = DisputeState.model_validate(
        {**row.state, "notes": list(notes), "history": [], "allowed_actions": {}}
    )
    return state.model_copy(
        update={
            "allowed_actions": {role.value: allowed_actions(state.stage, role) for role in Role},
            "history": _history(session, number) if history else (),
        }
    )


def shows(
    session: Session, number: str, step: int, stage: DisputeStage, live_version: int | None
) -> bool:
    """Whether the read model shows what an action's answer reflected: the workflow's record
    `step` is in the audit trail, the live state is at `live_version` or later, and the dispute
    is in the answer's `stage` unless a later record is in. (A stage entered just before the
    answer may not have its step yet: its record waited for another to finish.) One statement
    of three indexed look-ups: it runs after every action."""
    last, version, recorded = session.exec(
        select(
            select(func.max(DisputeEvent.step))
            .where(DisputeEvent.dispute_number == number)
            .scalar_subquery(),
            select(DisputeLive.version)
            .where(DisputeLive.dispute_number == number)
            .scalar_subquery(),
            select(Dispute.stage).where(Dispute.number == number).scalar_subquery(),
        )
    ).one()
    if last is None or last < step or version is None:
        return False
    if live_version is not None and version < live_version:
        return False
    return bool(last > step or recorded == stage)


def _history(session: Session, number: str) -> tuple[HistoryEntry, ...]:
    events = session.exec(
        select(DisputeEvent)
        .where(DisputeEvent.dispute_number == number)
        .order_by(col(DisputeEvent.seq))
    ).all()
    return tuple(
        HistoryEntry(
            seq=e.seq,
            at=e.at,
            actor=e.actor_id,
            role=e.actor_role,
            action=e.action,
            summary=str(e.content.get("summary") or ""),
        )
        for e in events
    )
