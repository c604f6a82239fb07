"""What the partners a conflict alert names are told: that an overlap involving their own
registration (or their territory) was found and the channel team will look at it, and that it
was closed without a dispute. Each partner is told of its own objects only: never which partner
is on the other side, nor what that partner registered (a converted alert's dispute tells the
parties of each other, as every filing does).

One email per partner and event, whatever how often it is asked (the outbox's key); mail that
belongs to no dispute carries no number (as the intake's answers)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.enums import AlertState
from models.payloads import NotificationRequest
from models.tables import ConflictAlert, Partner, PartnerContact
from notifications.outbox import Outbox

EVENTS = {"raised": "alert_raised", "dismissed": "alert_dismissed"}


def _own(alert: ConflictAlert, partner_id: str) -> list[dict[str, str]]:
    """The partner's own objects in the alert, as it may read them."""
    own = []
    for snapshot in alert.evidence.get("objects", []):
        if snapshot.get("partner") == partner_id:
            own.append(
                {
                    "object": str(snapshot.get("object", "")),
                    "customer": str(snapshot.get("customer") or ""),
                }
            )
    territory = alert.evidence.get("territory")
    if isinstance(territory, dict) and territory.get("exclusive_to") == partner_id:
        own.append({"object": f"territory:{territory.get('code')}", "customer": ""})
    return own


def requests(
    session: Session, alerts: Iterable[ConflictAlert], event: str
) -> list[NotificationRequest]:
    """The notices of `event` (raised, dismissed) for each partner the alerts name."""
    alerts = list(alerts)
    named = {p for a in alerts for p in a.partner_ids}
    partners = {
        p.id: p
        for p in session.exec(select(Partner).where(col(Partner.id).in_(sorted(named))))
        if p.active and not p.is_direct_sales
    }
    contacts: dict[str, list[str]] = {}
    for contact in session.exec(
        select(PartnerContact).where(col(PartnerContact.partner_id).in_(sorted(partners)))
    ):
        if contact.active:
            contacts.setdefault(contact.partner_id, []).append(contact.email)
    found = []
    for alert in alerts:
        for partner_id in alert.partner_ids:
            own = _own(alert, partner_id)
            if partner_id not in partners or not contacts.get(partner_id) or not own:
                continue
            context: dict[str, Any] = {
                "number": "",
                "alert_id": alert.id,
                "kind": alert.kind.value,
                "partner": partners[partner_id].name,
                "own": own,
            }
            found.append(
                NotificationRequest(
                    key=f"alert-{alert.id}:{event}:{partner_id}",
                    number="",
                    template=EVENTS[event],
                    recipients=tuple(sorted(contacts[partner_id])),
                    context=context,
                )
            )
    return found


def tell_raised(outbox: Outbox, sessions: Any, import_id: int, now: datetime) -> int:
    """Tell the partners of the alerts `import_id` raised (new, still open); how many emails."""
    with sessions.read() as session:
        raised = [
            a
            for a in session.exec(
                select(ConflictAlert)
                .where(ConflictAlert.import_id == import_id)
                .where(ConflictAlert.state == AlertState.OPEN)
                .order_by(col(ConflictAlert.id))
            )
            if a.detected_at == a.updated_at
        ]
        asked = requests(session, raised, "raised")
    return sum(len(outbox.enqueue(r, now)) for r in asked)


def tell_dismissed(outbox: Outbox, sessions: Any, alert_id: int, now: datetime) -> int:
    with sessions.read() as session:
        alert = session.get(ConflictAlert, alert_id)
        asked = requests(session, [alert] if alert else [], "dismissed")
    return sum(len(outbox.enqueue(r, now)) for r in asked)
