"""Web processes share nothing but the database and Temporal (the operator's guide scales them
out behind a proxy): a session and a form begun on one are finished on another. Rotating
ACCORD_SECRET_KEY ends sessions, and personal API tokens keep working."""

from __future__ import annotations

from pydantic import SecretStr

from tests.conftest import Stack
from tests.web_harness import Browser, api, filing_form, make_app, signed_in, token_for
from web.app import create_app

CLAIMANT = "nora@northwind.example"


async def test_any_web_process_serves_any_request(stack: Stack) -> None:
    first, second = make_app(stack), make_app(stack)
    on_first = await signed_in(first, CLAIMANT)
    on_second = Browser(second)
    on_second.http.cookies = on_first.http.cookies  # the proxy sent the next request elsewhere
    try:
        assert (await on_second.get("/disputes")).status_code == 200
        # The form's CSRF token came from the first process; the second accepts it.
        filed = await on_second.post(
            "/disputes/new",
            filing_form(submission_id="scale-out-1"),
        )
        assert filed.status_code == 303, filed.text
        number = filed.headers["location"].rsplit("/", 1)[-1]
        assert (await on_first.get(f"/disputes/{number}")).status_code == 200
    finally:
        await on_first.close()
        await on_second.close()


async def test_a_new_secret_key_ends_sessions_and_keeps_api_tokens(stack: Stack) -> None:
    before = make_app(stack)
    browser = await signed_in(before, CLAIMANT)
    token = token_for(stack, CLAIMANT)
    rotated = stack.settings.model_copy(
        update={"secret_key": SecretStr("a-new-secret-rotated-in-by-the-operator-7Qf2")}
    )
    after = create_app(rotated, stack.services, stack.client)
    again = Browser(after)
    again.http.cookies = browser.http.cookies
    try:
        assert (await browser.get("/disputes")).status_code == 200
        # The old cookie's signature no longer holds: sign in again.
        refused = await again.get("/disputes")
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        async with api(after, token) as client:
            assert (await client.get("/api/me")).status_code == 200
    finally:
        await browser.close()
        await again.close()
