"""Web hardening (issue 15, item 4, part A): every state-changing request is CSRF-checked
whatever its content type, sign-in is throttled per account and per client address, sign-out
ends the session on the server, and every response carries the security headers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlmodel import col, select

from accord.platform.settings import Settings
from models.enums import Role
from models.tables import AccountEvent, ApiToken, Person, WebSession
from tests.conftest import Stack
from tests.web_harness import PASSWORD, Browser, api, make_app, signed_in, token_for

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


# --- sign-out ends the session on the server --------------------------------------------------


def _copy(app: FastAPI, browser: Browser) -> Browser:
    """Another client holding a copy of the browser's cookies (a stolen or backed-up cookie)."""
    thief = Browser(app)
    for name, value in browser.http.cookies.items():
        thief.http.cookies.set(name, value)
    return thief


async def test_a_cookie_copied_before_sign_out_no_longer_works(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    copy = _copy(app, browser)
    assert (await copy.get("/disputes")).status_code == 200
    assert (await browser.post("/logout", {})).status_code == 303
    response = await copy.get("/disputes")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    async with api(app) as client:
        for name, value in copy.http.cookies.items():
            client.cookies.set(name, value)
        response = await client.get("/api/me")
        assert response.status_code == 401
    # The copy cannot act either (its CSRF token is still valid: only the session ended).
    response = await copy.post("/account/tokens", {"name": "after sign-out"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    with stack.sessions.read() as session:
        assert session.exec(select(WebSession).where(WebSession.login == CLAIMANT)).all() == []


async def test_signing_in_again_ends_the_session_the_browser_had(stack: Stack) -> None:
    app = make_app(stack)
    browser = await signed_in(app, CLAIMANT)
    copy = _copy(app, browser)
    assert (await browser.sign_in(OTHER)).status_code == 303
    assert (await copy.get("/disputes")).status_code == 303
    assert (await browser.get("/api/me", headers={"accept": "application/json"})).status_code == 200
    with stack.sessions.read() as session:
        assert session.exec(select(WebSession.login)).all() == [OTHER]


async def test_signing_out_everywhere_ends_copies_of_every_session(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app = make_app(stack)
    laptop = await signed_in(app, CLAIMANT)
    phone = await signed_in(app, CLAIMANT)
    colleague = await signed_in(app, OTHER)
    laptop_copy, phone_copy = _copy(app, laptop), _copy(app, phone)
    assert (await laptop.post("/account/sign-out-everywhere", {})).status_code == 303
    for client in (laptop, laptop_copy, phone, phone_copy):
        assert (await client.get("/disputes")).status_code == 303
    assert (await colleague.get("/disputes")).status_code == 200


async def test_a_session_ends_when_the_role_or_the_person_behind_it_changes(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app = make_app(stack)
    mediator = await signed_in(app, "maria.lopez@vendor.example")
    admin = await signed_in(app, ADMIN)
    assert (await mediator.get("/inbox")).status_code == 200
    with stack.sessions.begin() as session:
        person = session.exec(
            select(Person).where(Person.email == "maria.lopez@vendor.example")
        ).one()
        person.role = Role.COMPLIANCE
        session.add(person)
    response = await mediator.get("/disputes")
    assert response.status_code == 303
    assert "why=expired" in response.headers["location"]
    # Disabled by an admin: the admin's own session goes on, the disabled one's ends.
    other = await signed_in(app, "kenji.sato@vendor.example")
    with stack.sessions.begin() as session:
        mario = session.exec(
            select(Person).where(Person.email == "kenji.sato@vendor.example")
        ).one()
        mario.active = False
        session.add(mario)
    assert (await other.get("/inbox")).status_code == 303
    assert (await admin.get("/admin/directory")).status_code == 200
    with stack.sessions.read() as session:
        logins = set(session.exec(select(WebSession.login)).all())
    assert logins == {ADMIN}


# --- sign-in throttling -----------------------------------------------------------------------


class Clock:
    """The time the app's sign-in throttle sees, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _throttled_app(stack: Stack) -> tuple[FastAPI, Clock]:
    app = make_app(stack)
    clock = Clock()
    app.state.web.accounts.clock = clock
    return app, clock


def _from(app: FastAPI, address: str) -> Browser:
    """A browser whose connection comes from this address."""
    browser = Browser(app)
    browser.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000)),
        base_url="http://testserver",
        follow_redirects=False,
        timeout=60,
    )
    return browser


def _events(stack: Stack, login: str) -> list[AccountEvent]:
    with stack.sessions.read() as session:
        return list(
            session.exec(
                select(AccountEvent)
                .where(AccountEvent.login == login)
                .order_by(col(AccountEvent.id))
            ).all()
        )


async def test_the_right_password_after_30_wrong_ones_is_not_accepted_at_once(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app, clock = _throttled_app(stack)
    attacker = _from(app, "198.51.100.7")
    statuses = []
    for _ in range(30):
        response = await attacker.sign_in(CLAIMANT, "wrong password")
        statuses.append(response.status_code)
        assert WRONG_WORDS in response.text
        # Past each delay (16 s at most before the lockout), as a patient attacker would.
        clock.advance(seconds=20)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429] * 20, statuses
    assert statuses[0] == 401 and statuses[-1] == 429
    # The right password, from the attacker's address or the owner's: refused in the same
    # words, with when to try again; no session is started.
    for address in ("198.51.100.7", "203.0.113.20"):
        browser = _from(app, address)
        response = await browser.sign_in(CLAIMANT, PASSWORD)
        assert response.status_code == 429, address
        assert WRONG_WORDS in response.text
        assert "try again after" in response.text
        retry_after = int(response.headers["retry-after"])
        assert 0 < retry_after <= 15 * 60
        assert (await browser.get("/disputes")).status_code == 303
    # Another account from the attacker's address is not locked by this one's failures.
    response = await _from(app, "198.51.100.7").sign_in(OTHER, PASSWORD)
    assert response.status_code == 303
    # Once the lockout is over, the owner signs in, and the count starts again.
    clock.advance(seconds=retry_after + 1)
    owner = _from(app, "203.0.113.20")
    assert (await owner.sign_in(CLAIMANT, PASSWORD)).status_code == 303
    assert (await owner.get("/disputes")).status_code == 200
    response = await _from(app, "198.51.100.7").sign_in(CLAIMANT, "wrong again")
    assert response.status_code == 401
    # The account's audit tells what happened, from where.
    actions = [e.action for e in _events(stack, CLAIMANT)]
    assert actions.count("sign_in_failed") >= 10
    assert "locked_out" in actions
    # Twenty-two attempts refused in one lockout: the first is recorded, the rest counted.
    assert actions.count("sign_in_refused") == 1
    assert actions[-2:] == ["signed_in", "sign_in_failed"]
    assert {e.address for e in _events(stack, CLAIMANT)} == {"198.51.100.7", "203.0.113.20"}


async def test_an_address_guessing_many_accounts_is_locked_out_but_not_others(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    stack.settings.sign_in_address_lockout_failures = 12
    app, clock = _throttled_app(stack)
    sprayer = _from(app, "198.51.100.9")
    for n in range(12):
        # A different (mostly unknown) login each time: no account reaches its own limit.
        await sprayer.sign_in(f"guess{n}@northwind.example", "Summer2026!")
        clock.advance(seconds=30)
    response = await sprayer.sign_in(CLAIMANT, PASSWORD)
    assert response.status_code == 429
    assert WRONG_WORDS in response.text
    # The same account from another address is fine.
    assert (await _from(app, "203.0.113.20").sign_in(CLAIMANT, PASSWORD)).status_code == 303


async def test_a_forged_forwarded_for_header_does_not_change_the_address(
    stack: Stack,
) -> None:
    stack.settings.sign_in_address_lockout_failures = 6
    app, clock = _throttled_app(stack)
    sprayer = _from(app, "198.51.100.9")
    for n in range(6):
        sprayer.http.headers["x-forwarded-for"] = f"192.0.2.{n}"
        await sprayer.sign_in(f"guess{n}@northwind.example", "Summer2026!")
        clock.advance(seconds=30)
    sprayer.http.headers["x-forwarded-for"] = "192.0.2.200"
    assert (await sprayer.sign_in(CLAIMANT, PASSWORD)).status_code == 429
    # Behind a configured proxy, the address the proxy saw is the one that counts.
    proxy = _from(app, "127.0.0.1")
    proxy.http.headers["x-forwarded-for"] = "198.51.100.9"
    assert (await proxy.sign_in(CLAIMANT, PASSWORD)).status_code == 429
    proxy.http.headers["x-forwarded-for"] = "203.0.113.20"
    assert (await proxy.sign_in(CLAIMANT, PASSWORD)).status_code == 303


async def test_an_admin_lifts_a_lockout_and_it_is_in_the_audit(stack_on_both: Stack) -> None:
    stack = stack_on_both
    app, clock = _throttled_app(stack)
    attacker = _from(app, "198.51.100.7")
    for _ in range(12):
        await attacker.sign_in(CLAIMANT, "wrong password")
        clock.advance(seconds=1)
    owner = _from(app, "203.0.113.20")
    assert (await owner.sign_in(CLAIMANT, PASSWORD)).status_code == 429
    admin = await signed_in(app, ADMIN)
    page = await admin.get("/admin/directory")
    assert CLAIMANT in page.text and "locked" in page.text
    response = await admin.post("/admin/accounts/unlock", {"login": CLAIMANT})
    assert response.status_code == 303
    assert (await owner.sign_in(CLAIMANT, PASSWORD)).status_code == 303
    lifted = [e for e in _events(stack, CLAIMANT) if e.action == "lockout_lifted"]
    assert [e.actor for e in lifted] == [ADMIN]
    # The same through the API.
    for _ in range(12):
        await attacker.sign_in(CLAIMANT, "wrong password")
        clock.advance(seconds=1)
    async with api(app, token_for(stack, ADMIN)) as client:
        held = (await client.get("/api/accounts/lockouts")).json()
        assert list(held) == [CLAIMANT]
        assert (await client.delete(f"/api/accounts/{CLAIMANT}/lockout")).status_code == 204
        response = await client.delete(f"/api/accounts/{CLAIMANT}/lockout")
        assert response.status_code == 404
        assert (await client.get("/api/accounts/lockouts")).json() == {}
    async with api(app, token_for(stack, CLAIMANT)) as client:
        assert (await client.get("/api/accounts/lockouts")).status_code == 403
        mine = (await client.get("/api/account/sign-ins")).json()
        assert [e["actor"] for e in mine if e["action"] == "lockout_lifted"] == [ADMIN, ADMIN]
    # The owner sees their account's sign-in history.
    account = await owner.get("/account")
    assert "198.51.100.7" in account.text and "lockout_lifted" not in account.text
    assert "Lockout lifted" in account.text


async def test_wrong_passwords_make_each_next_attempt_wait_longer(stack: Stack) -> None:
    app, clock = _throttled_app(stack)
    browser = _from(app, "198.51.100.7")
    for _ in range(5):  # the free ones
        assert (await browser.sign_in(CLAIMANT, "wrong")).status_code == 401
    for wait in (1, 2, 4, 8, 16):
        response = await browser.sign_in(CLAIMANT, PASSWORD)
        assert response.status_code == 429
        assert response.headers["retry-after"] == str(wait)
        clock.advance(seconds=wait)
        assert (await browser.sign_in(CLAIMANT, "wrong")).status_code == 401
    # The tenth wrong password locks the account for the whole lockout.
    response = await browser.sign_in(CLAIMANT, PASSWORD)
    assert response.headers["retry-after"] == str(15 * 60)


async def test_guesses_sent_all_at_once_get_no_more_password_checks(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    app, _clock = _throttled_app(stack)  # the clock stands still: every guess comes at once
    await Browser(app).get("/login")  # the app is up
    browsers = [_from(app, f"198.51.100.{n}") for n in range(30)]
    for browser in browsers:
        await browser.get("/login")

    async def guess(browser: Browser) -> int:
        response = await browser.http.post(
            "/login",
            data={"csrftoken": browser.csrf, "login": CLAIMANT, "password": "wrong", "next": "/"},
        )
        return response.status_code

    statuses = await asyncio.gather(*(guess(b) for b in browsers))
    assert sorted(statuses) == [401] * 5 + [429] * 25, statuses
    failed = [e for e in _events(stack, CLAIMANT) if e.action == "sign_in_failed"]
    assert len(failed) == 5


async def test_logins_and_forwarded_addresses_no_row_can_hold_are_counted_not_crashed_on(
    stack_on_both: Stack,
) -> None:
    stack = stack_on_both
    stack.settings.sign_in_address_lockout_failures = 3
    app, clock = _throttled_app(stack)
    proxy = _from(app, "127.0.0.1")
    proxy.http.headers["x-forwarded-for"] = "not-an-address\x7f" + "9" * 500
    for login in ("nora\x00@northwind.example", "x" * 10_000 + "@example.com", "é" * 400):
        response = await proxy.sign_in(login, "wrong")
        assert response.status_code == 401, response.text
        assert WRONG_WORDS in response.text
        clock.advance(seconds=1)
    # Three failures from that (unreadable) address: it waits, like any other.
    response = await proxy.sign_in(CLAIMANT, PASSWORD)
    assert response.status_code == 429


def test_a_mistyped_trusted_proxy_is_refused_by_name() -> None:
    # uvicorn would take it for a host name and quietly trust no proxy at all.
    with pytest.raises(ValidationError, match=r"trusted_proxies\n.*'10\.0\.0\.300' is not an IP"):
        Settings(trusted_proxies="127.0.0.1, 10.0.0.300")
    assert Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8, ::1").trusted_proxies
