"""Overlap detection: conflicts found in the channel data before anyone files (issue 20,
item 2). Run after every import, on what it changed.

- Same customer: two partners' live registrations or open opportunities for one end customer
  (accord.channel.matching, on candidates from blocking keys; the same account code is a match
  outright).
- Exclusive territory: a live registration inside a territory exclusive to another partner (its
  territory code, or the territory its country is in).
- Direct on a registered account: the vendor's direct sales pursuing a customer a partner has
  a live registration for.

An exception the board approved (accord.channel.exceptions), in force at detection, keeps back
what it allows: its partner's registrations in the excepted territory or account, and its
partner's pursuit of an excepted named account against the partner it is named to. Nothing is
stored for a finding kept back, so the first detection after the exception ends raises it.

Each finding is an alert per kind and pair of objects (conflict_alert's unique key): found again
by a later import, an open alert is brought up to date (score, reasons, evidence) and a
dismissed or converted one is left as it was decided, so dismissing is not undone by the next
import of the same data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from accord.channel.exceptions import InForce, approved, protections
from accord.channel.matching import Customer, blocking_keys, compare
from accord.channel.names import customer_key
from accord.channel.routing import named_account, route, territories
from accord.platform.db import hold_turn
from accord.platform.wording import percent
from accord.playbooks.library import Engagement
from models.enums import AlertKind, AlertState, ChannelKind, PartnerTier, RegistrationStatus
from models.tables import (
    Account,
    ConflictAlert,
    DealRegistration,
    Lead,
    Opportunity,
    Partner,
    Territory,
)

MAX_BLOCK = 100
"""A blocking key shared by more rows than this (a word in every other name) brings no
candidates: comparing each new row with all of them would be all pairs again."""
LIVE = (RegistrationStatus.SUBMITTED, RegistrationStatus.APPROVED)
CLOSED_STAGE = ("closed", "won", "lost")


@dataclass(frozen=True)
class Pursuit:
    """A live registration or open opportunity, as detection compares them."""

    ref: str
    """'registration:DR-1', 'opportunity:006...': what a dispute names as a contested object."""
    partner_id: str
    direct: bool
    customer: Customer
    account_code: str | None
    territory_code: str | None
    snapshot: dict[str, Any]
    registration: bool
    discount: Decimal | None = None


@dataclass(frozen=True)
class Finding:
    kind: AlertKind
    pair_key: str
    partner_ids: list[str]
    score: float
    reasons: list[str]
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Detected:
    raised: int
    """New alerts."""
    refreshed: int
    """Open alerts found again and brought up to date."""
    decided: int
    """Found again, but dismissed or converted before: left as decided."""


class Excepted:
    """The approved exceptions in force at detection, by the protection each lifts (its
    clause's decision table says which): read once per detection, a handful of rows, and asked
    per finding."""

    def __init__(
        self, session: Session, engagement: Engagement | None, now: datetime | None
    ) -> None:
        self.territory: dict[str, list[InForce]] = defaultdict(list)
        self.named: dict[str, list[InForce]] = defaultdict(list)
        self.named_to: dict[str, str | None] = {}
        if engagement is None or now is None:
            return  # no tables, no clause to tell what an exception lifts; or no moment
        granted = [e for e in approved(session) if e.in_force_at(now)]
        for excepted in granted:
            lifted = protections(engagement, excepted.clause)
            if "exclusive_territory" in lifted:
                self.territory[excepted.partner_id].append(excepted)
            # A named account is carved out account by account: only an account scope lifts it.
            if "named_account" in lifted and excepted.scope_kind == "account":
                self.named[excepted.partner_id].append(excepted)
        codes = sorted({e.scope_ref for found in self.named.values() for e in found})
        if codes:
            rows = session.exec(select(Account).where(col(Account.code).in_(codes)))
            self.named_to = {a.code: a.partner_id for a in rows}

    def exclusive(
        self, partner_id: str, account_code: str | None, territory_code: str, holder_id: str
    ) -> InForce | None:
        """The partner's exception to selling in the territory, or at this account of it,
        granted against `holder_id`, who holds it now (a later holder was never asked)."""
        found = self.territory.get(partner_id, ())
        return next(
            (
                e
                for e in found
                if e.covers(account_code, territory_code) and holder_id in e.affected
            ),
            None,
        )

    def named_account(
        self, partner_id: str, holder_id: str, account_codes: Iterable[str | None]
    ) -> InForce | None:
        """The partner's exception to one of these accounts, named to `holder_id` and granted
        against them (a partner the account is named to later was never asked)."""
        codes = set(account_codes)
        for excepted in self.named.get(partner_id, ()):
            if (
                excepted.scope_ref in codes
                and self.named_to.get(excepted.scope_ref) == holder_id
                and holder_id in excepted.affected
            ):
                return excepted
        return None


def _registration(row: DealRegistration, direct: bool) -> Pursuit:
    return Pursuit(
        ref=f"registration:{row.external_id}",
        partner_id=row.partner_id,
        direct=direct,
        customer=Customer(
            row.customer_name,
            row.customer_domain,
            row.customer_address,
            row.country,
            row.customer_key,
        ),
        account_code=row.account_code,
        territory_code=row.territory_code,
        snapshot={
            "object": f"registration:{row.external_id}",
            "partner": row.partner_id,
            "customer": row.customer_name,
            "domain": row.customer_domain,
            "country": row.country,
            "territory": row.territory_code,
            "account": row.account_code,
            "status": row.status.value,
            "amount": None if row.amount is None else str(row.amount),
            "currency": row.currency,
            "registered_at": row.registered_at.isoformat(),
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "discount": None if row.discount is None else str(row.discount),
            "modified_at": row.modified_at.isoformat(),
        },
        registration=True,
        discount=row.discount,
    )


def _opportunity(row: Opportunity, direct: bool) -> Pursuit:
    return Pursuit(
        ref=f"opportunity:{row.external_id}",
        partner_id=row.partner_id,
        direct=direct,
        customer=Customer(row.customer_name, row.customer_domain, None, None, row.customer_key),
        account_code=row.account_code,
        territory_code=row.territory_code,
        snapshot={
            "object": f"opportunity:{row.external_id}",
            "partner": row.partner_id,
            "name": row.name,
            "customer": row.customer_name,
            "domain": row.customer_domain,
            "account": row.account_code,
            "stage": row.stage,
            "amount": None if row.amount is None else str(row.amount),
            "currency": row.currency,
            "expected_close": row.expected_close.isoformat() if row.expected_close else None,
            "discount": None if row.discount is None else str(row.discount),
            "modified_at": row.modified_at.isoformat(),
        },
        registration=False,
        discount=row.discount,
    )


def pursuits(session: Session, now: datetime) -> list[Pursuit]:
    direct = {p.id for p in session.exec(select(Partner).where(col(Partner.is_direct_sales)))}
    found = [
        _registration(r, r.partner_id in direct)
        for r in session.exec(
            select(DealRegistration).where(col(DealRegistration.status).in_(LIVE))
        )
        if r.expires_at is None or r.expires_at > now
    ]
    found += [
        _opportunity(o, o.partner_id in direct)
        for o in session.exec(select(Opportunity))
        if not o.stage.strip().lower().startswith(CLOSED_STAGE)
    ]
    return found


def _pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def _same_customer(p: Pursuit, q: Pursuit, excepted: Excepted) -> Finding | None:
    if p.partner_id == q.partner_id:
        return None
    if p.direct and q.direct:
        return None
    if excepted.named:  # few exceptions, many pairs: asked only when one could apply
        accounts = (p.account_code, q.account_code)
        if excepted.named_account(p.partner_id, q.partner_id, accounts) or excepted.named_account(
            q.partner_id, p.partner_id, accounts
        ):
            return None
    if p.account_code is not None and p.account_code == q.account_code:
        score, reasons = 1.0, [f"the same account ({p.account_code})"]
    else:
        match = compare(p.customer, q.customer)
        if not match.same:
            return None
        score, reasons = match.score, list(match.reasons)
    first, second = sorted((p, q), key=lambda x: x.ref)
    if p.direct or q.direct:
        partner_side = q if p.direct else p
        if not partner_side.registration:
            return None  # direct sales and a partner's opportunity, no registration: no rule
        kind = AlertKind.DIRECT_ON_REGISTERED_ACCOUNT
        reasons = [f"direct sales pursues what {partner_side.partner_id} registered", *reasons]
    else:
        kind = AlertKind.SAME_CUSTOMER
    return Finding(
        kind,
        _pair_key(p.ref, q.ref),
        sorted({p.partner_id, q.partner_id}),
        round(score, 3),
        reasons,
        {"objects": [first.snapshot, second.snapshot]},
    )


def _exclusive(
    p: Pursuit,
    by_code: dict[str, Territory],
    by_country: dict[str, Territory],
    excepted: Excepted,
) -> Finding | None:
    if not p.registration or p.direct:
        return None
    territory = by_code.get(p.territory_code) if p.territory_code else None
    how = "named in the registration"
    if territory is None and p.customer.country:
        territory = by_country.get(p.customer.country)
        how = f"its country {p.customer.country} is in it"
    if territory is None or not territory.exclusive or territory.partner_id in (None, p.partner_id):
        return None
    if excepted.exclusive(p.partner_id, p.account_code, territory.code, territory.partner_id):
        return None
    return Finding(
        AlertKind.EXCLUSIVE_TERRITORY,
        _pair_key(p.ref, f"territory:{territory.code}"),
        sorted({p.partner_id, territory.partner_id}),
        1.0,
        [
            f"{p.ref} by {p.partner_id} is in territory {territory.code} ({how}), exclusive to"
            f" {territory.partner_id}"
        ],
        {
            "objects": [p.snapshot],
            "territory": {
                "code": territory.code,
                "name": territory.name,
                "exclusive_to": territory.partner_id,
                "countries": list(territory.countries),
            },
        },
    )


def _outside_band(
    p: Pursuit, engagement: Engagement | None, tiers: dict[str, PartnerTier]
) -> Finding | None:
    """A partner's discount beyond its tier's pricing band (the playbook's engagement)."""
    if engagement is None or p.discount is None or p.direct or p.partner_id not in tiers:
        return None
    tier = tiers[p.partner_id]
    band = engagement.band(tier)
    if p.discount <= band:
        return None
    return Finding(
        AlertKind.PRICE_OUTSIDE_BAND,
        f"{p.ref}|band:{tier.value}",
        [p.partner_id],
        1.0,
        [
            f"{p.ref} by {p.partner_id} ({tier.value}) gives {percent(p.discount)} off list, "
            f"beyond the {tier.value} band of {percent(band)}"
        ],
        {
            "objects": [p.snapshot],
            "band": {"tier": tier.value, "max_discount": format(band.normalize(), "f")},
        },
    )


def find(
    all_pursuits: list[Pursuit],
    changed: set[str] | None,
    session: Session,
    engagement: Engagement | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """What the `changed` pursuits (every one when None) overlap with, and which of them price
    beyond their partner's band; what an exception in force at `now` allows is left out (no
    `now`: no exception is consulted)."""
    tiers = {p.id: p.tier for p in session.exec(select(Partner))} if engagement else {}
    blocks: dict[str, list[int]] = defaultdict(list)
    keys: list[set[str]] = []
    for index, p in enumerate(all_pursuits):
        mine = blocking_keys(p.customer)
        if p.account_code:
            mine.add(f"a:{p.account_code}")
        keys.append(mine)
        for key in mine:
            blocks[key].append(index)
    by_code, by_country = territories(session)
    excepted = Excepted(session, engagement, now)
    findings: dict[tuple[AlertKind, str], Finding] = {}
    compared: set[tuple[int, int]] = set()
    for index, p in enumerate(all_pursuits):
        if changed is not None and p.ref not in changed:
            continue
        for own in (
            _exclusive(p, by_code, by_country, excepted),
            _outside_band(p, engagement, tiers),
        ):
            if own is not None:
                findings[(own.kind, own.pair_key)] = own
        candidates: set[int] = set()
        for key in keys[index]:
            members = blocks[key]
            if len(members) <= MAX_BLOCK or key.startswith(("a:", "d:")):
                candidates.update(members)
        for other in candidates:
            pair = (min(index, other), max(index, other))
            if other == index or pair in compared:
                continue
            compared.add(pair)
            found = _same_customer(p, all_pursuits[other], excepted)
            if found is not None:
                findings[(found.kind, found.pair_key)] = found
    return list(findings.values())


def record(
    session: Session, findings: Iterable[Finding], *, import_id: int | None, now: datetime
) -> Detected:
    findings = list(findings)
    stored: dict[tuple[AlertKind, str], ConflictAlert] = {}
    for kind in AlertKind:
        keys = [f.pair_key for f in findings if f.kind is kind]
        for start in range(0, len(keys), 5_000):
            for alert in session.exec(
                select(ConflictAlert).where(
                    ConflictAlert.kind == kind,
                    col(ConflictAlert.pair_key).in_(keys[start : start + 5_000]),
                )
            ):
                stored[(alert.kind, alert.pair_key)] = alert
    raised = refreshed = decided = 0
    for finding in findings:
        found = stored.get((finding.kind, finding.pair_key))
        if found is None:
            session.add(
                ConflictAlert(
                    kind=finding.kind,
                    pair_key=finding.pair_key,
                    partner_ids=finding.partner_ids,
                    score=finding.score,
                    reasons=finding.reasons,
                    evidence=finding.evidence | {"as_of": now.isoformat()},
                    state=AlertState.OPEN,
                    detected_at=now,
                    updated_at=now,
                    import_id=import_id,
                )
            )
            raised += 1
        elif found.state is AlertState.OPEN:
            found.score, found.reasons = finding.score, finding.reasons
            found.evidence = finding.evidence | {"as_of": now.isoformat()}
            found.partner_ids, found.updated_at, found.import_id = (
                finding.partner_ids,
                now,
                import_id,
            )
            refreshed += 1
        else:
            decided += 1
    return Detected(raised, refreshed, decided)


def detect(
    session: Session,
    *,
    changed: set[str] | None,
    import_id: int | None,
    now: datetime,
    engagement: Engagement | None = None,
) -> Detected:
    """Find and record the overlaps of what changed (everything when `changed` is None), in
    the caller's transaction, one detection at a time."""
    hold_turn(session, "channel detection")
    return record(
        session,
        find(pursuits(session, now), changed, session, engagement, now),
        import_id=import_id,
        now=now,
    )


def _lead_snapshot(lead: Lead) -> dict[str, Any]:
    return {
        "object": f"lead:{lead.external_id}",
        "partner": lead.partner_id,
        "customer": lead.customer_name,
        "domain": lead.customer_domain,
        "country": lead.country,
        "territory": lead.territory_code,
        "status": lead.status,
        "routed_at": lead.routed_at.isoformat() if lead.routed_at else None,
        "modified_at": lead.modified_at.isoformat(),
    }


def leads_routed_by(session: Session, kind: ChannelKind, changed: list[str]) -> list[str]:
    """The routed leads whose route the `changed` rows of `kind` may decide: of the customers
    registered (by the normalised name the routing rules compare), of the named accounts (by
    domain or name), in the territories (by code or country)."""
    routed = select(Lead.external_id).where(col(Lead.partner_id).is_not(None))
    found: list[str] = []
    for start in range(0, len(changed), 5_000):
        batch = changed[start : start + 5_000]
        if kind is ChannelKind.REGISTRATION:
            keys = select(DealRegistration.customer_key).where(
                col(DealRegistration.external_id).in_(batch)
            )
            found += session.exec(routed.where(col(Lead.customer_key).in_(keys))).all()
        elif kind is ChannelKind.ACCOUNT:
            named = list(
                session.exec(
                    select(Account).where(
                        col(Account.code).in_(batch), col(Account.partner_id).is_not(None)
                    )
                )
            )
            domains = sorted({a.domain for a in named if a.domain})
            names = sorted({customer_key(a.name) for a in named})
            found += session.exec(
                routed.where(
                    or_(col(Lead.customer_domain).in_(domains), col(Lead.customer_key).in_(names))
                )
            ).all()
        elif kind is ChannelKind.TERRITORY:
            held = list(session.exec(select(Territory).where(col(Territory.code).in_(batch))))
            countries = sorted({c for t in held for c in t.countries})
            found += session.exec(
                routed.where(
                    or_(col(Lead.territory_code).in_(batch), col(Lead.country).in_(countries))
                )
            ).all()
    return list(dict.fromkeys(found))


def detect_leads(
    session: Session,
    external_ids: Iterable[str],
    engagement: Engagement,
    *,
    import_id: int | None,
    now: datetime,
) -> Detected:
    """The imported leads routed where the playbook's routing rules do not send them."""
    hold_turn(session, "channel detection")
    excepted = Excepted(session, engagement, now)
    findings: list[Finding] = []
    wanted = list(dict.fromkeys(external_ids))
    for start in range(0, len(wanted), 5_000):
        for lead in session.exec(
            select(Lead).where(col(Lead.external_id).in_(wanted[start : start + 5_000]))
        ):
            if lead.partner_id is None:
                continue  # the vendor's own, not routed yet: nothing went anywhere
            expected, why = route(session, lead, engagement.lead_routing, lead.routed_at or now)
            if expected == lead.partner_id:
                continue
            if expected and excepted.named.get(lead.partner_id):
                account = named_account(session, lead)
                if account is not None and excepted.named_account(
                    lead.partner_id, expected, [account.code]
                ):
                    continue
            findings.append(
                Finding(
                    AlertKind.LEAD_AGAINST_ROUTING,
                    f"lead:{lead.external_id}|route:{expected or 'vendor'}",
                    sorted({lead.partner_id, *([expected] if expected else [])}),
                    1.0,
                    [
                        f"lead {lead.external_id} went to {lead.partner_id}; the routing rules "
                        f"send it to {expected or 'the vendor'}: {why}"
                    ],
                    {"objects": [_lead_snapshot(lead)], "route": {"to": expected, "why": why}},
                )
            )
    return record(session, findings, import_id=import_id, now=now)
