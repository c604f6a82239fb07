"""An export is the whole of what compliance asked for, in an order that does not change between
two exports of the same records, or a refusal that says why: never its first part only."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import update

from models.enums import DisputeCategory, InboundState
from models.tables import Dispute, InboundMessage
from tests.activities.test_activities import dispute_row
from tests.conftest import Stack, cli_env
from tests.precedent_rows import add_precedent
from tests.processes import run_accord
from tests.web_harness import api, make_app, signed_in, token_for
from tests.workflows.test_dispute_paths import settled

COMPLIANCE = "carol.compliance@vendor.example"
DECIDED = datetime(2026, 6, 1, 12, tzinfo=UTC)
"""Six precedents decided in one instant (an import of an old programme's rulings)."""


def _decided_in_one_instant(stack: Stack) -> list[str]:
    numbers = [f"DSP-2025-{n:06d}" for n in (6, 2, 5, 1, 4, 3)]
    with stack.sessions.begin() as session:
        for number in numbers:
            add_precedent(
                session,
                number,
                category=DisputeCategory.PRICING,
                outcome="uphold",
                facts=f"Facts of {number}",
                rationale="Floor price held.",
                decided_at=DECIDED,
            )
    return sorted(numbers)


async def test_an_export_larger_than_one_file_is_refused_naming_what_to_narrow(
    stack_on_both: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven disputes, seven precedents and a settled dispute's audit trail, with exports of at
    most five: each export says it would hold more than five and which filter narrows it, and
    carries nothing; it used to carry the first five as if they were all."""
    stack = stack_on_both
    number = await settled(stack)
    _decided_in_one_instant(stack)
    assert len(stack.events(number)) > 5
    monkeypatch.setattr("accord.reports.exports.EXPORT_LIMIT", 5)
    app = make_app(stack)
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        for path, params, field, what in (
            ("/api/exports/disputes", {"format": "csv"}, "filed_from", "disputes"),
            ("/api/exports/precedents", {"from": "2020-01-01"}, "from", "precedents"),
            ("/api/exports/audit", {"format": "csv"}, "from", "audit entries"),
        ):
            response = await client.get(path, params=params)
            assert response.status_code == 422, (path, response.status_code, response.text[:300])
            [error] = response.json()["errors"]
            assert error["field"] == field, (path, error)
            assert f"more than 5 {what}" in error["message"], (path, error)


async def test_records_of_one_instant_export_whole_and_in_the_same_order_every_time(
    stack_on_both: Stack,
) -> None:
    """Precedents decided in the same instant come out by dispute number, and disputes filed
    in the same instant by number: two exports of the same records are the same file."""
    stack = stack_on_both
    numbers = _decided_in_one_instant(stack)
    with stack.sessions.begin() as session:
        session.exec(update(Dispute).values(filed_at=DECIDED))  # type: ignore[call-overload]
    app = make_app(stack)
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        precedents = await client.get("/api/exports/precedents", params={"from": "2026-06-01"})
        assert [p["dispute_number"] for p in json.loads(precedents.text)] == numbers
        disputes = await client.get("/api/exports/disputes")
        assert [d["number"] for d in json.loads(disputes.text)] == numbers


async def test_the_cli_list_says_it_shows_only_the_newest_and_which(stack: Stack) -> None:
    """`accord disputes` shows the newest 200; with more on file it says so (on stderr, so
    `--json` stays one document) instead of passing 200 off as all, and disputes filed in one
    instant keep one order across runs (newest number first)."""
    with stack.sessions.begin() as session:
        for n in range(1, 204):
            session.add(dispute_row(f"DSP-2026-{n:06d}", filed_at=DECIDED))
    shown = run_accord("disputes", env=cli_env(stack))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 200
    assert [line.split()[0] for line in lines[:2]] == ["DSP-2026-000203", "DSP-2026-000202"]
    assert "the newest 200 of 203 disputes" in shown.stderr, shown.stderr
    as_json = run_accord("disputes", "--json", env=cli_env(stack))
    rows = json.loads(as_json.stdout)
    assert [r["number"] for r in rows] == [f"DSP-2026-{n:06d}" for n in range(203, 3, -1)]
    assert "the newest 200 of 203 disputes" in as_json.stderr, as_json.stderr


async def test_the_api_export_narrows_by_every_filter_the_list_takes(stack: Stack) -> None:
    """`/api/exports/disputes` takes the list's filters (open only, words, party): it used to
    drop the ones it did not name and export everything, with a 200, as if narrowed."""
    with stack.sessions.begin() as session:
        session.add(dispute_row("DSP-2026-000001", summary="Quokka rebate undercut"))
        session.add(dispute_row("DSP-2026-000002"))
        session.add(dispute_row("DSP-2026-000003", closed_at=DECIDED))
    app = make_app(stack)
    async with api(app, token_for(stack, COMPLIANCE)) as client:
        for params, wanted in (
            ({"open_only": "true"}, ["DSP-2026-000001", "DSP-2026-000002"]),
            ({"q": "quokka"}, ["DSP-2026-000001"]),
        ):
            listed = (await client.get("/api/disputes", params=params)).json()["items"]
            assert sorted(d["number"] for d in listed) == wanted, (params, listed)
            exported = await client.get("/api/exports/disputes", params=params)
            assert [d["number"] for d in json.loads(exported.text)] == wanted, params


def _held(stack: Stack, n: int) -> None:
    with stack.sessions.begin() as session:
        for i in range(n):
            session.add(
                InboundMessage(
                    dedupe_key=f"mid:held-{i}@example",
                    source="smtp",
                    raw=b"Subject: x\r\n\r\nbody",
                    size=20,
                    received_at=DECIDED + timedelta(seconds=i),
                    state=InboundState.QUARANTINED,
                    reason="sender not in the directory",
                    sender=f"s{i}@nowhere.example",
                    subject=f"subj-{i:04d}",
                )
            )


async def test_the_intake_queues_say_when_they_show_only_the_newest(stack: Stack) -> None:
    """201 quarantined messages wait for an admin: `accord inbound` and /admin/intake list the
    newest 200 and say that there are 201 (they said nothing of the oldest, which no list
    showed)."""
    _held(stack, 201)
    shown = run_accord("inbound", "--state", "quarantined", env=cli_env(stack))
    assert shown.returncode == 0, shown.stderr
    assert "subj-0200" in shown.stdout and "subj-0000" not in shown.stdout
    assert "the newest 200 of 201 quarantined messages" in shown.stderr, shown.stderr
    browser = await signed_in(make_app(stack), "ada.admin@vendor.example")
    try:
        page = await browser.get("/admin/intake?state=quarantined")
        assert page.status_code == 200
        assert len(re.findall(r"subj-\d{4}", page.text)) == 200
        assert "the newest 200 of 201 quarantined messages" in page.text, page.text[-3000:]
    finally:
        await browser.close()
