"""Adversarial probes of the exceptions' web surfaces: the JSON API, the pages and their forms,
the precedents' "Board exceptions" list and the channel-health page, as an attacker, an
operator or an impatient user would use them. Every refusal a clear 4xx, never a 500, never
raw engine text, never a partial write."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlmodel import select

from accord.channel.exceptions import end_of
from models.enums import ExceptionState, Role
from models.tables import ChannelException, PartnerContact, Person
from tests.conftest import Stack
from tests.web.test_web_exceptions import (
    ADMIN,
    BOARD,
    CARL,
    COMPLIANCE,
    FAY,
    MEDIATOR,
    NORA,
    as_,
    asked,
    email_of,
    fields,
    in_review,
    requested_through_api,
)
from tests.web_harness import api, make_app, signed_in
from tests.workflows.test_exception import WHY, event, events, panel_of, row

ENGINE_WORDS = ("Traceback", "sqlalchemy", "psycopg", "sqlite3", "out of range", "Internal")


def _clean(response: httpx.Response, *, where: str) -> None:
    assert response.status_code < 500, (where, response.status_code, response.text[:500])
    for word in ENGINE_WORDS:
        assert word not in response.text, (where, word, response.text[:500])


def _stored(stack: Stack) -> list[ChannelException]:
    with stack.sessions.read() as session:
        return list(session.exec(select(ChannelException)))


# --- who reads what ----------------------------------------------------------------------------


async def test_probe_an_affected_partner_does_not_read_the_requesting_partner_s_contact(
    stack: Stack,
) -> None:
    """The history hides who acted from partners ("—"); the summary beside it must not
    name the other partner's contact."""
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    async with as_(stack, app, NORA) as nora:
        one = await nora.get(f"/api/exceptions/{exception_id}")
        assert one.status_code == 200
        assert all(h["actor"] in ("—", "accord") for h in one.json()["history"])
        listed = await nora.get("/api/exceptions")
    for response in (one, listed):
        assert CARL not in response.text, response.json()


async def test_probe_every_route_refuses_no_session_mediator_and_deactivated_users(
    stack: Stack,
) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    path = f"/api/exceptions/{exception_id}"
    calls = (
        ("get", "/api/exceptions", None),
        ("get", path, None),
        ("post", "/api/exceptions", asked()),
        ("post", f"{path}/object", {"reason": "We object to this request."}),
        ("post", f"{path}/withdraw", {"reason": "We take it back now."}),
    )
    async with api(app) as anonymous, as_(stack, app, MEDIATOR) as mediator:
        for method, url, body in calls:
            kwargs = {"json": body} if body is not None else {}
            nobody = await getattr(anonymous, method)(url, **kwargs)
            assert nobody.status_code == 401, (url, nobody.text)
            refused = await getattr(mediator, method)(url, **kwargs)
            assert refused.status_code == 403, (url, refused.text)
            assert exception_id == 0 or "We serve" not in refused.text
    for page in ("/exceptions", f"/exceptions/{exception_id}"):
        async with api(app) as anonymous:
            answer = await anonymous.get(page)
            assert answer.status_code in (303, 401), (page, answer.status_code)
    # Compliance reads, but neither asks nor acts.
    async with as_(stack, app, COMPLIANCE) as compliance:
        assert (await compliance.get(path)).status_code == 200
        for action in ("object", "vote", "decide", "withdraw", "redraw"):
            acted = await compliance.post(f"{path}/{action}", json={"reason": WHY})
            assert acted.status_code in (403, 422), (action, acted.text)
            _clean(acted, where=action)
    # A partner named: what its side may not do is refused 409 naming `action`.
    async with as_(stack, app, CARL) as carl:
        objected = await carl.post(f"{path}/object", json={"reason": "Objecting to ourselves."})
        assert objected.status_code == 409 and "action" in fields(objected)
        vote = await carl.post(f"{path}/vote", json={"choice": "approve", "reasons": WHY})
        assert vote.status_code == 409 and "action" in fields(vote)
    # Deactivated: the token stops reading at once.
    async with as_(stack, app, NORA) as nora:
        with stack.sessions.begin() as session:
            contact = session.exec(select(PartnerContact).where(PartnerContact.email == NORA)).one()
            contact.active = False
            session.add(contact)
        gone = await nora.get(path)
        assert gone.status_code in (401, 403), gone.text
        assert "under its master agreement" not in gone.text
    assert [e.action for e in events(stack, exception_id)] == ["requested"]


async def test_probe_a_partner_not_named_learns_nothing_from_404s_filters_or_counts(
    stack: Stack,
) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    missing = exception_id + 1000
    async with as_(stack, app, FAY) as fay:
        for action in ("", "/object", "/vote", "/decide", "/withdraw", "/redraw", "/approve"):
            body = {"reason": "We object as well.", "choice": "approve"}
            hidden = await (
                fay.get(f"/api/exceptions/{exception_id}")
                if not action
                else fay.post(f"/api/exceptions/{exception_id}{action}", json=body)
            )
            absent = await (
                fay.get(f"/api/exceptions/{missing}")
                if not action
                else fay.post(f"/api/exceptions/{missing}{action}", json=body)
            )
            assert hidden.status_code == absent.status_code == 404, (action, hidden.text)
            said = hidden.text.replace(str(exception_id), "N")
            assert said == absent.text.replace(str(missing), "N"), (action, said, absent.text)
        for params in (
            {"partner_id": "contoso"},
            {"partner_id": "northwind"},
            {"clause": "RoE 4.2"},
            {"state": "requested"},
            {"partner_id": "contoso", "clause": "roe 4.2", "state": "requested"},
            {"offset": "0", "limit": "500"},
        ):
            listed = await fay.get("/api/exceptions", params=params)
            assert listed.json() == {"exceptions": [], "total": 0}, params
        page = await fay.get("/exceptions", params={"partner": "contoso"})
        assert page.status_code == 200 and f"EXC-{exception_id}" not in page.text
        assert "under its master agreement" not in page.text
    async with as_(stack, app, NORA) as nora:
        # Its own filter narrows within what it reads: another partner's filter finds the
        # exceptions they share, nothing more.
        narrowed = await nora.get("/api/exceptions", params={"partner_id": "fabrikam"})
        assert narrowed.json()["total"] == 0


# --- hostile input -----------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return '{"partner_id": "contoso", "x": ' + "[" * depth + "]" * depth + "}"


async def test_probe_hostile_request_bodies_are_refused_naming_the_field(stack: Stack) -> None:
    app = make_app(stack)
    async with as_(stack, app, CARL) as carl:
        cases = {
            "until": [
                asked(until=20270101),
                asked(until=1e3),
                asked(until="maybe"),
                asked(until=None),
                asked(until=[2027, 1, 1]),
                asked(until="2027-02-30"),
                asked(until=date.today().isoformat()),
                asked(until="9999-12-31"),
            ],
            "clause": [
                asked(clause="Ro\u0415 4.2"),  # Cyrillic Ie
                asked(clause=42),
                asked(clause="RoE 4.2\x00"),
                asked(clause="%"),
                asked(clause="x" * 100_000),
            ],
            "reason": [asked(reason="x" * 100_000), asked(reason={"a": 1})],
            "territory": [asked(territory="US-NY-METRO\x00"), asked(territory="%")],
            "partner_id": [asked(partner_id="contoso\x00"), asked(partner_id=["contoso"])],
        }
        for field, bodies in cases.items():
            for body in bodies:
                refused = await carl.post("/api/exceptions", json=body)
                _clean(refused, where=f"{field} {str(body)[:80]}")
                assert refused.status_code in (403, 422), (field, refused.text[:300])
                if refused.status_code == 422:
                    named = fields(refused)
                    assert any(k.split(".")[0] == field for k in named), (field, named)
        for raw in (_nested(5_000), "[]", "", "null", '"x"', "{", json.dumps(asked()) * 2):
            refused = await carl.post(
                "/api/exceptions", content=raw, headers={"content-type": "application/json"}
            )
            _clean(refused, where=raw[:40])
            assert 400 <= refused.status_code < 500, (raw[:40], refused.status_code)
    assert _stored(stack) == []


async def test_probe_hostile_action_bodies_and_ids_are_refused_never_a_500(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await in_review(stack, app)
    path = f"/api/exceptions/{exception_id}"
    members, chair = panel_of(stack, exception_id)
    async with as_(stack, app, email_of(stack, members[0])) as voter:
        for body, field in (
            ({"choice": "maybe", "reasons": WHY}, "choice"),
            ({"choice": 1, "reasons": WHY}, "choice"),
            ({"choice": "approve", "reasons": ["x"]}, "reasons"),
            ({"choice": "approve", "reasons": "x" * 100_000}, "reasons"),
            ({"choice": "approve", "reasons": WHY + "\x00"}, "reasons"),
            ({"choice": "approve", "reasons": WHY, "extra": {"a": [1]}}, "extra"),
        ):
            refused = await voter.post(f"{path}/vote", json=body)
            _clean(refused, where=str(body)[:60])
            assert refused.status_code == 422, (body, refused.text[:300])
            assert field in {k.split(".")[0] for k in fields(refused)}, (field, refused.text)
        deep = await voter.post(
            f"{path}/vote", content=_nested(5_000), headers={"content-type": "application/json"}
        )
        _clean(deep, where="nested")
        assert 400 <= deep.status_code < 500
    async with as_(stack, app, email_of(stack, chair)) as boss:
        refused = await boss.post(f"{path}/decide", json={"choice": "maybe", "reason": WHY})
        assert refused.status_code == 422 and "choice" in fields(refused)
    async with as_(stack, app, ADMIN) as admin:
        for odd in ("-1", "0", str(2**31), str(2**63), str(10**30), "1e3", "abc", "1.5", "0x1"):
            for method, url in (
                ("get", f"/api/exceptions/{odd}"),
                ("post", f"/api/exceptions/{odd}/withdraw"),
                ("get", f"/exceptions/{odd}"),
            ):
                kwargs = {"json": {"reason": "We take it back now."}} if method == "post" else {}
                answer = await getattr(admin, method)(url, **kwargs)
                _clean(answer, where=url)
                assert answer.status_code in (404, 422), (url, answer.status_code)
        for params in (
            {"state": "bogus"},
            {"limit": "0"},
            {"limit": "abc"},
            {"offset": "-1"},
            {"limit": "1e3"},
        ):
            answer = await admin.get("/api/exceptions", params=params)
            _clean(answer, where=str(params))
            assert answer.status_code == 422, (params, answer.text)
            assert set(fields(answer)) & set(params), (params, answer.text)
        for params in (
            {"partner_id": "contoso\x00"},
            {"clause": "%"},
            {"clause": "_"},
            {"clause": "\\"},
            {"clause": "RoE 4.%"},
            {"partner_id": "%"},
        ):
            answer = await admin.get("/api/exceptions", params=params)
            _clean(answer, where=str(params))
            assert answer.status_code in (200, 422), (params, answer.text)
            if answer.status_code == 200:
                assert answer.json()["total"] == 0, params
        page = await admin.get("/exceptions", params={"state": "bogus"})
        _clean(page, where="page state=bogus")
        assert page.status_code == 422
    assert [e.action for e in events(stack, exception_id)][-1] == "panel_drawn"


# --- CSRF ----------------------------------------------------------------------------------------


async def test_probe_every_form_and_cookie_post_needs_the_csrf_token(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    carl = await signed_in(app, CARL)
    form = {k: v for k, v in asked().items()}
    targets = (
        ("/exceptions", form),
        (f"/exceptions/{exception_id}/withdraw", {"reason": "We take it back now."}),
        (f"/exceptions/{exception_id}/object", {"reason": "We object to this."}),
    )
    for url, data in targets:
        for token in (None, "forged-token"):
            sent = data if token is None else {"csrftoken": token, **data}
            answer = await carl.http.post(url, data=sent)
            assert answer.status_code == 403, (url, token, answer.status_code)
    for url, body in (
        ("/api/exceptions", asked()),
        (f"/api/exceptions/{exception_id}/withdraw", {"reason": "We take it back now."}),
    ):
        answer = await carl.http.post(url, json=body)
        assert answer.status_code == 403, (url, answer.status_code, answer.text[:200])
    await carl.close()
    assert [e.action for e in events(stack, exception_id)] == ["requested"]
    assert len(_stored(stack)) == 1


# --- ended roles at the HTTP level ---------------------------------------------------------------


async def test_probe_a_member_taken_off_the_board_after_loading_the_page_cannot_vote(
    stack: Stack,
) -> None:
    app = make_app(stack)
    exception_id = await in_review(stack, app)
    members, _ = panel_of(stack, exception_id)
    page_path = f"/exceptions/{exception_id}"
    voter = await signed_in(app, email_of(stack, members[0]))
    page = await voter.get(page_path)
    assert 'id="form-vote"' in page.text
    with stack.sessions.begin() as session:
        person = session.get(Person, members[0])
        assert person is not None
        person.role = Role.COMPLIANCE
        session.add(person)
    cast = await voter.post(f"{page_path}/vote", {"choice": "approve", "reasons": WHY})
    assert cast.status_code in (303, 401, 403), cast.status_code
    if cast.status_code == 303:
        assert "/login" in cast.headers["location"]
    await voter.close()
    assert "vote_cast" not in [e.action for e in events(stack, exception_id)]


async def test_probe_two_decide_forms_at_once_one_decision(stack: Stack) -> None:
    import asyncio

    app = make_app(stack)
    exception_id = await in_review(stack, app)
    page_path = f"/exceptions/{exception_id}"
    members, chair = panel_of(stack, exception_id)
    for member in members:
        async with as_(stack, app, email_of(stack, member)) as voter:
            cast = await voter.post(
                f"/api/exceptions/{exception_id}/vote", json={"choice": "approve", "reasons": WHY}
            )
            assert cast.status_code == 200, cast.text
    await event(stack, exception_id, "ballot_opened")
    one = await signed_in(app, email_of(stack, chair))
    two = await signed_in(app, email_of(stack, chair))
    first, second = await asyncio.gather(
        one.post(f"{page_path}/decide", {"choice": "approve", "reason": WHY}),
        two.post(f"{page_path}/decide", {"choice": "deny", "reason": WHY}),
    )
    assert sorted([first.status_code, second.status_code]) == [303, 409], (
        first.text[:300],
        second.text[:300],
    )
    await one.close()
    await two.close()
    ends = [e.action for e in events(stack, exception_id) if e.action in ("approved", "denied")]
    assert len(ends) == 1
    assert row(stack, exception_id).state.value == ends[0]


# --- the precedents' board exceptions and the health page --------------------------------------

SECRET = "Granted because of the zanzibar migration"


def _decided(stack: Stack) -> int:
    until = date.today() + timedelta(days=30)
    with stack.sessions.begin() as session:
        stored = ChannelException(
            partner_id="contoso",
            clause="RoE 4.2 Exclusive territories are served only by their holder",
            scope_kind="territory",
            scope_ref="US-NY-METRO",
            affected_partner_ids=["northwind"],
            reason="The customer asked for contoso's team by name.",
            requested_by=CARL,
            requested_at=datetime.now(UTC) - timedelta(days=20),
            until=until,
            expires_at=end_of(until, "UTC"),
            playbook_version="2026.2",
            state=ExceptionState.APPROVED,
            decided_by="chair@vendor.example",
            decided_at=datetime.now(UTC) - timedelta(days=1),
            decision_reason=SECRET,
        )
        session.add(stored)
        session.flush()
        assert stored.id is not None
        return stored.id


async def test_probe_the_board_s_decided_exceptions_stay_with_those_who_read_them(
    stack: Stack,
) -> None:
    app = make_app(stack)
    exception_id = _decided(stack)
    for login in (CARL, NORA, FAY, MEDIATOR):
        async with as_(stack, app, login) as client:
            found = await client.get("/api/precedents", params={"q": "zanzibar"})
            assert found.status_code == 200, (login, found.text[:200])
            assert "exceptions" not in found.json() and "zanzibar" not in found.text.lower()
            health = await client.get("/reports/channel-health")
            assert health.status_code in (403, 404), (login, health.status_code)
        browser = await signed_in(app, login)
        page = await browser.get("/precedents", params={"q": "zanzibar"})
        assert page.status_code == 200
        assert "zanzibar" not in page.text.replace('value="zanzibar"', "").lower(), login
        assert f"EXC-{exception_id}" not in page.text and "Board exceptions" not in page.text
        health_page = await browser.get("/reports/channel-health")
        assert health_page.status_code in (403, 404), login
        assert f"EXC-{exception_id}" not in health_page.text
        await browser.close()
    async with as_(stack, app, BOARD) as board:
        found = (await board.get("/api/precedents", params={"q": "zanzibar"})).json()
        assert [h["id"] for h in found["exceptions"]["hits"]] == [exception_id]
        for q in ("%", "_", "\\", "%%", "_%_", "'", '"', "-", "*"):
            odd = await board.get("/api/precedents", params={"q": q})
            _clean(odd, where=f"q={q}")
            if odd.status_code == 200:
                assert odd.json().get("exceptions", {}).get("total", 0) == 0, q
        for params in (
            {"clause": "RoE 4.2\x00"},
            {"q": "zanzibar\x00"},
            {"state": "bogus"},
            {"clause": "x" * 300},
            {"state": "requested"},
        ):
            odd = await board.get("/api/precedents", params=params)
            _clean(odd, where=str(params)[:60])
            assert odd.status_code in (200, 422), (params, odd.status_code)
        browser = await signed_in(app, BOARD)
        for params in ({"clause": "RoE 4.2\x00"}, {"q": "%"}, {"state": "bogus"}):
            odd = await browser.get("/precedents", params=params)
            _clean(odd, where=f"page {params}")
        await browser.close()
    async with as_(stack, app, COMPLIANCE) as compliance:
        health = await compliance.get("/reports/channel-health")
        assert health.status_code == 200
        browser = await signed_in(app, COMPLIANCE)
        page = await browser.get("/reports/channel-health")
        assert page.status_code == 200 and f"EXC-{exception_id}" in page.text
        await browser.close()


async def test_probe_partners_do_not_read_why_board_members_could_not_sit(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    with stack.sessions.begin() as session:
        chairs = session.exec(select(Person).where(Person.function == "chair")).all()
        assert chairs
        for chair in chairs:
            chair.declared_conflicts = [*chair.declared_conflicts, "contoso"]
            session.add(chair)
    await stack.env.sleep(timedelta(days=8))
    incomplete = await event(stack, exception_id, "panel_incomplete")
    assert "declared a conflict" in incomplete.summary
    async with as_(stack, app, ADMIN) as admin:
        inside = (await admin.get(f"/api/exceptions/{exception_id}")).text
        assert "declared a conflict" in inside
    for login in (CARL, NORA):
        async with as_(stack, app, login) as partner:
            seen = await partner.get(f"/api/exceptions/{exception_id}")
            assert seen.status_code == 200
            assert "declared a conflict" not in seen.text, (login, seen.json()["history"])
        browser = await signed_in(app, login)
        page = await browser.get(f"/exceptions/{exception_id}")
        assert "declared a conflict" not in page.text, login
        await browser.close()


async def test_probe_refused_forms_come_back_as_pages_never_a_500(stack: Stack) -> None:
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    carl = await signed_in(app, CARL)
    form = {k: v for k, v in asked().items()}
    for changed in (
        {"partner_id": "northwind"},  # another partner's: 403
        {"until": "1e3"},
        {"until": "20270101"},
        {"until": ""},
        {"clause": "Ro\u0415 4.2"},
        {"clause": "RoE 4.2\x00"},
        {"territory": "%"},
        {"reason": "x" * 100_000},
        {"account": "ACME-001"},  # both scopes
    ):
        answer = await carl.post("/exceptions", {**form, **changed})
        _clean(answer, where=str(changed)[:60])
        assert answer.status_code in (403, 413, 422), (changed, answer.status_code)
    await carl.close()
    compliance = await signed_in(app, COMPLIANCE)
    for action in ("object", "vote", "decide", "withdraw", "redraw", "approve"):
        answer = await compliance.post(
            f"/exceptions/{exception_id}/{action}",
            {"reason": "Not mine to do at all.", "choice": "approve", "reasons": WHY},
        )
        _clean(answer, where=action)
        assert answer.status_code in (403, 404, 409), (action, answer.status_code)
    answer = await compliance.post("/exceptions", form)
    _clean(answer, where="compliance request")
    assert answer.status_code == 403
    await compliance.close()
    fay = await signed_in(app, FAY)
    for action in ("object", "withdraw"):
        answer = await fay.post(f"/exceptions/{exception_id}/{action}", {"reason": WHY})
        assert answer.status_code == 404 and "under its master agreement" not in answer.text
    await fay.close()
    assert [e.action for e in events(stack, exception_id)] == ["requested"]
    assert len(_stored(stack)) == 1


async def test_probe_acting_on_an_ended_exception_is_409_naming_action(stack: Stack) -> None:
    """Once the workflow has ended (withdrawn, denied), every action is refused 409 naming
    `action`, whatever Temporal answers an update to a closed workflow."""
    app = make_app(stack)
    exception_id = await requested_through_api(stack, app)
    path = f"/api/exceptions/{exception_id}"
    async with as_(stack, app, CARL) as carl:
        done = await carl.post(f"{path}/withdraw", json={"reason": "We take it back now."})
        assert done.status_code == 200, done.text
    await event(stack, exception_id, "withdrawn")
    # The workflow has ended: every answer below is Temporal's to a closed workflow.
    await stack.client.get_workflow_handle(f"exception-{exception_id}").result()
    for login, action, body in (
        (CARL, "withdraw", {"reason": "We take it back again."}),
        (NORA, "object", {"reason": "We object to it anyway."}),
        (ADMIN, "redraw", {"reason": "Draw it again please."}),
        (ADMIN, "withdraw", {"reason": "Withdrawn by the admins."}),
    ):
        async with as_(stack, app, login) as client:
            refused = await client.post(f"{path}/{action}", json=body)
            _clean(refused, where=f"{login} {action}")
            assert refused.status_code == 409, (login, action, refused.text)
            assert "action" in fields(refused)
        browser = await signed_in(app, login)
        page = await browser.post(f"/exceptions/{exception_id}/{action}", body)
        _clean(page, where=f"page {login} {action}")
        assert page.status_code == 409, (login, action, page.status_code)
        await browser.close()
    assert [e.action for e in events(stack, exception_id)] == ["requested", "withdrawn"]


async def test_probe_the_command_line_refuses_odd_input_in_one_line(stack: Stack) -> None:
    from tests.cli.test_cli import accord

    until = (date.today() + timedelta(days=60)).isoformat()

    def asking(**changed: str) -> list[str]:
        options = {
            "--as": CARL,
            "--partner": "contoso",
            "--clause": "RoE 4.2",
            "--territory": "US-NY-METRO",
            "--until": until,
            "--reason": "Acme's New York office buys only through Contoso under its agreement.",
            **changed,
        }
        return ["exceptions", "request", *[x for kv in options.items() for x in kv]]

    for args in (
        ["exceptions", "show", "--", "-1"],
        ["exceptions", "show", "abc"],
        ["exceptions", "show", "1e3"],
        ["exceptions", "show", str(2**63)],
        ["exceptions", "list", "--state", "bogus"],
        ["exceptions", "withdraw", str(2**31), "--as", CARL, "--reason", "We take it back."],
        ["exceptions", "vote", "1", "--as", BOARD, "--choice", "maybe", "--reasons", WHY],
        ["exceptions", "object", "1", "--as", "nobody@nowhere.example", "--reason", WHY],
        asking(**{"--until": "1e3"}),
        asking(**{"--until": "99999-01-01"}),
        asking(**{"--clause": "Ro\u0415 4.2"}),
        asking(**{"--territory": "%"}),
        asking(**{"--as": MEDIATOR}),
        asking(**{"--as": "nobody@nowhere.example"}),
        asking(**{"--partner": "nobody"}),
    ):
        code, out = await accord(stack, *args)
        assert code == 2, (args, out)
        assert "Traceback" not in out and "error" in out.lower(), (args, out)
    code, out = await accord(stack, "exceptions", "list", "--clause", "%")
    assert code == 0 and "no exceptions" in out, out
    assert _stored(stack) == []
