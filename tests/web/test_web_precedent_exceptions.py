"""The board's decided exceptions on the web: beside the precedents in the library's search (its
page and /api/precedents), for compliance, the board and admins only, found by the same words
and clause and narrowed by their state, on SQLite and PostgreSQL; and in the channel-health
page's Exceptions section. Seeded as rows: no workflow runs."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from fastapi import FastAPI

from accord.channel.exceptions import end_of
from accord.platform.db import SessionFactory
from models.enums import ExceptionState
from models.tables import ChannelException
from tests.conftest import Stack
from tests.web_harness import api, make_app, signed_in, token_for

COMPLIANCE = "carol.compliance@vendor.example"
BOARD = "b.sales@vendor.example"
ADMIN = "ada.admin@vendor.example"
PARTNER = "nora@northwind.example"
MEDIATOR = "maria.lopez@vendor.example"
RoE_4_2 = "RoE 4.2 Exclusive territories are served only by their holder"
RoE_3_4 = "RoE 3.4 A named account is carved out for the partner it is named to"
GRANTED = "Contoso's metro office serves this customer under its master agreement."
REFUSED = "Northwind has served the Nordics for years; no carve-out."
ASKED = "Fabrikam would like the Iberia territory for a quarter."


def _add(
    sessions: SessionFactory,
    *,
    partner_id: str,
    clause: str,
    scope: tuple[str, str],
    state: ExceptionState,
    requested_days_ago: int,
    hours_to_decision: float | None,
    until: date,
    decision_reason: str | None,
) -> int:
    requested = datetime.now(UTC) - timedelta(days=requested_days_ago)
    row = ChannelException(
        partner_id=partner_id,
        clause=clause,
        scope_kind=scope[0],
        scope_ref=scope[1],
        affected_partner_ids=["northwind"],
        reason=ASKED if decision_reason is None else "Asked for a good reason, at length enough.",
        requested_by="carl@contoso.example",
        requested_at=requested,
        until=until,
        expires_at=end_of(until, "UTC"),
        playbook_version="2026.2",
        state=state,
        panel={},
        decided_at=(
            requested + timedelta(hours=hours_to_decision)
            if hours_to_decision is not None
            else None
        ),
        decided_by="chair@vendor.example" if hours_to_decision is not None else None,
        decision_reason=decision_reason,
    )
    with sessions.begin() as session:
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def seed(sessions: SessionFactory) -> dict[str, int]:
    """Contoso's approved metro exception (in force), a denied one of Northwind's, one that
    ran out, and one the board has not decided yet."""
    later = date.today() + timedelta(days=60)
    return {
        "granted": _add(
            sessions,
            partner_id="contoso",
            clause=RoE_4_2,
            scope=("territory", "US-NY-METRO"),
            state=ExceptionState.APPROVED,
            requested_days_ago=10,
            hours_to_decision=20.0,
            until=later,
            decision_reason=GRANTED,
        ),
        "refused": _add(
            sessions,
            partner_id="northwind",
            clause=RoE_4_2,
            scope=("territory", "NORDICS"),
            state=ExceptionState.DENIED,
            requested_days_ago=8,
            hours_to_decision=40.0,
            until=later,
            decision_reason=REFUSED,
        ),
        "ran_out": _add(
            sessions,
            partner_id="contoso",
            clause=RoE_3_4,
            scope=("account", "ACC-7"),
            state=ExceptionState.EXPIRED,
            requested_days_ago=90,
            hours_to_decision=60.0,
            until=date.today() - timedelta(days=5),
            decision_reason="Granted for the quarter's metro renewal.",
        ),
        "asked": _add(
            sessions,
            partner_id="fabrikam",
            clause=RoE_4_2,
            scope=("territory", "IBERIA"),
            state=ExceptionState.REQUESTED,
            requested_days_ago=2,
            hours_to_decision=None,
            until=later,
            decision_reason=None,
        ),
    }


def listed(html: str) -> list[str]:
    """The exception numbers the page's Board exceptions section lists, in order."""
    section = html.partition('id="board-exceptions"')[2].partition("</section>")[0]
    return re.findall(r'href="/exceptions/\d+">(EXC-\d+)</a>', section)


async def _page(app: FastAPI, login: str, **params: str) -> str:
    browser = await signed_in(app, login)
    try:
        response = await browser.get("/precedents", params=params)
    finally:
        await browser.close()
    assert response.status_code == 200, response.text[:500]
    return response.text


async def test_the_precedent_search_lists_the_boards_decided_exceptions_by_words_clause_and_state(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    ids = seed(stack.sessions)
    granted, refused, ran_out = (f"EXC-{ids[k]}" for k in ("granted", "refused", "ran_out"))
    app = make_app(stack)
    newest_first = await _page(app, COMPLIANCE)
    assert listed(newest_first) == [refused, granted, ran_out]  # the request undecided: none
    assert f'href="/exceptions/{ids["granted"]}"' in newest_first
    assert "Contoso&#39;s metro office" in newest_first
    assert ASKED not in newest_first and "IBERIA" not in newest_first
    # The same words as the precedents: all present, a word's start, -exclusions, "phrases".
    assert listed(await _page(app, COMPLIANCE, q="metro")) == [granted, ran_out]
    assert listed(await _page(app, COMPLIANCE, q="metro -renewal")) == [granted]
    assert listed(await _page(app, BOARD, q='"master agreement"')) == [granted]
    assert listed(await _page(app, ADMIN, q="northwind nordic")) == [refused]
    # The clause, by its reference or its wording; the state from the form's select.
    assert listed(await _page(app, COMPLIANCE, clause="RoE 3.4")) == [ran_out]
    assert listed(await _page(app, COMPLIANCE, clause=RoE_4_2)) == [refused, granted]
    by_state = await _page(app, COMPLIANCE, state="denied")
    assert listed(by_state) == [refused]
    assert '<option value="denied" selected>' in by_state
    undecided = await _page(app, COMPLIANCE, state="requested")
    assert listed(undecided) == [] and "Requested exceptions are not decided yet" in undecided
    assert listed(await _page(app, COMPLIANCE, q="nothing-like-it")) == []


async def test_the_api_answers_the_exceptions_to_their_readers_and_omits_them_for_others(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    ids = seed(stack.sessions)
    app = make_app(stack)
    for login in (COMPLIANCE, BOARD, ADMIN):
        async with api(app, token_for(stack, login)) as client:
            response = await client.get("/api/precedents", params={"q": "metro"})
            assert response.status_code == 200, response.text
            found = response.json()["exceptions"]
            assert found["total"] == 2
            first = found["hits"][0]
            assert first["id"] == ids["granted"] and first["url"] == f"/exceptions/{ids['granted']}"
            assert first["state"] == "approved" and first["clause_ref"] == "RoE 4.2"
            assert first["scope_ref"] == "US-NY-METRO" and first["decision_reason"] == GRANTED
            assert first["until"] == (date.today() + timedelta(days=60)).isoformat()
            assert datetime.fromisoformat(first["decided_at"]).tzinfo is not None
            narrowed = await client.get(
                "/api/precedents", params={"q": "metro", "clause": "RoE 3.4", "state": "expired"}
            )
            assert [h["id"] for h in narrowed.json()["exceptions"]["hits"]] == [ids["ran_out"]]
    # Others are answered the precedents as before, and nothing of the exceptions.
    for login in (PARTNER, MEDIATOR):
        async with api(app, token_for(stack, login)) as client:
            response = await client.get(
                "/api/precedents", params={"q": "metro", "state": "approved"}
            )
            assert response.status_code == 200, response.text
            assert "exceptions" not in response.json()
            for secret in (GRANTED, "US-NY-METRO", "EXC-"):
                assert secret not in response.text
        page = await _page(app, login, q="metro")
        assert "Board exceptions" not in page and 'name="state"' not in page
        for secret in ("Contoso&#39;s metro office", "US-NY-METRO", "/exceptions/"):
            assert secret not in page


async def test_a_refused_query_is_a_field_error_for_the_exceptions_readers_too(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    seed(stack.sessions)
    app = make_app(stack)
    refused = {
        ("q", "ac\x00me"): "NUL character",
        ("q", "ac\x1bme"): "U+001B",
        ("q", "x" * 201): "at most 200 characters",
        ("clause", "RoE\x85 4.2"): "U+0085",
        ("state", "granted"): "approved",  # the states it takes are named
    }
    browser = await signed_in(app, COMPLIANCE)
    try:
        async with api(app, token_for(stack, ADMIN)) as client:
            for (name, value), words in refused.items():
                response = await client.get("/api/precedents", params={name: value})
                assert response.status_code == 422, (name, value, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                errors = {e["field"]: e["message"] for e in response.json()["errors"]}
                assert list(errors) == [name] and words in errors[name], errors
                page = await browser.get("/precedents", params={name: value})
                assert page.status_code == 422, (name, value, page.status_code)
                assert f"<strong>{name}</strong>: " in page.text and words in page.text
    finally:
        await browser.close()


async def test_the_channel_health_page_shows_the_exceptions_of_the_period_and_in_force(
    stack: Stack,
) -> None:
    ids = seed(stack.sessions)
    browser = await signed_in(make_app(stack), COMPLIANCE)
    try:
        response = await browser.get(
            "/reports/channel-health",
            params={"from": (date.today() - timedelta(days=30)).isoformat()},
        )
    finally:
        await browser.close()
    assert response.status_code == 200, response.text[:500]
    section = response.text.partition('id="exceptions"')[2].partition("</section>")[0]
    # Requested in the period: granted, refused and asked (the one that ran out was before).
    assert "<strong>3</strong> exceptions" in section
    assert "decided <strong>2</strong>" in section
    assert "<strong>30.0 h</strong>" in section  # the median of 20 and 40 hours
    head = "<th>Clause</th><th>Requested</th><th>Approved</th><th>Denied</th>"
    assert head in section
    assert "<tr><td>RoE 4.2</td><td>1</td><td>1</td><td>1</td></tr>" in section
    in_force = section.partition("In force now")[2]
    until = (date.today() + timedelta(days=60)).isoformat()
    assert (
        f'<tr><td><a href="/exceptions/{ids["granted"]}">EXC-{ids["granted"]}</a></td>'
        f"<td>Contoso Systems</td><td>RoE 4.2</td><td>territory US-NY-METRO</td><td>{until}</td></tr>"
    ) in in_force
    assert "NORDICS" not in in_force and "ACC-7" not in in_force
