"""Exceptions to the rules of engagement through the JSON API and the pages, on the
time-skipping server: requests refused naming the field and the rule, who reads which
exception, the objection, the sealed ballot and the chair's decision, refusals by role, by
ended role and at the same moment, each answered 4xx with the field, never a 500."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import select

from models.enums import ExceptionState
from models.tables import ChannelException, ExceptionEvent, PartnerContact, Person
from tests.conftest import Stack
from tests.web_harness import api, make_app, messages, signed_in, token_for
from tests.workflows.test_exception import REASON, WHY, event, events, panel_of, row

CARL = "carl@contoso.example"  # contoso asks
NORA = "nora@northwind.example"  # northwind holds the territory: affected
FAY = "fay@fabrikam.example"  # named nowhere
ADMIN = "ada.admin@vendor.example"
COMPLIANCE = "carol.compliance@vendor.example"
MEDIATOR = "maria.lopez@vendor.example"
BOARD = "b.sales@vendor.example"


def asked(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_id": "contoso",
        "clause": "RoE 4.2",
        "territory": "US-NY-METRO",
        "until": (date.today() + timedelta(days=60)).isoformat(),
        "reason": REASON,
    }
    body.update(overrides)
    return body


def email_of(stack: Stack, person_id: str) -> str:
    with stack.sessions.read() as session:
        person = session.get(Person, person_id)
        assert person is not None
        return person.email


def as_(stack: Stack, app: FastAPI, login: str) -> httpx.AsyncClient:
    return api(app, token_for(stack, login))


def fields(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def requested_through_api(stack: Stack, app: FastAPI) -> int:
    async with as_(stack, app, CARL) as carl:
        made = await carl.post("/api/exceptions", json=asked())
    assert made.status_code == 201, made.text
    exception_id: int = made.json()["id"]
    await event(stack, exception_id, "requested")
    return exception_id


async def in_review(stack: Stack, app: FastAPI) -> int:
    exception_id = await requested_through_api(stack, app)
    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    return exception_id


async def test_a_request_through_the_api_is_refused_naming_the_field_and_stored_once_allowed(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    async with as_(stack, app, CARL) as carl:
        nul = await carl.post("/api/exceptions", json=asked(reason=REASON + "\x00 and more"))
        assert nul.status_code == 422 and "reason" in fields(nul)
        huge = await carl.post("/api/exceptions", json=asked(reason="x" * 6_000))
        assert huge.status_code == 422 and "reason" in fields(huge)
        unknown = await carl.post("/api/exceptions", json=asked(clause="RoE 9.9"))
        assert unknown.status_code == 422, unknown.text
        said = fields(unknown)["clause"]
        assert "may not be excepted" in said and "the board may except" in said
        both = await carl.post("/api/exceptions", json=asked(account="ACC-1"))
        assert both.status_code == 422
        late = await carl.post(
            "/api/exceptions", json=asked(until=(date.today() + timedelta(days=900)).isoformat())
        )
        assert late.status_code == 422 and "at most" in fields(late)["until"]
        other = await carl.post("/api/exceptions", json=asked(partner_id="northwind"))
        assert other.status_code == 403, other.text
        made = await carl.post("/api/exceptions", json=asked())
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["number"] == f"EXC-{body['id']}" and body["state"] == "requested"
        assert body["affected_partner_ids"] == ["northwind"] and body["reason"] == REASON
        again = await carl.post("/api/exceptions", json=asked())
        assert again.status_code == 422 and "already covers" in fields(again)["territory"]
    for login, status in ((MEDIATOR, 403), (BOARD, 403), (COMPLIANCE, 403)):
        async with as_(stack, app, login) as client:
            refused = await client.post("/api/exceptions", json=asked())
            assert refused.status_code == status, (login, refused.text)
    with stack.sessions.read() as session:
        stored = session.exec(select(ChannelException)).all()
    assert [r.reason for r in stored] == [REASON]
    await event(stack, body["id"], "requested")


async def test_who_reads_which_exception(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    for login in (CARL, NORA, ADMIN, COMPLIANCE, BOARD):
        async with as_(stack, app, login) as client:
            listed = await client.get("/api/exceptions")
            assert listed.status_code == 200 and listed.json()["total"] == 1, login
            one = await client.get(f"/api/exceptions/{exception_id}")
            assert one.status_code == 200, (login, one.text)
            assert [h["action"] for h in one.json()["history"]] == ["requested"]
            assert one.json()["live"]["state"] == "requested"
    async with as_(stack, app, FAY) as fay:
        assert (await fay.get("/api/exceptions")).json() == {"exceptions": [], "total": 0}
        hidden = await fay.get(f"/api/exceptions/{exception_id}")
        assert hidden.status_code == 404 and REASON not in hidden.text
        acting = await fay.post(f"/api/exceptions/{exception_id}/object", json={"reason": "No."})
        assert acting.status_code == 404
    async with as_(stack, app, MEDIATOR) as mediator:
        assert (await mediator.get("/api/exceptions")).status_code == 403
        assert (await mediator.get(f"/api/exceptions/{exception_id}")).status_code == 403
    async with as_(stack, app, ADMIN) as admin:
        for path in ("/api/exceptions/99999999999", "/api/exceptions/0", "/api/exceptions/424242"):
            assert (await admin.get(path)).status_code == 404, path
        bad = await admin.post(f"/api/exceptions/{exception_id}/approve", json={"reason": "x"})
        assert bad.status_code == 404
        filtered = await admin.get("/api/exceptions", params={"state": "approved"})
        assert filtered.json()["total"] == 0
        by_partner = await admin.get("/api/exceptions", params={"partner_id": "northwind"})
        assert by_partner.json()["total"] == 1
        by_clause = await admin.get("/api/exceptions", params={"clause": "RoE 3.4"})
        assert by_clause.json()["total"] == 0
        by_clause = await admin.get("/api/exceptions", params={"clause": "roe 4.2"})
        assert by_clause.json()["total"] == 1
        odd = await admin.get("/api/exceptions", params={"clause": "RoE\x004.2"})
        assert odd.status_code in (200, 422) and odd.status_code != 500


async def test_objected_voted_sealed_and_decided_through_the_api(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    path = f"/api/exceptions/{exception_id}"
    async with as_(stack, app, NORA) as nora:
        nul = await nora.post(f"{path}/object", json={"reason": "We object\x00 strongly."})
        assert nul.status_code == 422 and "reason" in fields(nul)
        huge = await nora.post(f"{path}/object", json={"reason": "x" * 20_000})
        assert huge.status_code == 422 and "reason" in fields(huge)
        wrong = await nora.post(f"{path}/object", json={"reasons": "We serve Acme in New York."})
        assert wrong.status_code == 422 and "reasons" in fields(wrong)
        done = await nora.post(f"{path}/object", json={"reason": "We serve Acme in New York."})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "requested"
        twice = await nora.post(f"{path}/object", json={"reason": "And again we object."})
        assert twice.status_code == 409 and "objected already" in fields(twice)["action"]
        # northwind's objection's text is the board's to read, not contoso's
    async with as_(stack, app, CARL) as carl:
        seen = (await carl.get(path)).json()
        assert all("reason" not in h["detail"] for h in seen["history"])
        assert "We serve Acme" not in str(seen)
    await stack.env.sleep(timedelta(days=8))
    await event(stack, exception_id, "panel_drawn")
    members, chair = panel_of(stack, exception_id)
    first, *others = members
    async with as_(stack, app, email_of(stack, first)) as voter:
        vote = await voter.post(f"{path}/vote", json={"choice": "maybe", "reasons": WHY})
        assert vote.status_code == 422 and "choice" in fields(vote)
        vote = await voter.post(f"{path}/vote", json={"choice": "approve", "reasons": WHY})
        assert vote.status_code == 200, vote.text
        live = (await voter.get(path)).json()["live"]
        assert live["voted"] == [first] and live["votes"] == [] and not live["ballot_open"]
    async with as_(stack, app, email_of(stack, chair)) as boss:
        sealed = await boss.post(f"{path}/decide", json={"choice": "approve", "reason": WHY})
        assert sealed.status_code == 409 and "sealed" in fields(sealed)["action"]
    for member in others:
        async with as_(stack, app, email_of(stack, member)) as voter:
            cast = await voter.post(f"{path}/vote", json={"choice": "deny", "reasons": WHY})
            assert cast.status_code == 200, cast.text
    await event(stack, exception_id, "ballot_opened")
    async with as_(stack, app, COMPLIANCE) as compliance:
        opened = (await compliance.get(path)).json()
        assert len(opened["live"]["votes"]) == len(members)
    async with as_(stack, app, CARL) as carl:
        assert (await carl.get(path)).json()["live"]["votes"] == []
    async with as_(stack, app, email_of(stack, chair)) as boss:
        decided = await boss.post(f"{path}/decide", json={"choice": "approve", "reason": WHY})
        assert decided.status_code == 200, decided.text
        assert decided.json()["state"] == "approved"
    assert row(stack, exception_id).state is ExceptionState.APPROVED
    async with as_(stack, app, CARL) as carl:
        late = await carl.post(f"{path}/withdraw", json={"reason": "We no longer need it."})
        assert late.status_code == 409 and "cannot be withdrawn" in fields(late)["action"]


async def test_ended_roles_and_another_exceptions_panel_are_refused(stack: Stack) -> None:
    app = make_app(stack)
    first_id = await in_review(stack, app)
    members, _ = panel_of(stack, first_id)
    # One of the first panel may not judge fabrikam: the second exception's panel seats a
    # colleague of the same function instead.
    judge = members[0]
    with stack.sessions.begin() as session:
        person = session.get(Person, judge)
        assert person is not None
        person.declared_conflicts = [*person.declared_conflicts, "fabrikam"]
        session.add(person)
        session.add(
            Person(
                id="board.alt",
                name="Alt Member",
                email="alt.member@vendor.example",
                role=person.role,
                organisation="vendor",
                function=person.function,
                calendar=person.calendar,
            )
        )
    async with as_(stack, app, FAY) as fay:
        made = await fay.post("/api/exceptions", json=asked(partner_id="fabrikam"))
        assert made.status_code == 201, made.text
    second_id = made.json()["id"]
    await event(stack, second_id, "requested")
    await stack.env.sleep(timedelta(days=8))
    await event(stack, second_id, "panel_drawn")
    second_panel, _ = panel_of(stack, second_id)
    assert judge not in second_panel and "board.alt" in second_panel
    async with as_(stack, app, email_of(stack, judge)) as stranger:
        vote = await stranger.post(
            f"/api/exceptions/{second_id}/vote", json={"choice": "approve", "reasons": WHY}
        )
        assert vote.status_code == 409 and "only a member" in fields(vote)["action"]

    path = f"/api/exceptions/{first_id}"
    async with as_(stack, app, email_of(stack, members[1])) as ended:
        with stack.sessions.begin() as session:
            person = session.get(Person, members[1])
            assert person is not None
            person.active = False
            session.add(person)
        vote = await ended.post(f"{path}/vote", json={"choice": "approve", "reasons": WHY})
        assert vote.status_code in (401, 403), vote.text
    async with as_(stack, app, CARL) as carl:
        with stack.sessions.begin() as session:
            contact = session.exec(select(PartnerContact).where(PartnerContact.email == CARL)).one()
            contact.active = False
            session.add(contact)
        gone = await carl.post(f"{path}/withdraw", json={"reason": "We take it back now."})
        assert gone.status_code in (401, 403), gone.text
    async with as_(stack, app, MEDIATOR) as mediator:
        refused = await mediator.post(f"{path}/withdraw", json={"reason": "Not mine to do."})
        assert refused.status_code == 403
    async with as_(stack, app, COMPLIANCE) as compliance:
        refused = await compliance.post(f"{path}/withdraw", json={"reason": "Not mine to do."})
        assert refused.status_code == 403
    for exception_id in (first_id, second_id):
        assert [e.action for e in events(stack, exception_id)][-1] == "panel_drawn"


async def test_two_decisions_at_once_one_is_taken_the_other_refused(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await in_review(stack, app)
    path = f"/api/exceptions/{exception_id}"
    members, chair = panel_of(stack, exception_id)
    for member in members:
        async with as_(stack, app, email_of(stack, member)) as voter:
            cast = await voter.post(f"{path}/vote", json={"choice": "approve", "reasons": WHY})
            assert cast.status_code == 200, cast.text
    await event(stack, exception_id, "ballot_opened")
    async with (
        as_(stack, app, email_of(stack, chair)) as one,
        as_(stack, app, email_of(stack, chair)) as two,
    ):
        first, second = await asyncio.gather(
            one.post(f"{path}/decide", json={"choice": "approve", "reason": WHY}),
            two.post(f"{path}/decide", json={"choice": "deny", "reason": WHY}),
        )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    refused = first if first.status_code == 409 else second
    assert "action" in fields(refused)
    ends = [e.action for e in events(stack, exception_id) if e.action in ("approved", "denied")]
    assert len(ends) == 1


async def test_the_pages_request_object_and_show_refusals_next_to_the_form(stack: Stack) -> None:
    app = make_app(stack)
    carl = await signed_in(app, CARL)
    listing = await carl.get("/exceptions")
    assert listing.status_code == 200 and "Request an exception" in listing.text
    form = {k: v for k, v in asked().items() if k != "partner_id"} | {"partner_id": "contoso"}
    unknown = await carl.post("/exceptions", {**form, "clause": "RoE 9.9"})
    assert unknown.status_code == 422
    assert any("may not be excepted" in m for m in messages(unknown.text))
    assert "under its master agreement" in unknown.text  # what was typed is kept
    nul = await carl.post("/exceptions", {**form, "reason": REASON + "\x00"})
    assert nul.status_code == 422 and messages(nul.text)
    made = await carl.post("/exceptions", form)
    assert made.status_code == 303, made.text
    page_path = made.headers["location"]
    exception_id = int(page_path.rsplit("/", 1)[1])
    await event(stack, exception_id, "requested")
    page = await carl.get(page_path)
    assert page.status_code == 200 and 'id="form-withdraw"' in page.text
    assert 'id="form-object"' not in page.text
    await carl.close()

    nora = await signed_in(app, NORA)
    page = await nora.get(page_path)
    assert 'id="form-object"' in page.text and 'id="form-withdraw"' not in page.text
    short = await nora.post(f"{page_path}/object", {"reason": ""})
    assert short.status_code == 422 and "Object refused" in short.text
    done = await nora.post(f"{page_path}/object", {"reason": "We serve Acme in New York."})
    assert done.status_code == 303, done.text
    again = await nora.post(f"{page_path}/object", {"reason": "We object once more."})
    assert again.status_code == 409 and "objected already" in again.text
    page = await nora.get(page_path)
    assert 'id="form-object"' not in page.text
    assert "EXC-" in (await nora.get("/exceptions")).text
    await nora.close()

    fay = await signed_in(app, FAY)
    assert (await fay.get(page_path)).status_code == 404
    assert f"EXC-{exception_id}" not in (await fay.get("/exceptions")).text
    await fay.close()
    mediator = await signed_in(app, MEDIATOR)
    assert (await mediator.get("/exceptions")).status_code == 403
    await mediator.close()
    assert [e.action for e in events(stack, exception_id)] == ["requested", "objected"]
    assert isinstance(events(stack, exception_id)[0], ExceptionEvent)


async def test_the_page_shows_each_viewer_only_the_forms_it_may_use_now(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await in_review(stack, app)
    page_path = f"/exceptions/{exception_id}"
    members, chair = panel_of(stack, exception_id)
    boss = await signed_in(app, email_of(stack, chair))
    page = await boss.get(page_path)
    assert 'id="form-decide"' not in page.text and 'id="form-vote"' not in page.text
    early = await boss.post(f"{page_path}/decide", {"choice": "approve", "reason": WHY})
    assert early.status_code == 409 and "sealed" in early.text
    for member in members:
        voter = await signed_in(app, email_of(stack, member))
        page = await voter.get(page_path)
        assert 'id="form-vote"' in page.text and 'id="form-withdraw"' not in page.text
        bad = await voter.post(f"{page_path}/vote", {"choice": "maybe", "reasons": WHY})
        assert bad.status_code == 422 and "Vote refused" in bad.text
        cast = await voter.post(f"{page_path}/vote", {"choice": "approve", "reasons": WHY})
        assert cast.status_code == 303, cast.text
        assert 'id="form-vote"' not in (await voter.get(page_path)).text
        await voter.close()
    await event(stack, exception_id, "ballot_opened")
    page = await boss.get(page_path)
    assert 'id="form-decide"' in page.text
    decided = await boss.post(f"{page_path}/decide", {"choice": "deny", "reason": WHY})
    assert decided.status_code == 303, decided.text
    page = await boss.get(page_path)
    assert 'class="stage denied"' in page.text and 'id="form-' not in page.text
    await boss.close()
    admin = await signed_in(app, ADMIN)
    assert 'id="form-' not in (await admin.get(page_path)).text
    for path in ("/exceptions/99999999999", f"{page_path}/approve"):
        response = await (admin.get(path) if path.endswith("9") else admin.post(path, {}))
        assert response.status_code == 404, path
    await admin.close()
    assert row(stack, exception_id).state is ExceptionState.DENIED


async def test_the_same_request_twice_at_once_is_stored_once(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app = make_app(stack)
    async with as_(stack, app, CARL) as carl, as_(stack, app, ADMIN) as admin:
        first, second = await asyncio.gather(
            carl.post("/api/exceptions", json=asked()),
            admin.post("/api/exceptions", json=asked()),
        )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [201, 422], (first.text, second.text)
    refused = first if first.status_code == 422 else second
    assert "already covers" in fields(refused)["territory"]
    with stack.sessions.read() as session:
        assert len(session.exec(select(ChannelException)).all()) == 1
    made = first if first.status_code == 201 else second
    await event(stack, made.json()["id"], "requested")
