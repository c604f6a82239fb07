"""The web app over the real stack: the ASGI app in-process (httpx), or served by uvicorn on a
loopback port for a browser or schemathesis."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from functools import cache
from typing import Any

import httpx
from fastapi import FastAPI

from accord.platform.db import SessionFactory
from accord.platform.servers import http_server
from tests.conftest import Stack
from tests.processes import free_port
from web.app import create_app
from web.auth import Accounts, directory_logins, hash_password

PASSWORD = "demo-password-for-tests"


@cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def seed_accounts(sessions: SessionFactory) -> None:
    with sessions.read() as session:
        logins = directory_logins(session)

    Accounts(sessions, session_max_age=timedelta(hours=1)).ensure_accounts(_password_hash(), logins)


def make_app(stack: Stack) -> FastAPI:
    seed_accounts(stack.sessions)
    return create_app(stack.settings, stack.services, stack.client)


class Browser:
    """A cookie-keeping client that signs in and posts forms with their CSRF token, as a
    browser without JavaScript would."""

    def __init__(self, app: FastAPI) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
            follow_redirects=False,
            timeout=60,
        )

    async def sign_in(self, login: str, password: str = PASSWORD) -> httpx.Response:
        await self.http.get("/login")
        return await self.http.post(
            "/login",
            data={"csrftoken": self.csrf, "login": login, "password": password, "next": "/"},
        )

    @property
    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken", "")

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(
        self, path: str, data: dict[str, Any], files: Any = None, **kwargs: Any
    ) -> httpx.Response:
        if not self.csrf:
            await self.http.get("/login")
        return await self.http.post(
            path, data={"csrftoken": self.csrf, **data}, files=files, **kwargs
        )

    async def close(self) -> None:
        await self.http.aclose()


async def signed_in(app: FastAPI, login: str) -> Browser:
    browser = Browser(app)
    response = await browser.sign_in(login)
    assert response.status_code == 303, response.text
    return browser


def api(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
        headers=headers,
        timeout=60,
    )


def token_for(stack: Stack, login: str) -> str:

    return Accounts(stack.sessions, session_max_age=timedelta(hours=1)).issue_token(login, "test")


def filing_form(**overrides: str) -> dict[str, str]:
    """The partner's filing form, filled in as a browser would send it."""
    form = {
        "submission_id": "form-1",
        "respondent_ids": "contoso",
        "category": "deal_registration",
        "object-0-kind": "deal_registration",
        "object-0-ref": "DR-2026-0042",
        "summary": "Contoso registered our Acme deal after we did",
        "facts": "We registered DR-2026-0042 for Acme on 2 November; Contoso a week later.",
        "desired_remedy": "Registration confirmed to Northwind",
        "amount_at_stake": "125000",
        "currency": "USD",
        "occurred_on": (date.today() - timedelta(days=10)).isoformat(),
    }
    form.update(overrides)
    return form


def messages(html: str) -> list[str]:
    """The flash, error and field-error texts of a page."""
    return re.findall(r'class="(?:flash|error|field-error)"[^>]*>([^<]+)', html)


@contextlib.asynccontextmanager
async def served(
    app: FastAPI, port: int | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the app with uvicorn on a free loopback port (or `port`, on `host`), on this event
    loop."""

    port = port or free_port()
    server = http_server(app, host, port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
