"""Remedy adapters: the ledger on SQLite and PostgreSQL, and a signed webhook against a real
HTTP receiver that fails, times out and answers twice, applying each remedy exactly once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError

from accord.platform.db import SessionFactory, make_engine
from accord.remedies.adapters import LedgerAdapter, WebhookAdapter
from activities.remedies import RemedyActivities
from models.enums import RemedyKind, RemedyState
from models.payloads import (
    CommissionSplit,
    CoSellingResources,
    LeadReroute,
    MdfCredit,
    RebateAdjustment,
    RemedyOrder,
    TerritoryReassignment,
    WrittenWarning,
)
from models.tables import RemedyApplication, Territory
from tests.activities.test_activities import add_dispute
from tests.conftest import seed
from tests.webhook_receiver import Receiver

SECRET = b"test-webhook-secret"
NUMBER = "DSP-2026-000050"

REMEDIES = [
    TerritoryReassignment(
        territory_code="US-NY-METRO",
        from_partner_id="northwind",
        to_partner_id="contoso",
        effective_on=date(2027, 1, 1),
    ),
    CommissionSplit(deal_ref="DR-1", shares={"northwind": Decimal(60), "contoso": Decimal(40)}),
    RebateAdjustment(partner_id="contoso", amount=Decimal("-1500.00"), currency="USD"),
    CoSellingResources(partner_id="northwind", resource="Solutions engineer", hours=40),
    LeadReroute(lead_ref="LEAD-77", to_partner_id="northwind"),
    MdfCredit(partner_id="northwind", amount=Decimal("2500.00"), currency="USD"),
    WrittenWarning(partner_id="contoso", text="Registered deals belong to the registrant."),
]


def order(position: int, remedy: object) -> RemedyOrder:
    return RemedyOrder.model_validate(
        {
            "key": f"{NUMBER}:settlement:{position}",
            "number": NUMBER,
            "position": position,
            "remedy": remedy,
        }
    )


@pytest.fixture
def sessions(database_url: str) -> SessionFactory:
    factory = SessionFactory(make_engine(database_url))
    seed(factory)
    add_dispute(factory, NUMBER)
    return factory


async def test_ledger_records_every_kind_once_and_verifies(sessions: SessionFactory) -> None:
    activities = RemedyActivities(sessions, LedgerAdapter(sessions))
    for position, remedy in enumerate(REMEDIES):
        first = await activities.apply_remedy(order(position, remedy))
        again = await activities.apply_remedy(order(position, remedy))
        assert first.state == again.state == "verified"
        assert first.external_ref == again.external_ref and first.adapter == "ledger"
    with sessions.read() as session:
        rows = session.exec(select(RemedyApplication)).all()
        assert len(rows) == 7 and all(r.state is RemedyState.VERIFIED for r in rows)
        territory = session.get(Territory, "US-NY-METRO")
        assert territory is not None and territory.partner_id == "contoso"
    from models.tables import LedgerMdfCredit

    with sessions.read() as session:
        credits = session.exec(select(LedgerMdfCredit)).all()
        assert len(credits) == 1 and credits[0].amount == Decimal("2500.00")


def webhook_activities(
    sessions: SessionFactory, receiver: Receiver, timeout: float = 2.0, secret: bytes = SECRET
) -> RemedyActivities:
    hook = WebhookAdapter(receiver.url, secret, timeout)
    return RemedyActivities(sessions, LedgerAdapter(sessions), {RemedyKind.COMMISSION_SPLIT: hook})


async def test_webhook_applies_once_with_a_valid_signature(sessions: SessionFactory) -> None:
    with Receiver(SECRET) as receiver:
        activities = webhook_activities(sessions, receiver)
        result = await activities.apply_remedy(order(1, REMEDIES[1]))
        assert result.state == "verified" and result.adapter == "webhook"
        assert result.external_ref == "CRM-1"
        key = f"{NUMBER}:settlement:1"
        assert receiver.applications[key] == 1
        assert receiver.applied[key]["remedy"]["shares"] == {"northwind": "60", "contoso": "40"}
        # A retried activity (a worker restart) finds it verified and sends nothing.
        await activities.apply_remedy(order(1, REMEDIES[1]))
        assert receiver.requests[key] == 1


async def test_webhook_failures_are_retried_until_applied_once(sessions: SessionFactory) -> None:
    with Receiver(SECRET) as receiver:
        receiver.fail_next = 2
        activities = webhook_activities(sessions, receiver)
        for _ in range(2):
            with pytest.raises(ApplicationError, match="answered 503") as failure:
                await activities.apply_remedy(order(1, REMEDIES[1]))
            assert not failure.value.non_retryable
        with sessions.read() as session:
            row = session.get(RemedyApplication, f"{NUMBER}:settlement:1")
            assert row is not None and row.state is RemedyState.FAILED and row.attempts == 2
        result = await activities.apply_remedy(order(1, REMEDIES[1]))
        assert result.state == "verified"
        assert receiver.applications[f"{NUMBER}:settlement:1"] == 1


async def test_a_timed_out_webhook_that_applied_anyway_is_not_applied_twice(
    sessions: SessionFactory,
) -> None:
    with Receiver(SECRET) as receiver:
        receiver.slow_next = 1.5
        activities = webhook_activities(sessions, receiver, timeout=0.5)
        with pytest.raises(ApplicationError, match=r"did not answer in 0\.5 s"):
            await activities.apply_remedy(order(1, REMEDIES[1]))
        # The receiver did apply it; the retry is answered "already applied" (409).
        result = await activities.apply_remedy(order(1, REMEDIES[1]))
        key = f"{NUMBER}:settlement:1"
        assert result.state == "verified"
        assert receiver.requests[key] == 2 and receiver.applications[key] == 1


async def test_a_refused_webhook_is_not_retried(sessions: SessionFactory) -> None:
    with Receiver(SECRET) as receiver:
        receiver.refuse_with = 422
        activities = webhook_activities(sessions, receiver)
        with pytest.raises(ApplicationError, match="answered 422") as refused:
            await activities.apply_remedy(order(1, REMEDIES[1]))
        assert refused.value.non_retryable and refused.value.type == "RemedyRefused"


async def test_a_wrong_signature_is_refused_by_the_receiver(sessions: SessionFactory) -> None:
    with Receiver(SECRET) as receiver:
        activities = webhook_activities(sessions, receiver, secret=b"not-the-shared-secret")
        with pytest.raises(ApplicationError, match="answered 401") as refused:
            await activities.apply_remedy(order(1, REMEDIES[1]))
        assert refused.value.non_retryable
        assert receiver.applications == {}
