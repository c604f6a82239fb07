"""Probe: the rules of engagement's facts read from hostile or odd channel data (both databases)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from accord.channel import routing
from accord.channel.facts import MAX_REGISTRATIONS, establish
from accord.platform.db import SessionFactory
from accord.platform.settings import REPO_ROOT
from accord.playbooks.engagement import recommend
from accord.playbooks.library import PlaybookLibrary
from models.enums import (
    ChannelKind,
    DisputeCategory,
    ImportFormat,
    ObjectKind,
    RegistrationStatus,
)
from models.payloads import ContestedObject
from models.payloads.engagement import EngagementRequest
from models.tables import Account, ChannelImport, DealRegistration, Lead
from tests.channel.test_detection import registrations
from tests.channel.test_imports import _import

TABLES = PlaybookLibrary.from_dir(REPO_ROOT / "playbooks").get("2026.2")
ENGAGEMENT = TABLES.engagement
assert ENGAGEMENT is not None


def _request(*objects, claimant="contoso", respondent="northwind", category=None, occurred_on=None):  # type: ignore[no-untyped-def]
    return EngagementRequest(
        number="DSP-2026-000001",
        purpose="triage",
        playbook_version="2026.2",
        category=category or DisputeCategory.DEAL_REGISTRATION,
        claimant_id=claimant,
        respondent_ids=(respondent,),
        contested_objects=tuple(ContestedObject(kind=k, ref=r) for k, r in objects),
        occurred_on=occurred_on or date(2026, 11, 20),
    )


def _import_id(sessions: SessionFactory) -> int:
    with sessions.read() as session:
        row = session.exec(select(ChannelImport)).first()
        assert row is not None and row.id is not None
        return row.id


def test_a_claimant_with_many_registrations_does_not_hide_the_respondent_s_earlier_one(
    sessions: SessionFactory,
) -> None:
    """MAX_REGISTRATIONS is documented as per partner ("a partner with more than this many is
    compared on its latest"), but the limit is taken over all the parties' registrations
    together, newest first: a claimant with 5,000 newer registrations of other customers pushes
    the respondent's single, earlier registration of the contested customer out, and the facts
    say the claimant registered first."""
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(
            # The respondent's registration of the customer, the earliest of all.
            "DR-R,northwind,ACME Corp.,acme.com,US,,approved,2026-01-02,,2026-01-02T10:00:00Z",
            # The claimant's, named in the dispute.
            "DR-C,contoso,Acme Corporation,acme.com,US,,approved,2026-01-03,,2026-01-03T10:00:00Z",
        ),
    )
    import_id = _import_id(sessions)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    with sessions.begin() as session:
        for n in range(MAX_REGISTRATIONS + 1):
            at = start + timedelta(minutes=n)
            session.add(
                DealRegistration(
                    external_id=f"BULK-{n}",
                    partner_id="contoso",
                    customer_name=f"Zyxcorp {n} Widgets",
                    customer_key=f"zyxcorp {n} widgets",
                    customer_domain=f"zyx{n}.example",
                    country="US",
                    status=RegistrationStatus.APPROVED,
                    registered_at=at,
                    modified_at=at,
                    import_id=import_id,
                )
            )
    began = time.monotonic()
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-C"), occurred_on=date(2026, 1, 20)),
            ENGAGEMENT,
        )
    took = time.monotonic() - began
    print(f"establish over {MAX_REGISTRATIONS + 3} registrations: {took:.2f}s")
    assert any("DR-R" in line for line in facts.evidence), facts.evidence
    assert facts.first_registrant == "respondent"


def test_a_registration_made_after_the_lead_was_routed_does_not_make_the_routing_wrong(
    sessions: SessionFactory,
) -> None:
    """The routing rules are applied 'at' the lead's routing moment (route(..., now=routed_at)),
    but a registration made after that moment counts as live then: only its expiry is compared
    with the moment, never its registered_at. A lead routed to contoso as the exclusive holder
    of DACH on 10 Nov is found 'against the rules' because northwind registered the customer on
    20 Nov, and the rules recommend re-routing it to northwind."""
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(
            "DR-N,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-20,,2026-11-20T10:00:00Z"
        ),
    )
    import_id = _import_id(sessions)
    routed = datetime(2026, 11, 10, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(
            Lead(
                external_id="L-1",
                partner_id="contoso",
                customer_name="Bayer Werke GmbH",
                customer_key="bayer werke",
                customer_domain="bayer.de",
                country="DE",
                status="routed",
                routed_at=routed,
                modified_at=routed,
                import_id=import_id,
            )
        )
    with sessions.read() as session:
        facts = establish(
            session,
            _request(
                (ObjectKind.LEAD, "L-1"),
                claimant="northwind",
                respondent="contoso",
                category=DisputeCategory.LEAD_ROUTING,
                occurred_on=date(2026, 11, 10),
            ),
            ENGAGEMENT,
        )
    found = recommend(TABLES, DisputeCategory.LEAD_ROUTING, facts, purpose="t")
    assert facts.lead_routed_by_rules is True, (facts.evidence, found.outcome)


def test_a_registration_that_expires_before_it_was_registered_is_refused_by_row_and_field(
    sessions: SessionFactory,
) -> None:
    """The import refuses a discount of 101% by row and field, but takes a registration whose
    expires_at is a month before its registered_at. The rules of engagement then read a
    protection window that ends before it starts ('protected 2026-11-02 to 2026-10-02'): the
    claimant who registered first, the day before the conflict, is 'outside its protection
    window' and the tables recommend only partly upholding (RoE 3.1's lapsed rule) instead of
    upholding."""
    from accord.channel.imports import ImportRefused

    try:
        _import(
            sessions,
            ChannelKind.REGISTRATION,
            ImportFormat.CSV,
            registrations(
                "DR-1,contoso,ACME Corp.,acme.com,US,,approved,2026-11-02,2026-10-02,"
                "2026-11-02T10:00:00Z"
            ),
        )
    except ImportRefused as refused:
        (found,) = refused.problems
        assert found.field == "expires_at"
        return
    with sessions.read() as session:
        facts = establish(
            session,
            _request((ObjectKind.DEAL_REGISTRATION, "DR-1"), occurred_on=date(2026, 11, 3)),
            ENGAGEMENT,
        )
    found = recommend(TABLES, DisputeCategory.DEAL_REGISTRATION, facts, purpose="t")
    raise AssertionError(
        f"imported; facts {facts.first_registrant}/{facts.within_protection}, recommends "
        f"{found.outcome}: {facts.evidence}"
    )


def test_a_lead_is_compared_only_with_the_named_accounts_that_may_be_its_customer(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """route() loads every account named to a partner and fuzzy-compares each with the lead,
    once per contested lead: about 2 s a lead with 50,000 named accounts (measured 9-11 s for
    5 leads). A lead-routing dispute may name up to 50 leads; past ~15 the recommendation
    activity cannot finish inside ACTIVITY_TIMEOUT (30 s), it is retried without end
    (ACTIVITY_RETRY has no maximum), and since triage awaits it before looking for a mediator,
    the dispute never gets one. Now the database is asked for the candidates (the lead's domain,
    or a name holding one of its distinctive words): none of these accounts is compared, and
    no lead ever with more than MAX_CANDIDATES. (How long it takes is bench material; the
    probe measured 47.5 s on SQLite for 20 leads before, 0.3 s after.)"""
    leads = 20
    compared = 0
    real_compare = routing.compare

    def counting(*args: Any) -> Any:
        nonlocal compared
        compared += 1
        return real_compare(*args)

    monkeypatch.setattr(routing, "compare", counting)
    _import(
        sessions,
        ChannelKind.REGISTRATION,
        ImportFormat.CSV,
        registrations(
            "DR-N,northwind,Bayer Werke GmbH,bayer.de,DE,,approved,2026-11-01,,2026-11-01T10:00:00Z"
        ),
    )
    import_id = _import_id(sessions)
    routed = datetime(2026, 11, 10, tzinfo=UTC)
    with sessions.begin() as session:
        for n in range(50_000):
            session.add(
                Account(
                    code=f"A-{n}",
                    name=f"Qwerty {n} Holdings",
                    partner_id="contoso" if n % 2 else "northwind",
                    domain=f"q{n}.example",
                    country="US",
                )
            )
        for n in range(leads):
            session.add(
                Lead(
                    external_id=f"L-{n}",
                    partner_id="contoso",
                    customer_name="Bayer Werke GmbH",
                    customer_key="bayer werke",
                    customer_domain="bayer.de",
                    country="DE",
                    status="routed",
                    routed_at=routed,
                    modified_at=routed,
                    import_id=import_id,
                )
            )
    began = time.monotonic()
    with sessions.read() as session:
        establish(
            session,
            _request(
                *[(ObjectKind.LEAD, f"L-{n}") for n in range(leads)],
                claimant="northwind",
                respondent="contoso",
                category=DisputeCategory.LEAD_ROUTING,
            ),
            ENGAGEMENT,
        )
    print(f"establish, {leads} leads, 50,000 named accounts: {time.monotonic() - began:.1f}s")
    assert compared == 0
