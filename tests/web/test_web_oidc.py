"""Optional OpenID Connect sign-in, against a provider served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import Stack
from tests.oidc_provider import Provider
from tests.web_harness import Browser, make_app, served
from web.app import create_app


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    idp = Provider(client_id="accord", client_secret="s3cret-for-tests")
    async with served(idp.app) as base:  # type: ignore[arg-type]
        idp.issuer = base
        yield idp


async def sign_in_through(provider: Provider, browser: Browser) -> httpx.Response:
    start = await browser.get("/login/oidc")
    assert start.status_code in (302, 303, 307), start.text
    async with httpx.AsyncClient() as outside:
        at_provider = await outside.get(start.headers["location"])
    callback = at_provider.headers["location"].removeprefix("http://testserver")
    return await browser.get(callback)


def configure(stack: Stack, provider: Provider) -> None:
    stack.settings.oidc_discovery_url = f"{provider.issuer}/.well-known/openid-configuration"
    stack.settings.oidc_client_id = provider.client_id
    stack.settings.oidc_client_secret = SecretStr(provider.client_secret)


async def test_single_sign_on_signs_in_the_matching_account(
    stack: Stack, provider: Provider
) -> None:
    make_app(stack)  # demo accounts
    configure(stack, provider)
    app = create_app(stack.settings, stack.services, stack.client)
    browser = Browser(app)
    login_page = await browser.get("/login")
    assert "Sign in with single sign-on" in login_page.text
    response = await sign_in_through(provider, browser)
    assert response.status_code == 303
    assert response.headers["location"] == "/disputes"
    me = await browser.get("/account")
    assert "nora@northwind.example" in me.text


async def test_single_sign_on_refuses_unknown_and_unverified_addresses(
    stack: Stack, provider: Provider
) -> None:
    make_app(stack)
    configure(stack, provider)
    app = create_app(stack.settings, stack.services, stack.client)
    provider.email = "stranger@elsewhere.example"
    response = await sign_in_through(provider, Browser(app))
    assert response.status_code == 403
    assert "has no active Accord account" in response.text
    provider.email, provider.email_verified = "nora@northwind.example", False
    browser = Browser(app)
    response = await sign_in_through(provider, browser)
    assert response.status_code == 401
    assert "has not verified" in response.text
    assert (await browser.get("/disputes")).status_code == 303


async def test_without_settings_there_is_no_single_sign_on(stack: Stack) -> None:
    app = make_app(stack)
    browser = Browser(app)
    assert "single sign-on" not in (await browser.get("/login")).text
    assert (await browser.get("/login/oidc")).status_code == 404
