"""What an email's reader must decide on, read from the dispute's record when it is enqueued.

The workflow names an event and carries ids; the remedies a ruling awards, the grounds of the
appeal a fresh panel hears, and why a panel cannot be drawn are in the audit trail by the time
its email is enqueued. Reading them here keeps the workflow (and its recorded histories) as it
is, and serves the disputes already running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from accord.disputes import texts
from models.payloads import NotificationRequest
from models.tables import DisputeEvent, Partner, PartnerContact

TEMPLATE_BY_EVENT: Mapping[tuple[str, str], str] = {
    ("admin_task", "panel_incomplete"): "panel_incomplete",
    ("admin_task", "remedy_overdue"): "remedy_overdue",
}
"""(template the workflow names, audit action of its step) -> the email that fits it: the
admins' task about a panel shortage is not the mediator's ('accord assign')."""


def step_of(request: NotificationRequest) -> int | None:
    """The audit step a dispute's notification is keyed on ('DSP-...:<step>:<template>')."""
    parts = request.key.split(":")
    if len(parts) == 3 and parts[0] == request.number and parts[1].isdigit():
        return int(parts[1])
    return None


def _event(session: Session, number: str, **where: Any) -> DisputeEvent | None:
    query = select(DisputeEvent).where(DisputeEvent.dispute_number == number)
    if "step" in where:
        query = query.where(DisputeEvent.step == where["step"])
    if "action" in where:
        query = query.where(DisputeEvent.action == where["action"])
    return session.exec(query.order_by(col(DisputeEvent.seq).desc())).first()


def _appellant(session: Session, event: DisputeEvent) -> str:
    contact = session.exec(
        select(PartnerContact).where(PartnerContact.email == event.actor_id)
    ).first()
    if contact is None:
        return event.actor_id
    partner = session.get(Partner, contact.partner_id)
    return partner.name if partner else contact.partner_id


def _decided_remedies(session: Session, number: str) -> list[Mapping[str, Any]]:
    """The remedies being applied: the settlement's, or the last ruling's (a settlement and a
    ruling never both end one dispute; an appeal's ruling comes after the first)."""
    decided = session.exec(
        select(DisputeEvent)
        .where(
            DisputeEvent.dispute_number == number,
            col(DisputeEvent.action).in_(("settled", "ruling_issued")),
        )
        .order_by(col(DisputeEvent.seq).desc())
    ).first()
    if decided is None:
        return []
    return [r for r in decided.content.get("remedies") or [] if isinstance(r, Mapping)]


def _awarded(
    remedies: list[Mapping[str, Any]], progress: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The remedy a progress entry ({position, kind, state}) reports on, if it is that one."""
    position = progress.get("position")
    if isinstance(position, int) and 0 <= position < len(remedies):
        remedy = remedies[position]
        if remedy.get("kind") == progress.get("kind"):
            return remedy
    return None


def enrich(session: Session, request: NotificationRequest) -> tuple[str, dict[str, object]]:
    """The template to render for `request`, and what to add to its context."""
    template = request.template
    if not request.number:
        return template, {}
    extra: dict[str, object] = {}
    step = step_of(request)
    if step is not None:
        at_step = _event(session, request.number, step=step)
        if at_step is not None:
            template = TEMPLATE_BY_EVENT.get((template, at_step.action), template)
            if template == "panel_incomplete":
                extra["round"] = int(at_step.content.get("round") or 1)
            if template == "remedy_overdue":
                # Each outstanding remedy with what it awards, in words (its kind alone does
                # not say which of two splits it is).
                awarded = _decided_remedies(session, request.number)
                extra["outstanding"] = [
                    {**r, "awarded": _awarded(awarded, r)}
                    for r in at_step.content.get("remedies") or []
                    if isinstance(r, Mapping) and r.get("state") not in ("verified", "waived")
                ]
    if template == "settlement":
        # What the parties agreed, in words, not only that they did.
        extra["remedies"] = _decided_remedies(session, request.number)
    if template in ("remedy_applied", "remedy_failed"):
        # Which remedy: 'MDF credit of USD 5,000.00 to Northwind', not only its kind.
        position = request.context.get("position")
        remedies = _decided_remedies(session, request.number)
        if isinstance(position, int) and 0 <= position < len(remedies):
            extra["remedy"] = remedies[position]
    if template == "closure":
        # A remedy the parties were told of and the admins waived: said, with the reason.
        waived = session.exec(
            select(DisputeEvent.content)
            .where(
                DisputeEvent.dispute_number == request.number,
                DisputeEvent.action == "remedy_waived",
            )
            .order_by(col(DisputeEvent.seq))
        ).all()
        if waived:
            remedies = _decided_remedies(session, request.number)
            extra["waived"] = [
                {
                    "position": int(c.get("position") or 0),
                    "remedy": remedies[int(c.get("position") or 0)]
                    if 0 <= int(c.get("position") or 0) < len(remedies)
                    else {},
                    "reason": str(c.get("reason") or ""),
                }
                for c in waived
            ]
    if template in ("ruling", "final_ruling"):
        ruled = _event(session, request.number, action="ruling_issued")
        extra["remedies"] = list(ruled.content.get("remedies") or []) if ruled else []
    if template == "panel_assignment" and int(str(request.context.get("round") or 1)) > 1:
        appealed = _event(session, request.number, action="appeal_filed")
        if appealed is not None:
            content = appealed.content
            grounds = content.get("grounds")
            ref = content.get("grounds_ref")
            if not grounds and isinstance(ref, Mapping):
                grounds = texts.bodies(session, [str(ref.get("id"))]).get(str(ref.get("id")))
            extra["appeal"] = {
                "by": _appellant(session, appealed),
                "at": appealed.at.isoformat(),
                "grounds": grounds or "",
                "new_evidence": [
                    str(e.get("description") or e.get("ref") or "")
                    for e in content.get("new_evidence") or []
                    if isinstance(e, Mapping)
                ],
            }
    return template, extra
