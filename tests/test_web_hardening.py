"""Web hardening (issue 15, item 4, part A): every state-changing request is CSRF-checked
whatever its content type, sign-in is throttled per account and per client address, sign-out
ends the session on the server, and every response carries the security headers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from models.tables import ApiToken
from tests.conftest import Stack
from tests.web_harness import Browser, api, make_app, signed_in, token_for

CLAIMANT = "nora@northwind.example"
OTHER = "carl@contoso.example"
ADMIN = "ada.admin@vendor.example"
WRONG_WORDS = "That email and password do not match an active account."


# --- CSRF -----------------------------------------------------------------------------------

BODIES = ("multipart", "urlencoded", "text/plain", "none")


def _request(kind: str, fields: dict[str, str]) -> dict[str, Any]:
    """httpx arguments sending `fields` as a body of this kind."""
    if kind == "multipart":
        # (None, value) parts force multipart/form-data even without a file.
        return {"files": {k: (None, v) for k, v in (fields or {"x": "y"}).items()}}
    if kind == "urlencoded":
        return {"data": fields}
    if kind == "text/plain":
        text = "\r\n".join(f"{k}={v}" for k, v in fields.items())
        return {"content": text.encode(), "headers": {"content-type": "text/plain"}}
    return {}


async def _revocable(stack: Stack, browser: Browser) -> tuple[str, int]:
    """The path revoking a fresh token of the browser's account, and the token's id."""
    token_for(stack, CLAIMANT)
    with stack.sessions.read() as session:
        token_id = session.exec(select(ApiToken.id).where(ApiToken.login == CLAIMANT)).first()
    assert token_id is not None
    return f"/account/tokens/{token_id}/revoke", token_id


def _revoked(stack: Stack, token_id: int) -> bool:
    with stack.sessions.read() as session:
        row = session.get(ApiToken, token_id)
        return row is not None and row.revoked_at is not None


@pytest.mark.parametrize("kind", BODIES)
async def test_every_state_changing_request_is_checked_whatever_its_content_type(
    stack: Stack, kind: str
) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    revoke, token_id = await _revocable(stack, browser)
    for path in (revoke, "/account/sign-out-everywhere", "/logout"):
        for fields in ({}, {"csrftoken": "forged"}):
            response = await browser.http.post(path, **_request(kind, fields))
            assert response.status_code == 403, (path, kind, fields, response.status_code)
            assert "could not be verified" in response.text
        # Nothing happened: the session still works and the token still stands.
        assert (await browser.get("/disputes")).status_code == 200, (path, kind)
        assert not _revoked(stack, token_id)
    # The same forms with the browser's own token go through, multipart included.
    if kind in ("multipart", "urlencoded"):
        response = await browser.http.post(revoke, **_request(kind, {"csrftoken": browser.csrf}))
        assert response.status_code == 303
        assert _revoked(stack, token_id)
        response = await browser.http.post("/logout", **_request(kind, {"csrftoken": browser.csrf}))
        assert response.status_code == 303
        assert (await browser.get("/disputes")).status_code == 303


async def test_the_api_with_a_session_cookie_needs_the_token_but_a_bearer_token_does_not(
    stack: Stack,
) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    _, token_id = await _revocable(stack, browser)
    # A browser's cookies on the JSON API: refused without the token, whatever the body.
    for kind in BODIES:
        response = await browser.http.request(
            "DELETE", f"/api/tokens/{token_id}", **_request(kind, {})
        )
        assert response.status_code == 403, kind
        assert response.headers["content-type"].startswith("application/problem+json")
    assert not _revoked(stack, token_id)
    response = await browser.http.delete(
        f"/api/tokens/{token_id}", headers={"x-csrftoken": browser.csrf}
    )
    assert response.status_code == 204
    # A bearer token is no ambient credential: a cross-site page cannot make a browser send it.
    token = token_for(stack, CLAIMANT)
    async with api(app, token) as client:
        listed = (await client.get("/api/tokens")).json()
        response = await client.request(
            "DELETE", f"/api/tokens/{listed[0]['id']}", files={"x": (None, "y")}
        )
        assert response.status_code == 204


# --- security headers -----------------------------------------------------------------------


async def test_every_response_carries_the_security_headers(stack: Stack) -> None:
    stack.settings.upload_max_bytes = 1000
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    token = token_for(stack, CLAIMANT)
    answers = {
        "login page": await Browser(app).get("/login"),
        "private page": await browser.get("/disputes"),
        "not found page": await browser.get("/disputes/DSP-0000-000000"),
        "csrf refusal": await browser.http.post("/logout"),
        "too large": await browser.http.post(
            "/disputes/new",
            content=b"x" * 20_000_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        "redirect": await Browser(app).get("/disputes"),
        "static": await browser.get("/static/style.css"),
    }
    async with api(app, token) as client:
        answers["api"] = await client.get("/api/me")
        answers["api error"] = await client.get("/api/disputes/nope")
        answers["api docs"] = await client.get("/api/docs")
    for what, response in answers.items():
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, what
        assert "default-src 'self'" in csp, what
        assert response.headers.get("x-content-type-options") == "nosniff", what
        assert response.headers.get("referrer-policy") == "same-origin", what
        assert response.headers.get("x-frame-options") == "DENY", what
        cache = response.headers.get("cache-control", "")
        if what == "static":
            assert "no-store" not in cache
        else:
            assert cache == "no-store", (what, cache)
    # Pages need no inline script or style: the policy allows none.
    csp = answers["private page"].headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
