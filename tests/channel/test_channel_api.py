"""The channel-data API on both databases: a file imported in the background and followed to
its end, a bad file's problems by row and field with nothing written, rows posted as JSON, and
only admins, whatever the body."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from bench.channel_import import registrations_csv
from models.tables import DealRegistration
from tests.conftest import Stack
from tests.web_harness import api, make_app, token_for

ROWS = """external_id,partner_id,customer_name,customer_domain,country,amount,currency,status,registered_at,modified_at
DR-1,contoso,ACME Corp.,https://www.acme.com,US,125000.00,USD,approved,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z
DR-2,fabrikam,Acme Corporation,acme.com,US,99.5,USD,submitted,2026-11-03,2026-11-03T09:00:00+01:00
"""


async def _followed(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    location = answer.headers["location"]
    for _ in range(600):
        shown = (await client.get(location)).json()
        if shown["state"] in ("done", "refused"):
            return dict(shown)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the import never ended: {shown}")


def _count(stack: Stack) -> int:
    with stack.sessions.read() as session:
        return int(session.exec(select(func.count()).select_from(DealRegistration)).one())


async def test_a_file_is_imported_in_the_background_and_followed_to_its_end(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        sent = await client.post(
            "/api/channel/imports?kind=registration&name=regs.csv",
            content=ROWS.encode(),
            headers={"content-type": "text/csv"},
        )
        done = await _followed(client, sent)
        assert (done["state"], done["created"], done["file_name"]) == ("done", 2, "regs.csv")
        again = await _followed(
            client,
            await client.post(
                "/api/channel/imports?kind=registration",
                content=ROWS.encode(),
                headers={"content-type": "text/csv"},
            ),
        )
        assert (again["created"], again["unchanged"]) == (0, 2)
        bad = ROWS.replace("US,99.5", "USA,99.5").replace("DR-1,contoso", "DR-1,nobody")
        refused = await _followed(
            client,
            await client.post(
                "/api/channel/imports?kind=registration&name=bad.csv",
                content=bad.encode(),
                headers={"content-type": "text/csv"},
            ),
        )
        assert refused["state"] == "refused" and refused["problem_count"] == 2
        assert [p["said"] for p in refused["problems"]] == [
            "bad.csv, row 2, field partner_id: 'nobody' is no partner in the directory",
            "bad.csv, row 3, field country: is not a two-letter country code (ISO 3166, e.g. DE)"
            " ('USA')",
        ]
        listed = (await client.get("/api/channel/imports")).json()
        assert [i["state"] for i in listed] == ["refused", "done", "done"]
    assert _count(stack) == 2


async def test_a_large_file_shows_progress_and_a_second_waits_its_turn(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held at its second progress record (10,000 rows checked) by an event, the import shows
    that progress; a second file meanwhile is a 429; once it ends, the next is taken."""
    from accord.channel import imports

    reached, go = threading.Event(), threading.Event()
    recorded = imports._Reporter.state

    def held(self: Any, state: Any, done: int, total: int) -> None:
        recorded(self, state, done, total)
        if state.value == "reading" and done == 10_000:
            reached.set()
            go.wait(60)

    monkeypatch.setattr(imports._Reporter, "state", held)
    app = make_app(stack)
    data = registrations_csv(30_000).replace(b",DACH,", b",,")
    for n in range(1, 41):
        data = data.replace(f",p{n},".encode(), b",contoso,")
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        sent = await client.post(
            "/api/channel/imports?kind=registration",
            content=data,
            headers={"content-type": "text/csv"},
        )
        assert sent.status_code == 202, sent.text
        assert await asyncio.to_thread(reached.wait, 60)
        shown = (await client.get(sent.headers["location"])).json()
        assert (shown["state"], shown["rows_done"]) == ("reading", 10_000), shown
        busy = await client.post(
            "/api/channel/imports?kind=registration",
            content=ROWS.encode(),
            headers={"content-type": "text/csv"},
        )
        assert busy.status_code == 429, busy.text
        assert "another file import is running" in busy.json()["errors"][0]["message"]
        go.set()
        done = await _followed(client, sent)
        assert (done["created"], done["rows_done"], done["rows_total"]) == (30_000,) * 3, done
        again = await client.post(
            "/api/channel/imports?kind=registration",
            content=ROWS.encode(),
            headers={"content-type": "text/csv"},
        )
        assert again.status_code == 202


async def test_rows_posted_as_json_are_imported_or_refused_by_row_and_field(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    row = {
        "external_id": "DR-9",
        "partner_id": "contoso",
        "customer_name": "Globex",
        "status": "approved",
        "registered_at": "2026-11-02",
        "modified_at": "2026-11-02T10:00:00Z",
    }
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        bad = await client.post(
            "/api/channel/registration/rows",
            json=[row, {**row, "external_id": "DR-10", "amount": "12.345", "bogus": 1}],
        )
        assert bad.status_code == 422, bad.text
        assert {(e["field"], e["message"][:30]) for e in bad.json()["errors"]} == {
            ("rows[1].amount", "at most 2 decimal places"),
            ("rows[1].bogus", "is not a field of this kind of"),
        }
        assert _count(stack) == 0
        good = await client.post("/api/channel/registration/rows", json=[row])
        assert good.status_code == 201 and good.json()["created"] == 1, good.text
    assert _count(stack) == 1


@pytest.mark.parametrize(
    "login",
    ["maria.lopez@vendor.example", "carl@contoso.example", "carol.compliance@vendor.example"],
)
async def test_only_admins_import_and_a_stranger_s_body_is_never_read(
    stack: Stack, login: str
) -> None:
    app = make_app(stack)
    async with api(app, token_for(stack, login)) as client:
        for path, body in (
            ("/api/channel/imports?kind=registration", ROWS.encode()),
            ("/api/channel/registration/rows", b"[]"),
        ):
            answer = await client.post(
                path,
                content=body,
                headers={"content-type": "text/csv" if "imports" in path else "application/json"},
            )
            assert answer.status_code == 403, answer.text
        assert (await client.get("/api/channel/imports")).status_code == 403
        assert (await client.get("/api/channel/imports/1")).status_code == 403
    async with api(app) as anonymous:
        answer = await anonymous.post(
            "/api/channel/imports?kind=registration",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "text/csv"},
        )
        assert answer.status_code == 401
    assert _count(stack) == 0


@pytest.mark.parametrize(
    ("query", "headers", "body", "status", "field"),
    [
        ("", {"content-type": "text/plain"}, ROWS.encode(), 422, "content-type"),
        ("", {"content-type": "text/csv"}, ROWS.encode(), 422, "kind"),
        (
            "?kind=registration&format=api",
            {"content-type": "text/csv"},
            ROWS.encode(),
            422,
            "format",
        ),
        ("?kind=nothing", {"content-type": "text/csv"}, ROWS.encode(), 422, "kind"),
        (
            "",
            {"content-type": "application/json"},
            b'{"records": [{"attributes": {"type": "Contract"}}]}',
            422,
            "kind",
        ),
        (
            "?kind=registration&name=" + "x" * 300,
            {"content-type": "text/csv"},
            ROWS.encode(),
            422,
            "name",
        ),
    ],
    ids=[
        "content type",
        "no kind",
        "api format",
        "unknown kind",
        "unknown salesforce type",
        "long name",
    ],
)
async def test_a_file_import_without_what_it_needs_is_a_422_naming_it(
    stack: Stack, query: str, headers: dict[str, str], body: bytes, status: int, field: str
) -> None:
    app = make_app(stack)
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        answer = await client.post(f"/api/channel/imports{query}", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert any(field in e["field"] for e in answer.json()["errors"]), answer.json()


async def test_a_file_over_the_ceiling_is_a_413_and_nothing_is_recorded(stack: Stack) -> None:
    stack.settings.channel_import_max_bytes = 64 * 1024
    app = make_app(stack)
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        answer = await client.post(
            "/api/channel/imports?kind=registration",
            content=ROWS.encode() * 2000,
            headers={"content-type": "text/csv"},
        )
        assert answer.status_code == 413, answer.text
        assert (await client.get("/api/channel/imports")).json() == []


async def test_a_deeply_nested_or_huge_salesforce_export_is_refused_not_a_crash(
    stack: Stack,
) -> None:
    app = make_app(stack)
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        deep = await client.post(
            "/api/channel/imports?kind=opportunity",
            content=b"[" * 200_000 + b"]" * 200_000,
            headers={"content-type": "application/json"},
        )
        shown = await _followed(client, deep)
        assert shown["state"] == "refused"
        assert "deeper" in shown["problems"][0]["problem"]
        health = await client.get("/health")
        assert health.status_code == 200


async def test_an_admin_works_the_alert_queue_and_a_dismissal_holds_across_imports(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    rows = ROWS.replace("acme.com,US,99.5", "acme.com,US,99.5")
    async with api(app, token_for(stack, "ada.admin@vendor.example")) as client:
        await _followed(
            client,
            await client.post(
                "/api/channel/imports?kind=registration",
                content=rows.encode(),
                headers={"content-type": "text/csv"},
            ),
        )
        queue = (await client.get("/api/channel/alerts")).json()
        assert queue["total"] == 1
        (alert,) = queue["alerts"]
        assert alert["kind"] == "same_customer" and alert["objects"] == [
            "registration:DR-1",
            "registration:DR-2",
        ]
        assert alert["evidence"]["objects"][0]["customer"] == "ACME Corp."
        assert (await client.get("/api/channel/alerts?partner=fabrikam")).json()["total"] == 1
        assert (await client.get("/api/channel/alerts?partner=northwind")).json()["total"] == 0
        bad = await client.post(
            f"/api/channel/alerts/{alert['id']}/dismiss", json={"reason": "\x00"}
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"
        done = await client.post(
            f"/api/channel/alerts/{alert['id']}/dismiss",
            json={"reason": "Two divisions of Acme, agreed at the partner council"},
        )
        assert done.status_code == 200 and done.json()["state"] == "dismissed", done.text
        again = await client.post(
            f"/api/channel/alerts/{alert['id']}/dismiss", json={"reason": "once more"}
        )
        assert again.status_code == 409
        assert "dismissed already (by ada.admin" in again.json()["errors"][0]["message"]
        missing = await client.post("/api/channel/alerts/999999/dismiss", json={"reason": "gone"})
        assert missing.status_code == 404
        later = rows.replace("2026-11-03T09:00:00+01:00", "2026-11-09T09:00:00Z")
        reimported = await _followed(
            client,
            await client.post(
                "/api/channel/imports?kind=registration",
                content=later.encode(),
                headers={"content-type": "text/csv"},
            ),
        )
        assert (reimported["updated"], reimported["state"]) == (1, "done")
        assert (await client.get("/api/channel/alerts")).json()["total"] == 0
        shown = (await client.get("/api/channel/alerts?state=dismissed")).json()["alerts"]
        assert [a["decision_reason"] for a in shown] == [
            "Two divisions of Acme, agreed at the partner council"
        ]
    async with api(app, token_for(stack, "carol.compliance@vendor.example")) as compliance:
        refused = await compliance.post(
            f"/api/channel/alerts/{alert['id']}/dismiss", json={"reason": "not mine"}
        )
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("query", "body", "field", "said"),
    [
        ("?kind=registration&name=a%00b", ROWS.encode(), "name", "NUL"),
        ("?kind=registration&name=a%0D%0Ab", ROWS.encode(), "name", "line break"),
        (
            "?name=x.json&format=salesforce",
            b'{"records": [' + b"9" * 5000 + b"]}",
            "body",
            "4,300 digits",
        ),
    ],
    ids=["NUL in the name", "CRLF in the name", "a huge number, kind unsaid"],
)
async def test_a_hostile_name_or_export_is_a_422_on_both_databases(
    stack_on_both: Stack, query: str, body: bytes, field: str, said: str
) -> None:
    """Adversarial probe: a NUL in ?name= was a 500 on PostgreSQL and stored on SQLite; a
    number of 5,000 digits left the kind unread and said the wrong thing."""
    app = make_app(stack_on_both)
    content_type = "application/json" if "salesforce" in query else "text/csv"
    async with api(app, token_for(stack_on_both, "ada.admin@vendor.example")) as client:
        answer = await client.post(
            f"/api/channel/imports{query}", content=body, headers={"content-type": content_type}
        )
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["errors"]
        assert error["field"] == field and said in error["message"], error
        assert (await client.get("/api/channel/imports")).json() == []
