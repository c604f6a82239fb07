"""Sessions, CSRF, tokens and bad input: a clear error, nothing written, no stack trace."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

from sqlmodel import func, select

from models.tables import Dispute, Evidence, EvidenceBlob
from tests.conftest import Stack
from tests.web_harness import (
    PASSWORD,
    Browser,
    api,
    filing_form,
    make_app,
    messages,
    signed_in,
    token_for,
)
from tests.workflows.test_dispute_paths import in_mediation
from web.app import create_app

CLAIMANT = "nora@northwind.example"
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def dispute_count(stack: Stack) -> int:
    with stack.sessions.read() as session:
        return session.exec(select(func.count()).select_from(Dispute)).one()


async def test_wrong_password_and_unknown_account_get_the_same_answer(stack: Stack) -> None:
    app = make_app(stack)
    for login, password in ((CLAIMANT, "wrong"), ("nobody@nowhere.example", PASSWORD)):
        browser = Browser(app)
        response = await browser.sign_in(login, password)
        assert response.status_code == 401
        assert "do not match an active account" in response.text
        assert (await browser.get("/disputes")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(stack: Stack) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    response = await browser.http.post("/disputes/new", data=filing_form())
    assert response.status_code == 403
    assert "could not be verified" in response.text
    response = await browser.http.post(
        "/disputes/new",
        data={"csrftoken": "forged", **filing_form()},
        files={"files": ("a.txt", b"evidence", "text/plain")},
    )
    assert response.status_code == 403
    response = await browser.http.post(
        "/disputes/new", data={"csrftoken": "forged", **filing_form()}
    )
    assert response.status_code == 403
    assert dispute_count(stack) == 0
    # Sign-in itself is protected (login CSRF): no token, no session.
    fresh = Browser(app)
    response = await fresh.http.post(
        "/login", data={"login": CLAIMANT, "password": PASSWORD, "next": "/"}
    )
    assert response.status_code == 403


async def test_a_forged_session_cookie_is_treated_as_signed_out(stack: Stack) -> None:
    app = make_app(stack)
    browser = Browser(app)
    payload = base64.b64encode(json.dumps({"login": "ada.admin@vendor.example"}).encode())
    browser.http.cookies.set("accord_session", payload.decode() + ".forged.signature")
    response = await browser.get("/admin/directory")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    async with api(app) as client:
        client.cookies.set("accord_session", payload.decode() + ".forged.signature")
        response = await client.get("/api/me")
        assert response.status_code == 401
        assert response.json()["type"] == "urn:accord:problem:unauthenticated"


async def test_an_expired_session_asks_to_sign_in_again(stack: Stack) -> None:
    stack.settings.session_max_age_seconds = 1
    app = create_app(stack.settings, stack.services, stack.client)
    make_app(stack)  # accounts
    browser = await signed_in(app, CLAIMANT)
    assert (await browser.get("/disputes")).status_code == 200
    await asyncio.sleep(1.2)
    response = await browser.get("/disputes")
    assert response.status_code == 303
    assert "why=expired" in response.headers["location"]
    page = await browser.get(response.headers["location"])
    assert "Your session has ended" in page.text


async def test_signing_out_everywhere_ends_other_sessions_and_tokens_can_be_revoked(
    stack: Stack,
) -> None:
    app = make_app(stack)
    laptop = await signed_in(app, CLAIMANT)
    phone = await signed_in(app, CLAIMANT)
    await asyncio.sleep(0.01)
    response = await laptop.post("/account/sign-out-everywhere", {})
    assert response.status_code == 303
    assert (await phone.get("/disputes")).status_code == 303
    token = token_for(stack, CLAIMANT)
    async with api(app, token) as client:
        assert (await client.get("/api/me")).status_code == 200
        listed = (await client.get("/api/tokens")).json()
        response = await client.delete(f"/api/tokens/{listed[0]['id']}")
        assert response.status_code == 204
        assert (await client.get("/api/me")).status_code == 401


async def test_a_redirect_after_sign_in_never_leaves_the_site(stack: Stack) -> None:
    app = make_app(stack)
    browser = Browser(app)
    await browser.get("/login")
    response = await browser.http.post(
        "/login",
        data={
            "csrftoken": browser.csrf,
            "login": CLAIMANT,
            "password": PASSWORD,
            "next": "//evil.example/x",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/disputes"


async def test_invalid_filing_keeps_what_was_typed_names_each_field_and_files_nothing(
    stack: Stack,
) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    response = await browser.post(
        "/disputes/new",
        filing_form(summary="x", amount_at_stake="-3", facts=f"{SCRIPT} and more facts here"),
    )
    assert response.status_code == 422
    errors = messages(response.text)
    assert any("at least 5 characters" in e for e in errors)
    assert any("greater than or equal to 0" in e for e in errors)
    assert "&lt;script&gt;alert" in response.text  # what was typed is kept, inert
    assert SCRIPT not in response.text
    assert dispute_count(stack) == 0


async def test_uploads_over_the_limits_or_of_the_wrong_type_are_refused_by_name(
    stack: Stack,
) -> None:
    stack.settings.upload_max_bytes = 1000
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    cases = (
        (("big.txt", b"x" * 2000, "text/plain"), "big.txt is 2,000 bytes; the limit is 1,000"),
        (("tool.exe", b"MZ\x90\x00", "application/x-msdownload"), "type application/x-msdownload"),
        (("fake.pdf", b"<html>not a pdf</html>", "application/pdf"), "not application/pdf"),
    )
    for upload, expected in cases:
        response = await browser.post("/disputes/new", filing_form(), files={"files": upload})
        assert response.status_code == 422, upload
        assert any(expected in m for m in messages(response.text)), messages(response.text)
    assert dispute_count(stack) == 0
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(EvidenceBlob)).one() == 0


async def test_malformed_requests_get_a_clear_error_not_a_crash(stack: Stack) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    response = await browser.http.post(
        "/disputes/new",
        content=b"--broken\r\nnot really multipart",
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert response.status_code in (400, 403, 422)
    assert "Traceback" not in response.text
    response = await browser.http.post(
        "/disputes/new",
        content=b"csrftoken=%ff%fe&summary=\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (400, 403, 422)
    token = token_for(stack, CLAIMANT)
    async with api(app, token) as client:
        response = await client.post(
            "/api/disputes", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        response = await client.get("/api/disputes", params={"stage": "nonsense", "page": "0"})
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"stage", "page"}


async def test_script_typed_anywhere_is_inert_in_pages_and_email(stack: Stack) -> None:
    app = make_app(stack)
    filed = await stack.file(summary=f"Deal {SCRIPT[:60]}", facts=f"Facts with {SCRIPT}")
    mediator = await in_mediation(stack, filed.number)
    await stack.wait_for_event(filed.number, "assignment_accepted")
    browser = await signed_in(app, f"{mediator}@vendor.example")
    response = await browser.post(
        f"/disputes/{filed.number}/actions/add-note", {"text": SCRIPT, "visibility": "shared"}
    )
    assert response.status_code == 303
    claimant = await signed_in(app, CLAIMANT)
    for path in (f"/disputes/{filed.number}", f"/disputes/{filed.number}/timeline", "/disputes"):
        page = (await claimant.get(path)).text
        assert "<script>alert" not in page
        assert "<img src=x onerror" not in page
    await stack.mail.wait_for(CLAIMANT, filed.number)
    await stack.mail_settled()
    for message in stack.mail.messages:
        html = message.get_body(preferencelist=("html",))
        if html is not None:
            assert "<script>alert" not in html.get_content()


async def test_evidence_is_served_as_an_attachment_never_inline(stack: Stack) -> None:
    app = make_app(stack)
    filed = await stack.file()
    await stack.wait_for(filed.number, lambda s: s.stage.value != "filed")
    browser = await signed_in(app, CLAIMANT)
    response = await browser.post(
        f"/disputes/{filed.number}/evidence",
        {"visibility": "parties"},
        files={"files": ("page.txt", b"<html><script>alert(1)</script></html>", "text/plain")},
    )
    assert response.status_code == 303, response.text
    with stack.sessions.read() as session:
        item = session.exec(select(Evidence)).one()
    response = await browser.get(f"/disputes/{filed.number}/evidence/{item.id}")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith("text/plain")


async def test_a_request_body_over_the_limit_is_refused_before_it_is_stored(stack: Stack) -> None:
    stack.settings.upload_max_bytes = 10_000
    stack.settings.upload_max_files = 2
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    limit = 2 * 10_000 + 1024 * 1024
    response = await browser.post(
        "/disputes/new",
        filing_form(),
        files={"files": ("huge.txt", b"x" * (limit + 1), "text/plain")},
    )
    assert response.status_code == 413
    assert "larger than this server accepts" in response.text
    assert response.headers["content-type"].startswith("text/html")

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"y" * 8192  # chunked: no Content-Length to judge by

    async with api(app, token_for(stack, CLAIMANT)) as client:
        response = await client.post(
            "/api/disputes", content=endless(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["type"] == "urn:accord:problem:too-large"
    assert dispute_count(stack) == 0
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(EvidenceBlob)).one() == 0


async def test_a_link_from_an_email_leads_through_sign_in_to_the_dispute(stack: Stack) -> None:
    app = make_app(stack)
    filed = await stack.file()
    acknowledgement = await stack.mail.wait_for(CLAIMANT, filed.number)
    text = acknowledgement.get_body(preferencelist=("plain",))
    assert text is not None
    link = next(w for w in text.get_content().split() if w.startswith("http"))
    path = link.removeprefix(stack.settings.resolved_base_url())
    assert path == f"/disputes/{filed.number}"
    browser = Browser(app)
    response = await browser.get(path)
    assert response.status_code == 303
    login_page = await browser.get(response.headers["location"])
    assert f'name="next" value="/disputes/{filed.number}"' in login_page.text
    response = await browser.http.post(
        "/login",
        data={"csrftoken": browser.csrf, "login": CLAIMANT, "password": PASSWORD, "next": path},
    )
    assert response.headers["location"] == path
    assert (await browser.get(path)).status_code == 200
