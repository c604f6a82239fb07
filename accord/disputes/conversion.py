"""A conflict alert made into a dispute by a channel manager (issue 20, item 2): the filing
pre-filled from the alert (parties, category, contested objects, the amount registered, the
facts as detected) and the alert's evidence snapshot attached as the dispute's first evidence.

Once per alert, whatever happens: the alert is claimed first (open to converted, in one
conditional write, so a dismissal or a second manager at the same moment is refused), then filed
under the alert's own submission key (a retry after a crash finds the same dispute), then given
the dispute's number. A filing refused for its content gives the alert back, open.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import col

from accord.channel import alerts
from accord.channel.alerts import AlertRefused
from accord.disputes.evidence import store
from accord.disputes.filing import FilingRejected, FilingService
from accord.platform.db import SessionFactory
from models.enums import AlertKind, AlertState, DisputeCategory, EvidenceVisibility, ObjectKind
from models.payloads import Actor, AlertOrigin, FilingResult, FilingSubmission
from models.tables import ConflictAlert, Partner, Person
from models.text import plain_error

CATEGORY = {
    AlertKind.SAME_CUSTOMER: DisputeCategory.DEAL_REGISTRATION,
    AlertKind.EXCLUSIVE_TERRITORY: DisputeCategory.TERRITORY,
    AlertKind.DIRECT_ON_REGISTERED_ACCOUNT: DisputeCategory.CHANNEL_VS_DIRECT,
    AlertKind.LEAD_AGAINST_ROUTING: DisputeCategory.LEAD_ROUTING,
    AlertKind.PRICE_OUTSIDE_BAND: DisputeCategory.PRICING,
}


STALE_CLAIM = timedelta(minutes=10)
"""A conversion claimed this long ago that has no dispute number yet was cut short (a crash):
another manager may finish it."""


@dataclass(frozen=True)
class Conversion:
    claimant_id: str
    """Which of the alert's partners files (the other is the respondent)."""
    amount_at_stake: Decimal | None = None
    """Without one: the largest amount the alert's objects were registered for, in the
    claimant's currency (else 0)."""
    desired_remedy: str = "Decided under the rules of engagement"


def _contested(alert: ConflictAlert) -> list[dict[str, str]]:
    objects: list[dict[str, str]] = []
    for snapshot in alert.evidence.get("objects", []):
        kind, _, ref = str(snapshot.get("object", "")).partition(":")
        if kind == "registration" and ref:
            objects.append({"kind": ObjectKind.DEAL_REGISTRATION.value, "ref": ref})
        elif kind == "lead" and ref:
            objects.append({"kind": ObjectKind.LEAD.value, "ref": ref})
        elif snapshot.get("account"):
            objects.append({"kind": ObjectKind.ACCOUNT.value, "ref": str(snapshot["account"])})
    territory = alert.evidence.get("territory")
    if isinstance(territory, dict) and territory.get("code"):
        objects.append({"kind": ObjectKind.TERRITORY.value, "ref": str(territory["code"])})
    return list({(o["kind"], o["ref"]): o for o in objects}.values())


def _amount(alert: ConflictAlert, claimant_id: str) -> tuple[Decimal, str]:
    """The largest amount registered, in one currency (amounts in two currencies do not
    compare): the claimant's own objects' currency, else the one most objects are in."""
    found: list[tuple[Decimal, str, str]] = []
    for snapshot in alert.evidence.get("objects", []):
        try:
            value = Decimal(str(snapshot.get("amount")))
        except InvalidOperation:
            continue
        if value.is_finite() and value >= 0:
            currency = str(snapshot.get("currency") or "USD")
            found.append((value, currency, str(snapshot.get("partner") or "")))
    if not found:
        return Decimal(0), "USD"
    own = [currency for _, currency, partner in found if partner == claimant_id]
    counts = Counter(currency for _, currency, _ in found)
    currency = own[0] if own else min(counts, key=lambda c: (-counts[c], c))
    return max(value for value, c, _ in found if c == currency), currency


def _facts(alert: ConflictAlert) -> str:
    lines = [
        f"Found in the channel data by Accord on {alert.detected_at:%Y-%m-%d} (conflict alert "
        f"{alert.id}, {alert.kind.value.replace('_', ' ')}, score {alert.score:.2f}).",
        *(f"- {reason}" for reason in alert.reasons),
    ]
    for snapshot in alert.evidence.get("objects", []):
        said = ", ".join(
            f"{name} {value}"
            for name, value in snapshot.items()
            if name not in ("object", "partner") and value not in (None, "")
        )
        lines.append(f"- {snapshot.get('object')} by {snapshot.get('partner')}: {said}")
    return "\n".join(lines)


def submission(
    alert: ConflictAlert, conversion: Conversion, by: Actor, filed_by: str
) -> FilingSubmission:
    """The filing pre-filled from the alert; refused (AlertRefused) for a claimant that is not
    one of its partners, or an alert that names nothing a dispute can contest. An alert of one
    partner (a price beyond its band, a lead the vendor should have kept) is filed by another
    partner, the one it harmed, against it."""
    single = len(alert.partner_ids) == 1
    if single and conversion.claimant_id in alert.partner_ids:
        raise AlertRefused(
            f"claimant_id: {conversion.claimant_id} is the partner the alert is about; the "
            "claimant is the partner it harmed"
        )
    if not single and conversion.claimant_id not in alert.partner_ids:
        raise AlertRefused(
            f"claimant_id: {conversion.claimant_id} is not one of the alert's partners "
            f"({', '.join(alert.partner_ids)})"
        )
    objects = _contested(alert)
    if not objects:
        raise AlertRefused(
            f"alert {alert.id} names no registration, account or territory a dispute can contest"
        )
    amount, currency = _amount(alert, conversion.claimant_id)
    reason = alert.reasons[0] if alert.reasons else alert.kind.value.replace("_", " ")
    try:
        return _filing(alert, conversion, filed_by, objects, amount, currency, reason)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "alert"
        raise AlertRefused(f"{field}: {plain_error(error)}") from None


def _filing(
    alert: ConflictAlert,
    conversion: Conversion,
    filed_by: str,
    objects: list[dict[str, str]],
    amount: Decimal,
    currency: str,
    reason: str,
) -> FilingSubmission:
    return FilingSubmission.model_validate(
        {
            "claimant_id": conversion.claimant_id,
            "respondent_ids": [p for p in alert.partner_ids if p != conversion.claimant_id],
            "category": CATEGORY[alert.kind],
            "contested_objects": objects,
            "summary": f"Overlap found in the channel data: {reason}"[:300],
            "facts": _facts(alert)[:20_000],
            "desired_remedy": conversion.desired_remedy,
            "amount_at_stake": (
                conversion.amount_at_stake if conversion.amount_at_stake is not None else amount
            ),
            "currency": currency,
            "occurred_on": alert.detected_at.date(),
            "filed_by": filed_by,
            "submission_id": f"alert-{alert.id}",
        }
    )


def _claim(
    sessions: SessionFactory, alert_id: int, by: Actor, now: datetime
) -> tuple[ConflictAlert, bool]:
    """Open to converted in one conditional write; an alert converted before whose dispute
    number never landed (a crash) may be converted again, and finds its dispute."""
    with sessions.begin(immediate=True) as session:
        claimed = session.execute(
            update(ConflictAlert)
            .where(col(ConflictAlert.id) == alert_id)
            .where(col(ConflictAlert.state) == AlertState.OPEN)
            .values(state=AlertState.CONVERTED, decided_by=by.id, decided_at=now)
        ).rowcount  # type: ignore[attr-defined]
        alert = session.get(ConflictAlert, alert_id)
        if alert is None:
            raise AlertRefused(f"no alert {alert_id}")
        # Converted, but its dispute's number never landed: the same manager asking again (or
        # anyone, once the claim is stale) finds its dispute by the alert's submission key;
        # another manager meanwhile is told it is being made a dispute.
        since = alert.decided_at
        unfinished = (
            not claimed
            and alert.state is AlertState.CONVERTED
            and alert.dispute_number is None
            and since is not None
        )
        if unfinished and alert.decided_by != by.id and since and since > now - STALE_CLAIM:
            raise AlertRefused(
                f"alert {alert_id} is being made a dispute by {alert.decided_by} right now"
            )
        if not claimed and not unfinished:
            decided = f" by {alert.decided_by}" if alert.decided_by else ""
            into = f" into {alert.dispute_number}" if alert.dispute_number else ""
            raise AlertRefused(f"alert {alert_id} is {alert.state.value} already{into}{decided}")
        alerts.record(session, alert_id, now, by.id, "claimed", again=not claimed)
        session.flush()
        session.expunge(alert)
        return alert, bool(claimed)


def _give_back(sessions: SessionFactory, alert_id: int, by: Actor, now: datetime, why: str) -> None:
    with sessions.begin() as session:
        given = session.execute(
            update(ConflictAlert)
            .where(col(ConflictAlert.id) == alert_id)
            .where(col(ConflictAlert.dispute_number).is_(None))
            .values(state=AlertState.OPEN, decided_by=None, decided_at=None)
        ).rowcount  # type: ignore[attr-defined]
        if given:
            alerts.record(session, alert_id, now, by.id, "given_back", why=why[:2000])


async def convert(
    filing: FilingService,
    sessions: SessionFactory,
    alert_id: int,
    conversion: Conversion,
    *,
    by: Actor,
    now: datetime,
) -> FilingResult:
    """File the alert as a dispute for `conversion.claimant_id`; the alert is converted."""
    alert, fresh = _claim(sessions, alert_id, by, now)
    try:
        with sessions.read() as session:
            person = session.get(Person, by.id)
        filed = submission(alert, conversion, by, person.email if person else by.id)
        with sessions.read() as session:
            claimant = session.get(Partner, filed.claimant_id)
        if claimant is not None and claimant.is_direct_sales:
            raise AlertRefused("claimant_id: direct sales is the respondent of a channel conflict")
        item = store(
            sessions,
            alerts.snapshot(alert),
            description=alerts.SNAPSHOT_DESCRIPTION.format(alert=alert.id),
            visibility=EvidenceVisibility.PARTIES,
            side_partner_id=None,
        )
        result = await filing.file(
            filed,
            now,
            origin=AlertOrigin(alert_id=alert.id or 0, converted_by=by, evidence=item),
        )
    except (AlertRefused, FilingRejected) as refused:
        # Refused for its content, before anything was filed: the alert is open again, unless
        # this request only resumed another's claim (that one goes on, or is finished later).
        if fresh:
            _give_back(sessions, alert_id, by, now, str(refused))
        raise
    # Any other failure (the workflow not started, a crash) may leave the filing stored: the
    # claim stays, and the same request again (or anyone's once it is stale) finds the dispute.
    # Usually recorded as the workflow started; here too for a filing linked to an open
    # dispute, or started before (a repeat).
    alerts.made_dispute(
        sessions, alert_id, result.number, conversion.claimant_id, by=by.id, now=now
    )
    return result
