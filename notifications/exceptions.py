"""Who is told of each step of an exception to the rules of engagement, and what they read.

The partner who asked and the partners affected (their active contacts), the panel and its
chair, or the admins: each audience is told what it may know. Partners read the clause, the
scope, the date and the decision with its reason (as a ruling's parties do); the votes and the
objections' texts stay with the board. Mail of an exception carries no dispute number (as the
alert notices)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from accord.rules.consistency import clause_ref
from models.enums import Role
from models.payloads import ExceptionNotice, ExceptionStep, NotificationRequest
from models.tables import ChannelException, Partner, PartnerContact, Person

TEMPLATE = "exception_notice"

HEADLINES = {
    "requested": "requested; the partners it affects may object",
    "panel": "you sit on its panel",
    "ballot_open": "the ballot is open for the chair's decision",
    "overdue": "the board's decision is overdue",
    "panel_incomplete": "no panel can be seated: complete the board and redraw",
    "approved": "approved",
    "denied": "denied",
    "withdrawn": "withdrawn",
    "lapsed": "lapsed undecided",
    "expired": "expired",
}


def _partner_contacts(session: Session, partner_ids: list[str]) -> dict[str, list[str]]:
    active = {
        p.id
        for p in session.exec(select(Partner).where(col(Partner.id).in_(sorted(partner_ids))))
        if p.active
    }
    found: dict[str, list[str]] = {}
    for contact in session.exec(
        select(PartnerContact).where(col(PartnerContact.partner_id).in_(sorted(active)))
    ):
        if contact.active:
            found.setdefault(contact.partner_id, []).append(contact.email)
    return found


def _recipients(session: Session, row: ChannelException, audience: str) -> list[str]:
    if audience == "beneficiary":
        return _partner_contacts(session, [row.partner_id]).get(row.partner_id, [])
    if audience == "affected":
        contacts = _partner_contacts(session, list(row.affected_partner_ids))
        return [
            email for partner in row.affected_partner_ids for email in contacts.get(partner, [])
        ]
    if audience == "panel":
        return [str(m.get("email")) for m in row.panel.get("members", []) if m.get("email")]
    if audience == "chair":
        chair = row.panel.get("chair") or {}
        return [str(chair["email"])] if chair.get("email") else []
    if audience == "admins":
        return [
            p.email
            for p in session.exec(
                select(Person).where(Person.role == Role.ADMIN, Person.active == True)  # noqa: E712
            )
        ]
    raise ValueError(f"unknown audience {audience!r}")


def requests(
    session: Session, row: ChannelException, step: ExceptionStep, notice: ExceptionNotice
) -> list[NotificationRequest]:
    """One request per audience of the notice, each under the step's key (sent once)."""
    partner = session.get(Partner, row.partner_id)
    context: dict[str, Any] = {
        "number": "",
        "exception": f"EXC-{row.id}",
        "event": notice.event,
        "headline": HEADLINES[notice.event],
        "partner": partner.name if partner else row.partner_id,
        "clause": clause_ref(row.clause),
        "rule": row.clause.strip()[len(clause_ref(row.clause)) :].strip(),
        "scope": f"{row.scope_kind} {row.scope_ref}",
        "until": row.until.isoformat(),
        "objections_close_at": (
            row.objections_close_at.strftime("%Y-%m-%d %H:%M UTC")
            if row.objections_close_at
            else ""
        ),
        "decision_due_at": (
            row.decision_due_at.strftime("%Y-%m-%d %H:%M UTC") if row.decision_due_at else ""
        ),
        "decision_reason": row.decision_reason or "",
    }
    found = []
    for audience in notice.audiences:
        recipients = sorted(set(_recipients(session, row, audience)))
        if not recipients:
            continue
        found.append(
            NotificationRequest(
                key=f"exception-{row.id}:{step.step}:{audience}",
                number="",
                template=TEMPLATE,
                recipients=tuple(recipients),
                context={**context, "audience": audience},
            )
        )
    return found
