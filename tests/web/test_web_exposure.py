"""What the web port gives away: no metrics to whoever reaches it (they are on their own port,
bound to loopback), no new API token in the session cookie, and API docs that load nothing
from the internet."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import re

import httpx
from itsdangerous import TimestampSigner

from accord.platform.settings import Settings
from tests.conftest import Stack
from tests.processes import free_port
from tests.web_harness import make_app, signed_in
from web.serve import serve_web

CLAIMANT = "nora@northwind.example"


async def test_the_api_docs_page_and_its_assets_come_from_this_server(stack: Stack) -> None:
    app = make_app(stack)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/api/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
        urls += re.findall(r"""url: ?["']([^"']+)""", page.text)
        assert urls, page.text
        external = [u for u in urls if re.match(r"(?i)^(https?:)?//", u)]
        assert external == [], external
        assert "validatorUrl" in page.text  # Swagger UI must not ask validator.swagger.io
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
        script = await client.get("/api/docs/assets/swagger-ui-bundle.js")
        # Swagger UI itself (5: it reads OpenAPI 3.1, which FastAPI writes), not a placeholder.
        assert len(script.content) > 500_000
        assert b"isOAS31" in script.content


def session_of(response: httpx.Response, secret: str) -> str:
    """The session cookie a response sets, unsigned and decoded: what the browser keeps."""
    cookies = [
        c for c in response.headers.get_list("set-cookie") if c.startswith("accord_session=")
    ]
    decoded = ""
    for cookie in cookies:
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        data = TimestampSigner(secret).unsign(value.encode())
        decoded += base64.b64decode(data).decode()
    return decoded


async def test_a_new_api_token_is_shown_once_and_never_put_in_the_session_cookie(
    stack: Stack,
) -> None:
    app = make_app(stack)
    secret = stack.settings.secret_key.get_secret_value()
    browser = await signed_in(app, CLAIMANT)
    try:
        created = await browser.post("/account/tokens", {"name": "erp export"})
        assert "acc_" not in session_of(created, secret)
        assert created.status_code == 200, created.text[:500]
        shown = re.search(r'<code id="new-token">([^<]+)</code>', created.text)
        assert shown is not None, created.text
        token = shown.group(1)
        assert token.startswith("acc_")
        assert "no-store" in created.headers.get("cache-control", "")
        assert token not in session_of(created, secret)
        assert token not in created.headers.get("set-cookie", "")
        # The browser's whole cookie jar, decoded where it is a session: no token anywhere.
        for name, value in browser.http.cookies.items():
            assert token not in value, name
            if name == "accord_session":
                raw = TimestampSigner(secret).unsign(value.encode())
                assert token not in base64.b64decode(raw).decode()
        # It works, and reloading the account page does not show it again.
        api = await browser.http.get("/api/me", headers={"authorization": f"Bearer {token}"})
        assert api.status_code == 200
        again = await browser.get("/account")
        assert again.status_code == 200
        assert token not in again.text
        assert 'id="new-token"' not in again.text
        assert "erp export" in again.text
    finally:
        await browser.close()


async def test_metrics_are_served_on_their_own_port_and_not_on_the_web_port(
    stack: Stack,
) -> None:
    app = make_app(stack)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 404
        assert "accord_" not in refused.text

    # `accord web` (and `accord run`) serve them on ACCORD_WEB_METRICS_PORT, bound to loopback.
    assert Settings.model_fields["web_metrics_host"].default == "127.0.0.1"
    settings = stack.settings.model_copy(
        update={"web_port": free_port(), "web_metrics_port": free_port()}
    )
    stop = asyncio.Event()
    gc.unfreeze()  # whatever an earlier test froze: the web process must freeze its start-up
    serving = asyncio.create_task(serve_web(settings, stop, stack.services, client=stack.client))
    web = f"http://127.0.0.1:{settings.web_port}"
    metrics = f"http://127.0.0.1:{settings.web_metrics_port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{web}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert (await client.get(f"{web}/metrics")).status_code == 404
            # Serving, it froze what start-up left (accord.platform.heap): full collections stay short.
            assert gc.get_freeze_count() > 0
            scraped = None
            for _ in range(200):
                try:
                    scraped = await client.get(metrics)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert scraped is not None and scraped.status_code == 200
            assert "accord_disputes" in scraped.text
            # The web port's own requests are timed, the refused /metrics among them.
            assert 'route="/health",status="200"' in scraped.text
            assert 'route="unmatched",status="404"' in scraped.text
            assert (await client.get(metrics.replace("/metrics", "/disputes"))).status_code == 404
    finally:
        stop.set()
        await serving


async def test_a_token_an_earlier_release_left_in_the_cookie_is_dropped_unseen(
    stack: Stack,
) -> None:
    app = make_app(stack)
    secret = stack.settings.secret_key.get_secret_value()
    browser = await signed_in(app, CLAIMANT)
    try:
        raw = TimestampSigner(secret).unsign(browser.http.cookies["accord_session"].encode())
        session = json.loads(base64.b64decode(raw))
        session["new_token"] = "acc_left-by-the-old-release"
        cookie = TimestampSigner(secret).sign(base64.b64encode(json.dumps(session).encode()))
        browser.http.cookies.delete("accord_session")
        browser.http.cookies.set("accord_session", cookie.decode())
        page = await browser.get("/account")
        assert page.status_code == 200
        assert "accord_session=" in page.headers.get("set-cookie", "")  # the cookie is rewritten
        assert "acc_left-by-the-old-release" not in page.text
        assert "acc_left-by-the-old-release" not in session_of(page, secret)
    finally:
        await browser.close()
