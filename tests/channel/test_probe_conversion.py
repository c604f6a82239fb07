"""Adversarial probe of converting a conflict alert into a dispute (probe2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from accord.channel import alerts
from accord.channel.alerts import AlertRefused
from accord.channel.imports import import_file
from accord.disputes import conversion
from accord.disputes.filing import FilingService
from models.enums import AlertState, ChannelKind, ImportFormat
from models.tables import ConflictAlert, Dispute, Evidence
from tests.conftest import Stack
from tests.web.test_web_access import ADMIN
from tests.web_harness import api, make_app, token_for

HEADER = "external_id,partner_id,customer_name,customer_domain,country,amount,currency,status,registered_at,modified_at"


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def registered(stack: Stack, first_amount: str = "125000", second_amount: str = "90000") -> int:
    rows = [
        f"DR-2026-0042,northwind,Acme Corp,acme.com,US,{first_amount},USD,approved,{_day(30)},{_day(30)}T10:00:00Z",
        f"DR-2026-0077,contoso,ACME Corporation,,US,{second_amount},USD,submitted,{_day(20)},{_day(20)}T10:00:00Z",
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


def _trail(stack: Stack, alert_id: int) -> list[str]:
    with stack.sessions.read() as session:
        return [e.action for e in alerts.history(session, alert_id)]


async def test_a_refused_second_request_does_not_reopen_a_conversion_still_being_filed(
    stack_on_both: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same admin's first conversion is still filing (held here) when a second request of
    theirs (a double submit with another claimant, a typo) is refused: the refusal gives the
    alert back OPEN, taking the first request's claim away. The first then lands its dispute
    number on an OPEN alert (decided by nobody), which anyone may now dismiss."""
    stack = stack_on_both
    alert_id = registered(stack)
    admin = stack.actor("ada.admin")
    release = asyncio.Event()
    original = FilingService.file

    async def held(self: FilingService, *args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(FilingService, "file", held)
    now = datetime.now(UTC)
    first = asyncio.create_task(
        conversion.convert(
            stack.filing,
            stack.sessions,
            alert_id,
            conversion.Conversion(claimant_id="northwind"),
            by=admin,
            now=now,
        )
    )
    for _ in range(200):
        if _alert(stack, alert_id).state is AlertState.CONVERTED:
            break
        await asyncio.sleep(0.02)
    assert _alert(stack, alert_id).state is AlertState.CONVERTED
    with pytest.raises(AlertRefused):
        await conversion.convert(
            stack.filing,
            stack.sessions,
            alert_id,
            conversion.Conversion(claimant_id="fabrikam"),
            by=admin,
            now=now,
        )
    release.set()
    result = await first
    stack.numbers.append(result.number)
    alert = _alert(stack, alert_id)
    assert alert.dispute_number == result.number
    # Expected: the alert is converted (into its dispute, by the admin who made it).
    assert alert.state is AlertState.CONVERTED, (
        alert.state,
        alert.decided_by,
        _trail(stack, alert_id),
    )
    assert alert.decided_by == "ada.admin"


async def test_a_conversion_whose_workflow_start_failed_is_not_given_back_open_and_keeps_its_snapshot(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filing is stored (dispute row and receipt) but starting its workflow fails (Temporal
    briefly unreachable): the conversion gives the alert back OPEN although its dispute exists
    and will be started (start_stranded, or a retry). Converted again, the stored filing is
    started without its origin: the alert's snapshot is never attached."""
    alert_id = registered(stack)
    app = make_app(stack)
    original = FilingService._start
    calls = {"n": 0}

    async def flaky(self: FilingService, *args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("temporal unreachable")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(FilingService, "_start", flaky)
    async with api(app, token_for(stack, ADMIN)) as client:
        failed = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
        assert failed.status_code >= 500
        with stack.sessions.read() as session:
            (stored,) = session.exec(select(Dispute)).all()
        stack.numbers.append(stored.number)
        alert = _alert(stack, alert_id)
        # Expected: not an open alert while a dispute was stored from it.
        opened_with_a_dispute = alert.state is AlertState.OPEN and alert.dispute_number is None
        again = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
        assert again.status_code == 201, again.text
        assert again.json()["dispute"]["number"] == stored.number
    await stack.wait_for_event(stored.number, "filed")
    await stack.wait_for(stored.number, lambda s: s.recommendation is not None)
    with stack.sessions.read() as session:
        items = session.exec(select(Evidence).where(Evidence.dispute_number == stored.number)).all()
    assert [i.filename for i in items] == [f"conflict-alert-{alert_id}.txt"], (
        "the alert's snapshot is not attached to the dispute started from the stored filing"
    )
    assert not opened_with_a_dispute, "alert was given back OPEN although its dispute was stored"


async def test_an_alert_linked_to_an_open_dispute_attaches_its_snapshot(stack: Stack) -> None:
    """Northwind filed about DR-2026-0042 against Contoso already; the alert about the same
    registrations is converted: the filing links to the open dispute (right number), but the
    alert's snapshot, 'the dispute's first evidence', is attached nowhere."""
    alert_id = registered(stack)
    filed = await stack.file()
    await stack.wait_for(filed.number, lambda s: s.recommendation is not None)
    app = make_app(stack)
    async with api(app, token_for(stack, ADMIN)) as client:
        answer = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["dispute"]["number"] == filed.number and body["dispute"]["linked"] is True
    assert body["alert"]["dispute_number"] == filed.number
    for _ in range(100):
        with stack.sessions.read() as session:
            items = session.exec(
                select(Evidence).where(Evidence.dispute_number == filed.number)
            ).all()
        if items:
            break
        await asyncio.sleep(0.1)
    assert f"conflict-alert-{alert_id}.txt" in [i.filename for i in items], (
        "the alert's snapshot is not attached to the dispute it was linked to"
    )


async def test_a_registration_amount_over_the_filing_cap_is_refused_not_a_server_error(
    stack: Stack,
) -> None:
    """An import takes amounts up to 15 digits (13 before the point); a filing's amount is
    under 1,000,000,000,000. Converting an alert whose registration is 5,000,000,000,000
    without naming an amount: the pre-filled submission fails its own validation, uncaught."""
    alert_id = registered(stack, first_amount="5000000000000")
    app = make_app(stack)
    async with api(app, token_for(stack, ADMIN)) as client:
        answer = await client.post(
            f"/api/channel/alerts/{alert_id}/convert", json={"claimant_id": "northwind"}
        )
    # Observed: 400 "the request body could not be read" (the body was fine), naming nothing.
    assert answer.status_code == 201 or (
        answer.status_code == 422 and "amount_at_stake" in answer.text
    ), (answer.status_code, answer.text[:300])


async def test_an_alert_whose_filing_was_stored_cannot_be_dismissed_while_the_dispute_goes_on(
    stack_on_both: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the workflow fails after the filing was stored: the alert is given back OPEN;
    a manager dismisses it ('not a conflict'); the worker's start_stranded starts the stored
    filing anyway: a live dispute made from a dismissed alert, which no longer names it."""
    stack = stack_on_both
    alert_id = registered(stack)
    admin = stack.actor("ada.admin")
    original = FilingService._start
    calls = {"n": 0}

    async def flaky(self: FilingService, *args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("temporal unreachable")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(FilingService, "_start", flaky)
    with pytest.raises(RuntimeError):
        await conversion.convert(
            stack.filing,
            stack.sessions,
            alert_id,
            conversion.Conversion(claimant_id="northwind"),
            by=admin,
            now=datetime.now(UTC),
        )
    with stack.sessions.read() as session:
        (stored,) = session.exec(select(Dispute)).all()
    stack.numbers.append(stored.number)
    dismissed_while_filed = True
    try:
        alerts.dismiss(
            stack.sessions,
            alert_id,
            by="alex.admin",
            dismissal=alerts.Dismissal(reason="Not a conflict after all"),
            now=datetime.now(UTC),
        )
    except AlertRefused:
        dismissed_while_filed = False
    started = await stack.filing.start_stranded(older_than=timedelta(0))
    assert started == [stored.number]
    await stack.wait_for_event(stored.number, "filed")
    alert = _alert(stack, alert_id)
    assert not dismissed_while_filed and alert.dispute_number == stored.number, (
        alert.state,
        alert.dispute_number,
        _trail(stack, alert_id),
    )
