"""A dispute's facts as the rules of engagement see them, read from the channel data: who
registered the contested customer first and whether that registration was still protected,
whom its account is named to, who holds its territory exclusively, whether its lead went where
the routing rules send it.

The contested objects a dispute names (a registration's, lead's or account's external id, a
territory's code) are where it starts; the parties' other registrations of the same customer
(accord.channel.matching) count too, so a respondent's earlier registration is found though
the claimant named only its own. A fact nothing establishes is left unknown (None), and the
evidence lines say what each fact was read from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from accord.channel.detection import percent
from accord.channel.matching import Customer, compare
from accord.channel.routing import customer_of, route, territories, territory_of
from accord.playbooks.library import Engagement, LeadRoute
from models.enums import ObjectKind, RegistrationStatus
from models.payloads.engagement import EngagementFacts, EngagementRequest, Side
from models.tables import Account, DealRegistration, Lead, Opportunity, Partner

MAX_REGISTRATIONS = 5_000
"""The parties' registrations compared with the contested customer, newest first: a partner
with more than this many is compared on its latest."""


class Parties:
    def __init__(self, request: EngagementRequest) -> None:
        self.claimant = request.claimant_id
        self.respondents = frozenset(request.respondent_ids)

    @property
    def ids(self) -> list[str]:
        return [self.claimant, *sorted(self.respondents)]

    def side(self, partner_id: str | None) -> Side:
        if partner_id == self.claimant:
            return "claimant"
        if partner_id in self.respondents:
            return "respondent"
        return "nobody"


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _refs(request: EngagementRequest, kind: ObjectKind) -> list[str]:
    return list(dict.fromkeys(o.ref for o in request.contested_objects if o.kind is kind))


def _same(customers: Iterable[Customer], row: DealRegistration) -> bool:
    candidate = customer_of(row).keyed()
    return any(compare(c.keyed(), candidate).same for c in customers)


def _protected_until(row: DealRegistration, engagement: Engagement) -> date:
    if row.expires_at is not None:
        return row.expires_at.date()
    return (row.registered_at + timedelta(days=engagement.protection_days)).date()


def establish(
    session: Session, request: EngagementRequest, engagement: Engagement
) -> EngagementFacts:
    parties = Parties(request)
    evidence: list[str] = []
    contested = list(
        session.exec(
            select(DealRegistration).where(
                col(DealRegistration.external_id).in_(_refs(request, ObjectKind.DEAL_REGISTRATION))
            )
        )
    )
    leads = list(
        session.exec(select(Lead).where(col(Lead.external_id).in_(_refs(request, ObjectKind.LEAD))))
    )
    account_codes = _refs(request, ObjectKind.ACCOUNT) + [
        r.account_code for r in contested if r.account_code
    ]
    accounts = list(
        session.exec(
            select(Account).where(col(Account.code).in_(list(dict.fromkeys(account_codes))))
        )
    )
    customers = [
        *(customer_of(r) for r in contested),
        *(customer_of(lead) for lead in leads),
        *(customer_of(a) for a in accounts),
    ]
    for ref in _refs(request, ObjectKind.DEAL_REGISTRATION):
        if ref not in {r.external_id for r in contested}:
            evidence.append(f"registration {ref} is not in the channel data")

    registrations = {r.external_id: r for r in contested}
    if customers:
        for row in session.exec(
            select(DealRegistration)
            .where(col(DealRegistration.partner_id).in_(parties.ids))
            .order_by(col(DealRegistration.registered_at).desc())
            .limit(MAX_REGISTRATIONS)
        ):
            if row.external_id not in registrations and (
                (row.account_code is not None and row.account_code in account_codes)
                or _same(customers, row)
            ):
                registrations[row.external_id] = row
    valid = sorted(
        (r for r in registrations.values() if r.status is not RegistrationStatus.REJECTED),
        key=lambda r: (r.registered_at, r.external_id),
    )
    for row in sorted(registrations.values(), key=lambda r: (r.registered_at, r.external_id)):
        evidence.append(
            f"registration {row.external_id} of {row.customer_name} by {row.partner_id} "
            f"({parties.side(row.partner_id)}) on {_day(row.registered_at)}, {row.status.value}"
            + (f", expires {_day(row.expires_at)}" if row.expires_at else "")
        )

    first_registrant: Side | None = None
    within_protection: bool | None = None
    if valid:
        first = valid[0]
        first_registrant = parties.side(first.partner_id)
        until = _protected_until(first, engagement)
        within_protection = first.registered_at.date() <= request.occurred_on <= until
        evidence.append(
            f"first valid registration: {first.external_id}, protected "
            f"{_day(first.registered_at)} to {until.isoformat()}; the conflict occurred "
            f"{request.occurred_on.isoformat()}"
        )

    named_account: Side | None = None
    for account in accounts:
        side = parties.side(account.partner_id)
        evidence.append(
            f"account {account.code} ({account.name}) is named to "
            f"{account.partner_id or 'no partner'} ({side})"
        )
        if named_account in (None, "nobody"):
            named_account = side

    customer_choice: Side | None = None
    chosen = sorted(
        (r for r in valid if r.customer_chose_at is not None),
        key=lambda r: (r.customer_chose_at, r.external_id),
    )
    if chosen:
        latest = chosen[-1]
        customer_choice = parties.side(latest.partner_id)
        evidence.append(
            f"the customer confirmed {latest.partner_id} ({customer_choice}) in writing on "
            f"{_day(latest.customer_chose_at)} ({latest.external_id})"  # type: ignore[arg-type]
        )

    exclusive_territory = _territory_fact(
        session, parties, request, [*registrations.values()], accounts, evidence
    )
    lead_routed = _routing_fact(session, parties, engagement.lead_routing, leads, evidence)
    price_in_band = _pricing_fact(
        session, parties, engagement, list(registrations.values()), account_codes, evidence
    )
    if not customers:
        evidence.append("no contested registration, lead or account is in the channel data")
    return EngagementFacts(
        first_registrant=first_registrant,
        within_protection=within_protection,
        named_account=named_account,
        exclusive_territory=exclusive_territory,
        customer_choice=customer_choice,
        price_in_band=price_in_band,
        lead_routed_by_rules=lead_routed,
        evidence=tuple(evidence),
    )


def _territory_fact(
    session: Session,
    parties: Parties,
    request: EngagementRequest,
    registrations: list[DealRegistration],
    accounts: list[Account],
    evidence: list[str],
) -> Side | None:
    by_code, by_country = territories(session)
    territory = territory_of(
        [
            *_refs(request, ObjectKind.TERRITORY),
            *(a.territory_code for a in accounts),
            *(r.territory_code for r in registrations),
        ],
        [*(a.country for a in accounts), *(r.country for r in registrations)],
        by_code,
        by_country,
    )
    if territory is None:
        return None
    if not territory.exclusive or territory.partner_id is None:
        evidence.append(f"territory {territory.code} ({territory.name}) is not exclusive")
        return "nobody"
    side = parties.side(territory.partner_id)
    evidence.append(
        f"territory {territory.code} ({territory.name}) is exclusive to "
        f"{territory.partner_id} ({side})"
    )
    return side


def _routing_fact(
    session: Session,
    parties: Parties,
    routes: Iterable[LeadRoute],
    leads: list[Lead],
    evidence: list[str],
) -> bool | None:
    if not leads:
        return None
    routed_by_rules = True
    for lead in leads:
        moment = lead.routed_at or lead.modified_at
        expected, why = route(session, lead, routes, moment)
        went = lead.partner_id or "the vendor"
        evidence.append(
            f"lead {lead.external_id} went to {went} ({parties.side(lead.partner_id)}); the "
            f"routing rules send it to {expected or 'the vendor'}: {why}"
        )
        routed_by_rules = routed_by_rules and lead.partner_id == expected
    return routed_by_rules


def _pricing_fact(
    session: Session,
    parties: Parties,
    engagement: Engagement,
    registrations: list[DealRegistration],
    account_codes: list[str],
    evidence: list[str],
) -> bool | None:
    """Whether every discount the respondents gave on the contested customer (their
    registrations of it, and their opportunities on those registrations or its accounts) keeps
    within their tier's band; None when none of them says a discount."""
    respondents = parties.respondents
    ids = [r.external_id for r in registrations]
    priced: list[tuple[str, str, Decimal]] = [
        (f"registration {r.external_id}", r.partner_id, r.discount)
        for r in registrations
        if r.partner_id in respondents and r.discount is not None
    ]
    if ids or account_codes:
        linked = col(Opportunity.registration_id).in_(ids) | col(Opportunity.account_code).in_(
            account_codes
        )
        priced += [
            (f"opportunity {o.external_id}", o.partner_id, o.discount)
            for o in session.exec(
                select(Opportunity)
                .where(col(Opportunity.partner_id).in_(list(respondents)))
                .where(linked)
            )
            if o.discount is not None
        ]
    if not priced:
        return None
    tiers = {
        p.id: p.tier
        for p in session.exec(select(Partner).where(col(Partner.id).in_(list(respondents))))
    }
    in_band = True
    for what, partner_id, discount in priced:
        tier = tiers.get(partner_id)
        if tier is None:
            continue
        band = engagement.band(tier)
        inside = discount <= band
        in_band = in_band and inside
        evidence.append(
            f"{what} by {partner_id} ({tier.value}): {percent(discount)}% off list, "
            f"{'within' if inside else 'beyond'} the {tier.value} band of {percent(band)}%"
        )
    return in_band
