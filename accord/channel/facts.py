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
from typing import Any

from sqlmodel import Session, col, select

from accord.channel.exceptions import InForce, approved
from accord.channel.matching import Customer, compare
from accord.channel.routing import customer_of, route, territories, territory_of
from accord.channel.routing import named_account as account_of_lead
from accord.platform.wording import percent
from accord.playbooks.library import Engagement, LeadRoute
from accord.rules.consistency import clause_key, clause_ref
from models.enums import ObjectKind, PartnerTier, RegistrationStatus
from models.payloads.engagement import EngagementFacts, EngagementRequest, Side
from models.tables import Account, DealRegistration, Lead, Opportunity, Partner, Territory

MAX_REGISTRATIONS = 5_000
"""Each party's registrations compared with the contested customer, newest first: a partner
with more than this many is compared on its latest (the other party's are read apart, so one
partner's many never hide the other's)."""
CHUNK = 500
"""Values bound per statement when many disputes' objects are read at once."""


class ChannelReader:
    """What the facts are read from, each thing once: a backtest over hundreds of precedents
    asks for the same partners' registrations, the territories and the tiers again and again.
    `prefetch` reads many disputes' contested objects in a few statements."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._registrations: dict[str, DealRegistration | None] = {}
        self._leads: dict[str, Lead | None] = {}
        self._accounts: dict[str, Account | None] = {}
        self._of_partner: dict[str, list[DealRegistration]] = {}
        self._opportunities: dict[str, list[Opportunity]] = {}
        self._territories: tuple[dict[str, Territory], dict[str, Territory]] | None = None
        self._tiers: dict[str, PartnerTier] | None = None
        self._exceptions: list[InForce] | None = None

    def _load(self, model: Any, key: str, wanted: list[str], into: dict[str, Any]) -> None:
        """Read the rows of `model` whose `key` is among `wanted` and not read yet."""
        missing = [w for w in dict.fromkeys(wanted) if w not in into]
        for start in range(0, len(missing), CHUNK):
            part = missing[start : start + CHUNK]
            rows = self.session.exec(select(model).where(col(getattr(model, key)).in_(part)))
            found = {getattr(r, key): r for r in rows}
            for value in part:
                into[value] = found.get(value)

    def prefetch(self, requests: Iterable[EngagementRequest]) -> None:
        requests = list(requests)
        self._load(
            DealRegistration,
            "external_id",
            [r for q in requests for r in _refs(q, ObjectKind.DEAL_REGISTRATION)],
            self._registrations,
        )
        self._load(
            Lead,
            "external_id",
            [r for q in requests for r in _refs(q, ObjectKind.LEAD)],
            self._leads,
        )
        codes = [r for q in requests for r in _refs(q, ObjectKind.ACCOUNT)]
        codes += [
            r.account_code for r in self._registrations.values() if r is not None and r.account_code
        ]
        self._load(Account, "code", codes, self._accounts)
        for partner_id in dict.fromkeys(
            p for q in requests for p in (q.claimant_id, *q.respondent_ids)
        ):
            self.registrations_of(partner_id)

    def registrations(self, ids: list[str]) -> list[DealRegistration]:
        self._load(DealRegistration, "external_id", ids, self._registrations)
        return [r for i in dict.fromkeys(ids) if (r := self._registrations[i]) is not None]

    def leads(self, ids: list[str]) -> list[Lead]:
        self._load(Lead, "external_id", ids, self._leads)
        return [r for i in dict.fromkeys(ids) if (r := self._leads[i]) is not None]

    def accounts(self, codes: list[str]) -> list[Account]:
        self._load(Account, "code", codes, self._accounts)
        return [r for c in dict.fromkeys(codes) if (r := self._accounts[c]) is not None]

    def registrations_of(self, partner_id: str) -> list[DealRegistration]:
        """The partner's latest MAX_REGISTRATIONS registrations, newest first."""
        if partner_id not in self._of_partner:
            self._of_partner[partner_id] = list(
                self.session.exec(
                    select(DealRegistration)
                    .where(DealRegistration.partner_id == partner_id)
                    .order_by(col(DealRegistration.registered_at).desc())
                    .limit(MAX_REGISTRATIONS)
                )
            )
        return self._of_partner[partner_id]

    def opportunities_of(self, partner_id: str) -> list[Opportunity]:
        if partner_id not in self._opportunities:
            self._opportunities[partner_id] = list(
                self.session.exec(select(Opportunity).where(Opportunity.partner_id == partner_id))
            )
        return self._opportunities[partner_id]

    def territories(self) -> tuple[dict[str, Territory], dict[str, Territory]]:
        if self._territories is None:
            self._territories = territories(self.session)
        return self._territories

    def exceptions(self) -> list[InForce]:
        """Every exception the board approved, expired ones too: a conflict is judged by the
        exceptions in force on its day. Few rows, read once for every dispute."""
        if self._exceptions is None:
            self._exceptions = sorted(approved(self.session, expired=True), key=lambda e: e.id)
        return self._exceptions

    def tier(self, partner_id: str) -> PartnerTier | None:
        if self._tiers is None:
            self._tiers = {p.id: p.tier for p in self.session.exec(select(Partner))}
        return self._tiers.get(partner_id)


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
    session: Session | ChannelReader, request: EngagementRequest, engagement: Engagement
) -> EngagementFacts:
    """The dispute's facts; `session` may be a ChannelReader shared by many disputes."""
    reader = session if isinstance(session, ChannelReader) else ChannelReader(session)
    parties = Parties(request)
    evidence: list[str] = []
    contested = reader.registrations(_refs(request, ObjectKind.DEAL_REGISTRATION))
    leads = reader.leads(_refs(request, ObjectKind.LEAD))
    account_codes = _refs(request, ObjectKind.ACCOUNT) + [
        r.account_code for r in contested if r.account_code
    ]
    accounts = reader.accounts(account_codes)
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
        for partner_id in parties.ids:
            for row in reader.registrations_of(partner_id):
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

    territory = _territory(reader, request, [*registrations.values()], accounts)
    exclusive_territory = _territory_fact(parties, territory, evidence)
    exception = _exception_fact(
        reader,
        parties,
        request,
        engagement,
        accounts=[
            *account_codes,
            *(r.account_code for r in registrations.values()),
            # A lead carries no account: the one the routing rules read it as (only when an
            # exception could cover it, so a backtest without exceptions asks nothing more).
            *(
                named.code
                for lead in (leads if reader.exceptions() else [])
                if (named := account_of_lead(reader.session, lead)) is not None
            ),
        ],
        territories=[
            *_refs(request, ObjectKind.TERRITORY),
            *(lead.territory_code for lead in leads),
            *(a.territory_code for a in accounts),
            *(r.territory_code for r in registrations.values()),
            territory.code if territory else None,
        ],
        evidence=evidence,
    )
    lead_routed = _routing_fact(reader.session, parties, engagement.lead_routing, leads, evidence)
    price_in_band = _pricing_fact(
        reader, parties, engagement, list(registrations.values()), account_codes, evidence
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
        exception=exception,
        evidence=tuple(evidence),
    )


def _territory(
    reader: ChannelReader,
    request: EngagementRequest,
    registrations: list[DealRegistration],
    accounts: list[Account],
) -> Territory | None:
    """The territory the contested customer falls in: a code named, else its country's."""
    by_code, by_country = reader.territories()
    return territory_of(
        [
            *_refs(request, ObjectKind.TERRITORY),
            *(a.territory_code for a in accounts),
            *(r.territory_code for r in registrations),
        ],
        [*(a.country for a in accounts), *(r.country for r in registrations)],
        by_code,
        by_country,
    )


def _territory_fact(
    parties: Parties, territory: Territory | None, evidence: list[str]
) -> Side | None:
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


def _exception_fact(
    reader: ChannelReader,
    parties: Parties,
    request: EngagementRequest,
    engagement: Engagement,
    *,
    accounts: list[str | None],
    territories: list[str | None],
    evidence: list[str],
) -> Side | None:
    """The side of a party holding an exception in force on the conflict's day, to a clause
    the category's tables consult, for an account or territory the dispute is about. Another
    partner's exception is no party's defence, nor one against a partner it was not granted
    against, and one to a clause the category never reads excepts nothing here."""
    consulted = {
        clause_key(t.clause) for t in engagement.tables if request.category in t.categories
    }
    codes = {a for a in accounts if a}
    places = {t for t in territories if t}
    found: Side | None = None
    for granted in reader.exceptions():
        side = parties.side(granted.partner_id)
        # A defence against the partners it was granted against only: the other side.
        others = set(parties.ids) - {granted.partner_id}
        if (
            side == "nobody"
            or not (others & granted.affected)
            or clause_key(granted.clause) not in consulted
            or not granted.in_force_on(request.occurred_on)
            or not (
                any(granted.covers(a, None) for a in codes)
                or any(granted.covers(None, t) for t in places)
            )
        ):
            continue
        evidence.append(
            f"exception {granted.number} to {clause_ref(granted.clause)} for "
            f"{granted.partner_id} ({side}) at {granted.scope_kind} {granted.scope_ref}, "
            f"approved {_day(granted.from_at)}, until {granted.until.isoformat()}"
        )
        # Both sides excepted would be the board's own contradiction: the first granted speaks.
        found = found or side
    return found


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
    reader: ChannelReader,
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
        priced += [
            (f"opportunity {o.external_id}", o.partner_id, o.discount)
            for partner_id in sorted(respondents)
            for o in reader.opportunities_of(partner_id)
            if o.discount is not None
            and (o.registration_id in ids or o.account_code in account_codes)
        ]
    if not priced:
        return None
    in_band = True
    for what, partner_id, discount in priced:
        tier = reader.tier(partner_id)
        if tier is None:
            continue
        band = engagement.band(tier)
        inside = discount <= band
        in_band = in_band and inside
        evidence.append(
            f"{what} by {partner_id} ({tier.value}): {percent(discount)} off list, "
            f"{'within' if inside else 'beyond'} the {tier.value} band of {percent(band)}"
        )
    return in_band
