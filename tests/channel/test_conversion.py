"""A conflict alert made a dispute (issue 20, item 2), through the API on a running stack: the
filing pre-filled from the alert, its snapshot the dispute's first evidence, the alert converted
once whoever asks, and a refused filing leaving the alert open."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlmodel import select

from accord.channel import alerts
from accord.channel.imports import import_file
from accord.disputes.conversion import Conversion, submission
from models.enums import AlertKind, AlertState, ChannelKind, ImportFormat, Role
from models.payloads import Actor
from models.tables import ConflictAlert, Evidence, OutboxMessage, Partner
from tests.conftest import Stack
from tests.web.test_web_access import ADMIN
from tests.web_harness import api, make_app, signed_in, token_for

HEADER = "external_id,partner_id,customer_name,customer_domain,country,amount,currency,status,registered_at,modified_at"


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def two_partners_registered_acme(stack: Stack) -> int:
    rows = [
        f"DR-2026-0042,northwind,Acme Corp,acme.com,US,125000,USD,approved,{_day(30)},{_day(30)}T10:00:00Z",
        f"DR-2026-0077,contoso,ACME Corporation,,US,90000,USD,submitted,{_day(20)},{_day(20)}T10:00:00Z",
    ]
    import_file(
        stack.sessions,
        kind=ChannelKind.REGISTRATION,
        fmt=ImportFormat.CSV,
        file_name="registrations.csv",
        data="\n".join((HEADER, *rows)).encode() + b"\n",
        started_by="ada.admin",
    )
    with stack.sessions.read() as session:
        (alert,) = session.exec(select(ConflictAlert)).all()
    assert alert.id is not None
    return alert.id


def _alert(stack: Stack, alert_id: int) -> ConflictAlert:
    with stack.sessions.read() as session:
        alert = session.get(ConflictAlert, alert_id)
    assert alert is not None
    return alert


async def test_an_alert_becomes_a_pre_filled_dispute_with_its_snapshot_as_evidence(
    stack: Stack,
) -> None:
    alert_id = two_partners_registered_acme(stack)
    app = make_app(stack)
    async with api(app, token_for(stack, ADMIN)) as client:
        answer = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        number = body["dispute"]["number"]
        stack.numbers.append(number)
        assert body["alert"]["state"] == "converted" and body["alert"]["dispute_number"] == number
        assert body["alert"]["decided_by"] == "ada.admin"

        # Once: again, or dismissing it now, is refused and says into which dispute.
        again = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "contoso"}
        )
        assert again.status_code == 409 and f"converted already into {number}" in again.text
        dismissed = await client.post(
            f"/api/channel/alerts/{alert_id}/dismiss", json={"reason": "Not a conflict after all"}
        )
        assert dismissed.status_code == 409
        record = (await client.get(f"/api/channel/alerts/{alert_id}")).json()
        assert [(e["actor"], e["action"]) for e in record["history"]] == [
            ("ada.admin", "claimed"),
            ("ada.admin", "converted"),
        ]
        assert record["history"][1]["detail"] == {"dispute": number, "claimant": "northwind"}

    state = await stack.wait_for(number, lambda s: s.recommendation is not None)
    assert state.claimant_id == "northwind" and state.respondent_ids == ("contoso",)
    assert state.category.value == "deal_registration"
    # Northwind registered first: the rules recommend upholding its claim.
    assert state.recommendation is not None and state.recommendation.outcome is not None
    assert state.recommendation.outcome.value == "uphold"
    filed = await stack.wait_for_event(number, "filed")
    assert filed.content["alert_id"] == alert_id
    filing = filed.content["filing"]
    assert filing["filed_by"] == ADMIN and filing["amount_at_stake"] == "125000.00"
    assert {(o["kind"], o["ref"]) for o in filing["contested_objects"]} == {
        ("deal_registration", "DR-2026-0042"),
        ("deal_registration", "DR-2026-0077"),
    }
    assert "conflict alert" in filing["facts"] and "DR-2026-0077 by contoso" in filing["facts"]
    added = await stack.wait_for_event(number, "evidence_added")
    assert added.actor_id == "ada.admin"
    with stack.sessions.read() as session:
        (item,) = session.exec(select(Evidence).where(Evidence.dispute_number == number)).all()
    assert item.filename == f"conflict-alert-{alert_id}.txt" and item.visibility.value == "parties"


async def test_two_managers_converting_at_once_make_one_dispute(stack: Stack) -> None:
    alert_id = two_partners_registered_acme(stack)
    app = make_app(stack)
    async with (
        api(app, token_for(stack, ADMIN)) as first,
        api(app, token_for(stack, "alex.admin@vendor.example")) as second,
    ):
        answers = await asyncio.gather(
            first.post(
                f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
            ),
            second.post(f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "contoso"}),
        )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    (won,) = [a for a in answers if a.status_code == 201]
    stack.numbers.append(won.json()["dispute"]["number"])
    assert _alert(stack, alert_id).dispute_number == won.json()["dispute"]["number"]


async def test_a_refused_conversion_names_the_field_and_leaves_the_alert_open(
    stack: Stack,
) -> None:
    alert_id = two_partners_registered_acme(stack)
    app = make_app(stack)
    async with api(app, token_for(stack, ADMIN)) as client:
        outsider = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "fabrikam"}
        )
        assert outsider.status_code == 422 and "claimant_id" in outsider.text
        assert "not one of the alert's partners" in outsider.text
        with stack.sessions.begin() as session:
            partner = session.get(Partner, "contoso")
            assert partner is not None
            partner.active = False  # the respondent left the programme: the filing is refused
        refused = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
        assert refused.status_code == 422 and "respondent_ids[0]" in refused.text
        hostile = await client.post(
            f"/api/channel/alerts/{alert_id}/convert",
            json={"claimant_id": "north\u0000wind", "amount_at_stake": "-5"},
        )
        assert hostile.status_code == 422
        missing = await client.post("/api/channel/alerts/999999/convert", json={"claimant_id": "x"})
        assert missing.status_code == 404
    alert = _alert(stack, alert_id)
    assert alert.state is AlertState.OPEN and alert.dispute_number is None
    assert alert.decided_by is None
    with stack.sessions.read() as session:
        trail = [e.action for e in alerts.history(session, alert_id)]
    assert trail == ["claimed", "given_back", "claimed", "given_back"]

    partner_token = token_for(stack, "nora@northwind.example")
    async with api(app, partner_token) as client:
        forbidden = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
        assert forbidden.status_code == 403


async def test_the_admin_s_alert_queue_page_dismisses_and_converts(stack: Stack) -> None:
    alert_id = two_partners_registered_acme(stack)
    app = make_app(stack)
    admin = await signed_in(app, ADMIN)
    page = (await admin.get("/admin/alerts")).text
    assert f'id="alert-{alert_id}"' in page and "same customer" in page
    assert "registration:DR-2026-0077" in page and "Make it a dispute" in page
    bad = await admin.post(f"/admin/alerts/{alert_id}/convert", {"claimant_id": "fabrikam"})
    assert bad.status_code == 422 and "not one of the alert" in bad.text
    bad = await admin.post(
        f"/admin/alerts/{alert_id}/convert",
        {"claimant_id": "northwind", "amount_at_stake": "1e400"},
    )
    assert bad.status_code == 422 and "amount_at_stake" in bad.text
    short = await admin.post(f"/admin/alerts/{alert_id}/dismiss", {"reason": "x"})
    assert short.status_code == 422 and "reason" in short.text
    done = await admin.post(f"/admin/alerts/{alert_id}/convert", {"claimant_id": "northwind"})
    assert done.status_code == 303, done.text
    number = done.headers["location"].rsplit("/", 1)[1]
    stack.numbers.append(number)
    assert _alert(stack, alert_id).dispute_number == number
    decided = (await admin.get("/admin/alerts?state=converted")).text
    assert f'href="/disputes/{number}"' in decided
    again = await admin.post(f"/admin/alerts/{alert_id}/dismiss", {"reason": "Not a conflict"})
    assert again.status_code == 409
    partner = await signed_in(app, "nora@northwind.example")
    assert (await partner.get("/admin/alerts")).status_code == 403
    assert (
        await partner.post(f"/admin/alerts/{alert_id}/dismiss", {"reason": "Not a conflict"})
    ).status_code == 403
    await stack.wait_for(number, lambda s: s.recommendation is not None)
    for browser in (admin, partner):
        await browser.close()


async def test_each_partner_an_alert_names_is_told_of_its_own_objects_only(stack: Stack) -> None:
    app = make_app(stack)
    rows = [
        {
            "external_id": "DR-2026-0042",
            "partner_id": "northwind",
            "customer_name": "Acme Corp",
            "customer_domain": "acme.com",
            "status": "approved",
            "registered_at": f"{_day(30)}T10:00:00Z",
            "modified_at": f"{_day(30)}T10:00:00Z",
        },
        {
            "external_id": "DR-2026-0077",
            "partner_id": "contoso",
            "customer_name": "ACME Corporation",
            "status": "submitted",
            "registered_at": f"{_day(20)}T10:00:00Z",
            "modified_at": f"{_day(20)}T10:00:00Z",
        },
    ]
    async with api(app, token_for(stack, ADMIN)) as client:
        done = await client.post("/api/channel/registration/rows", json=rows)
        assert done.status_code == 201 and done.json()["alerts_raised"] == 1, done.text
        # The same rows again raise nothing new, and tell nobody again.
        await client.post("/api/channel/registration/rows", json=rows)
        with stack.sessions.read() as session:
            (alert,) = session.exec(select(ConflictAlert)).all()
            raised = session.exec(
                select(OutboxMessage).where(OutboxMessage.template == "alert_raised")
            ).all()
        assert alert.id is not None
        told = {m.recipient: m for m in raised}
        assert set(told) == {"nora@northwind.example", "carl@contoso.example"}
        northwind, contoso = told["nora@northwind.example"], told["carl@contoso.example"]
        assert "DR-2026-0042" in northwind.text_body and "Acme Corp" in northwind.text_body
        for other_side in ("DR-2026-0077", "ACME Corporation", "contoso", "Contoso"):
            assert other_side not in northwind.text_body and other_side not in northwind.html_body
        for other_side in ("DR-2026-0042", "northwind", "Northwind"):
            assert other_side not in contoso.text_body and other_side not in contoso.html_body
        assert northwind.subject == "A possible channel conflict involving Northwind Traders"
        dismissed = await client.post(
            f"/api/channel/alerts/{alert.id}/dismiss", json={"reason": "Two divisions of Acme"}
        )
        assert dismissed.status_code == 200
    with stack.sessions.read() as session:
        closed = session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "alert_dismissed")
        ).all()
    assert {m.recipient for m in closed} == {"nora@northwind.example", "carl@contoso.example"}
    assert all("Two divisions" not in m.text_body for m in closed)  # the reason stays inside


def test_the_amount_at_stake_is_in_one_currency_the_claimant_s_own() -> None:
    """Two registrations in different currencies: the largest number (a yen amount) is not the
    largest stake. The claimant's own registration's currency is the dispute's, and the amount
    the largest in it."""
    alert = ConflictAlert(
        id=5,
        kind=AlertKind.SAME_CUSTOMER,
        pair_key="registration:DR-1|registration:DR-2",
        partner_ids=["contoso", "northwind"],
        score=0.97,
        reasons=["same customer name"],
        evidence={
            "objects": [
                {
                    "object": "registration:DR-1",
                    "partner": "northwind",
                    "amount": "40000.00",
                    "currency": "USD",
                },
                {
                    "object": "registration:DR-2",
                    "partner": "contoso",
                    "amount": "6000000",
                    "currency": "JPY",
                },
            ]
        },
        state=AlertState.OPEN,
        detected_at=datetime(2026, 12, 1, tzinfo=UTC),
        updated_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    admin = Actor(id="ada.admin", role=Role.ADMIN)
    made = submission(alert, Conversion(claimant_id="northwind"), admin, "ada.admin@vendor.example")
    assert (made.amount_at_stake, made.currency) == (Decimal("40000.00"), "USD")
    theirs = submission(alert, Conversion(claimant_id="contoso"), admin, "ada.admin@vendor.example")
    assert (theirs.amount_at_stake, theirs.currency) == (Decimal("6000000"), "JPY")
