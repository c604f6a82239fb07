"""Where the channel's rules send things: the territory a row falls in (by its code, else its
country), and where the playbook's routing rules send a lead. Shared by overlap detection and by
the rules of engagement's facts, so both read the same routing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from accord.channel.matching import Customer, compare
from accord.playbooks.library import LeadRoute
from models.enums import RegistrationStatus
from models.tables import Account, DealRegistration, Lead, Territory


def customer_of(row: DealRegistration | Lead | Account) -> Customer:
    if isinstance(row, Account):
        return Customer(row.name, row.domain, row.address, row.country)
    if isinstance(row, Lead):
        return Customer(row.customer_name, row.customer_domain, None, row.country, row.customer_key)
    return Customer(
        row.customer_name, row.customer_domain, row.customer_address, row.country, row.customer_key
    )


def territories(session: Session) -> tuple[dict[str, Territory], dict[str, Territory]]:
    """Every territory by its code, and by each country it covers."""
    by_code = {t.code: t for t in session.exec(select(Territory))}
    by_country: dict[str, Territory] = {}
    for territory in by_code.values():
        for country in territory.countries:
            # An exclusive territory wins a country two territories claim.
            if country not in by_country or territory.exclusive:
                by_country[country] = territory
    return by_code, by_country


def territory_of(
    codes: Iterable[str | None],
    countries: Iterable[str | None],
    by_code: dict[str, Territory],
    by_country: dict[str, Territory],
) -> Territory | None:
    for code in codes:
        if code and code in by_code:
            return by_code[code]
    for country in countries:
        if country and country in by_country:
            return by_country[country]
    return None


MAX_CANDIDATES = 500
"""Named accounts fuzzy-compared with one lead, at most."""


def _named_candidates(session: Session, lead: Lead, customer: Customer) -> list[Account]:
    """The named accounts that may be the lead's customer: its domain, or a name holding one of
    its distinctive words (asked of the database, not read whole: a CRM names tens of
    thousands of accounts)."""
    named = col(Account.partner_id).is_not(None)
    words = customer.distinctive[:3]
    match = [func.lower(Account.name).contains(w, autoescape=True) for w in words]
    if lead.customer_domain:
        match.append(col(Account.domain) == lead.customer_domain)
    if not match:
        return []
    return list(
        session.exec(
            select(Account)
            .where(named)
            .where(or_(*match))
            .order_by(col(Account.code))
            .limit(MAX_CANDIDATES)
        )
    )


def named_account(session: Session, lead: Lead) -> Account | None:
    """The named account that is the lead's customer (its domain, else its name), if any."""
    customer = customer_of(lead).keyed()
    for account in _named_candidates(session, lead, customer):
        if (lead.customer_domain and account.domain == lead.customer_domain) or compare(
            customer, customer_of(account).keyed()
        ).same:
            return account
    return None


def route(
    session: Session, lead: Lead, routes: Iterable[LeadRoute], now: datetime
) -> tuple[str | None, str]:
    """Where the routing rules send a lead: the partner (None: the vendor keeps it) and why."""
    for way in routes:
        if way == "named_account":
            account = named_account(session, lead)
            if account is not None:
                return account.partner_id, f"its account {account.code} is named to it"
        elif way == "registered_partner":
            live = session.exec(
                select(DealRegistration)
                .where(
                    col(DealRegistration.status).in_(
                        (RegistrationStatus.SUBMITTED, RegistrationStatus.APPROVED)
                    )
                )
                .where(col(DealRegistration.customer_key) == lead.customer_key)
                # Routed then: a registration made after the lead went cannot have sent it.
                .where(col(DealRegistration.registered_at) <= now)
                .order_by(col(DealRegistration.registered_at))
            )
            for row in live:
                if row.expires_at is None or row.expires_at > now:
                    return row.partner_id, f"it registered the customer ({row.external_id})"
        else:
            by_code, by_country = territories(session)
            territory = territory_of([lead.territory_code], [lead.country], by_code, by_country)
            if territory is not None and territory.exclusive and territory.partner_id:
                return territory.partner_id, f"it holds territory {territory.code} exclusively"
    return None, "no rule sends it to a partner: the vendor keeps it"
