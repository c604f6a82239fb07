"""The Temporal UI's codec endpoint (issue 15, item 2): POST /codec/decode opens the sealed
payloads of a history, in Temporal's codec-server protocol, for signed-in admins and compliance
only; everyone else gets a problem body, a foreign origin nothing, bad input a 400 naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from playwright.async_api import Browser
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment

from models import search_attributes
from models.codec import ENCODING, EncryptionCodec, PayloadKeys
from tests.conftest import CONVERTER, DEV_SERVER, MailCapture, Stack, dev_stack
from tests.processes import free_port
from tests.web_harness import PASSWORD, api, make_app, served, signed_in, token_for
from web.app import create_app

UI = "http://127.0.0.1:8233"
"""The embedded dev server's UI: an allowed origin by default (Settings.codec_origins)."""
CLAIMANT = "nora@northwind.example"
STAFF = {"admin": "alex.admin@vendor.example", "compliance": "carol.compliance@vendor.example"}
OTHERS = {
    "partner": CLAIMANT,
    "board": "b.sales@vendor.example",
}


async def sealed_input(stack: Stack) -> tuple[list[Payload], bytes]:
    """A filed dispute's workflow input as the history holds it (sealed), and its clear text."""
    number = (await stack.file()).number
    history = await stack.handle(number).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payloads = list(started.input.payloads)
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    codec = stack.client.data_converter.payload_codec
    assert codec is not None
    [opened] = await codec.decode(payloads)
    return payloads, opened.data


def protocol(payloads: list[Payload]) -> dict[str, Any]:
    """The body the UI posts: Payloads as protobuf JSON (base64 bytes)."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def headers(origin: str | None = UI) -> dict[str, str]:
    found = {"Content-Type": "application/json", "X-Namespace": "default"}
    if origin:
        found["Origin"] = origin
    return found


@pytest.fixture
def staff_app(stack: Stack) -> FastAPI:
    return make_app(stack)


async def people(stack: Stack) -> dict[str, str]:
    """Every role's login, the mediator's too (their first dispute's candidate)."""
    number = (await stack.file(summary="Another Acme deal, for a mediator")).number
    state = await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    return {**OTHERS, "mediator": f"{state.candidate_mediator_id}@vendor.example"}


@pytest.mark.parametrize("role", ["admin", "compliance"])
async def test_signed_in_staff_read_sealed_payloads_from_the_ui_origin(
    stack: Stack, staff_app: FastAPI, role: str
) -> None:
    payloads, clear = await sealed_input(stack)
    browser = await signed_in(staff_app, STAFF[role])
    try:
        response = await browser.http.post(
            "/codec/decode", json=protocol(payloads), headers=headers()
        )
    finally:
        await browser.close()
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI
    assert response.headers["access-control-allow-credentials"] == "true"
    [opened] = response.json()["payloads"]
    assert base64.b64decode(opened["metadata"]["encoding"]) == b"json/plain"
    assert base64.b64decode(opened["data"]) == clear
    assert CLAIMANT.encode() in clear
    # A payload recorded before the codec comes back as it is; several at once keep order.
    old = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')
    browser = await signed_in(staff_app, STAFF[role])
    try:
        both = await browser.http.post(
            "/codec/decode", json=protocol([old, *payloads]), headers=headers()
        )
    finally:
        await browser.close()
    assert [base64.b64decode(p["data"]) for p in both.json()["payloads"]] == [b'{"a":1}', clear]


async def test_parties_neutrals_and_anonymous_are_refused_with_a_problem_body(
    stack: Stack, staff_app: FastAPI
) -> None:
    payloads, _ = await sealed_input(stack)
    body = protocol(payloads)
    for role, login in (await people(stack)).items():
        browser = await signed_in(staff_app, login)
        try:
            refused = await browser.http.post("/codec/decode", json=body, headers=headers())
        finally:
            await browser.close()
        assert refused.status_code == 403, (role, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"] == "urn:accord:problem:forbidden"
        assert f"you are signed in as {role}" in problem["detail"]
        assert "payloads" not in problem
        # An API token is no way round it.
        async with api(staff_app, token_for(stack, login)) as client:
            assert (await client.post("/codec/decode", json=body)).status_code == 403
    async with api(staff_app) as anonymous:
        nobody = await anonymous.post("/codec/decode", json=body, headers=headers())
    assert nobody.status_code == 401  # a problem body, not the sign-in page's redirect
    assert nobody.json()["type"] == "urn:accord:problem:unauthenticated"
    async with api(staff_app, "acc_not-a-token") as forged:
        assert (await forged.post("/codec/decode", json=body)).status_code == 401


async def test_another_origin_gets_nothing_even_with_a_staff_session(
    stack: Stack, staff_app: FastAPI
) -> None:
    payloads, clear = await sealed_input(stack)
    browser = await signed_in(staff_app, STAFF["admin"])
    try:
        evil = "https://partner-portal.example"
        refused = await browser.http.post(
            "/codec/decode", json=protocol(payloads), headers=headers(evil)
        )
        assert refused.status_code == 403, refused.text
        assert "access-control-allow-origin" not in refused.headers
        assert base64.b64encode(clear).decode()[:40] not in refused.text
        preflight = await browser.http.options(
            "/codec/decode",
            headers={
                "Origin": evil,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        allowed = await browser.http.options(
            "/codec/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == UI
        assert allowed.headers["access-control-allow-credentials"] == "true"
        # A form a foreign page could post (no preflight): never read as the codec's input.
        form = await browser.http.post(
            "/codec/decode",
            data={"payloads": "x"},
            headers={"Origin": UI, "x-csrftoken": browser.csrf},
        )
        assert form.status_code == 400
        assert form.json()["errors"] == [
            {"field": "content-type", "message": "must be application/json"}
        ]
        # The rest of the app stays same-origin: no CORS anywhere else.
        page = await browser.http.get("/api/disputes", headers={"Origin": UI})
        assert "access-control-allow-origin" not in page.headers
    finally:
        await browser.close()


def _long(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"{not json", "body", "is not JSON (line 1, column 2)"),
        (b"\xff\xfe{}", "body", "is not UTF-8"),
        (b'{"payloads": ' + _long(100_000).encode() + b"}", "body", "is nested too deeply"),
        (b"[]", "payloads", 'expected {"payloads": [...]}'),
        (b'{"payloads": {}}', "payloads", 'expected {"payloads": [...]}'),
        (b'{"payloads": [], "extra": 1}', "extra", "unknown field"),
        (b'{"payloads": [7]}', "payloads[0]", "must be an object with metadata and data"),
        (b'{"payloads": [{"data": "***"}]}', "payloads[0].data", "is not base64"),
        (b'{"payloads": [{"data": 5}]}', "payloads[0].data", "must be a base64 string"),
        (
            b'{"payloads": [{"metadata": []}]}',
            "payloads[0].metadata",
            "must be an object of base64 strings",
        ),
        (
            b'{"payloads": [{"metadata": {"encoding": "%%%"}}]}',
            "payloads[0].metadata.encoding",
            "is not base64",
        ),
        (
            b'{"payloads": [{"metadata": {"a\\u0000b": "eA=="}}]}',
            "payloads[0].metadata",
            "holds a name no payload can have",
        ),
        (b'{"payloads": [{"dat": "eA=="}]}', "payloads[0].dat", "unknown field"),
        (
            json.dumps({"payloads": [{}] * 1001}).encode(),
            "payloads",
            "at most 1000 in one request",
        ),
    ],
)
async def test_malformed_input_is_a_400_naming_the_part(
    stack: Stack, staff_app: FastAPI, body: bytes, field: str, message: str
) -> None:
    async with api(staff_app, token_for(stack, STAFF["admin"])) as admin:
        response = await admin.post("/codec/decode", content=body, headers=headers())
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["errors"] == [{"field": field, "message": message}]
    assert problem["type"] == "urn:accord:problem:bad-request"


async def test_too_large_unknown_keys_and_another_namespace_are_refused(
    stack: Stack, staff_app: FastAPI
) -> None:
    payloads, _ = await sealed_input(stack)
    limit = stack.settings.codec_max_bytes
    huge = json.dumps({"payloads": [{"data": "eA==" * (limit // 4)}]}).encode()
    elsewhere = EncryptionCodec(PayloadKeys(keys={"other": bytes(32)}, active="other"))
    [foreign] = await elsewhere.encode([Payload(data=b"{}")])
    async with api(staff_app, token_for(stack, STAFF["admin"])) as admin:
        big = await admin.post("/codec/decode", content=huge, headers=headers())
        assert big.status_code == 413
        assert f"at most {limit:,} bytes" in big.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536

        streamed = await admin.post("/codec/decode", content=chunks(), headers=headers())
        assert streamed.status_code == 413

        unknown = await admin.post(
            "/codec/decode", json=protocol([*payloads, foreign]), headers=headers()
        )
        assert unknown.status_code == 422
        assert "key id 'other', which is not among the configured" in unknown.json()["detail"]
        tampered = Payload()
        tampered.CopyFrom(payloads[0])
        tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
        altered = await admin.post("/codec/decode", json=protocol([tampered]), headers=headers())
        assert altered.status_code == 422
        assert "does not authenticate" in altered.json()["detail"]
        other_ns = await admin.post(
            "/codec/decode",
            json=protocol(payloads),
            headers={**headers(), "X-Namespace": "accord-staging"},
        )
        assert other_ns.status_code == 400
        assert other_ns.json()["errors"][0]["field"] == "X-Namespace"


async def test_the_ui_in_a_real_browser_reads_payloads_with_the_staff_session(
    stack: Stack,
    chromium: Browser,
) -> None:
    """Chromium, calling the endpoint as the Temporal UI does (its data-encoder.ts: fetch with
    credentials 'include', Content-Type and X-Namespace headers) from a page on the UI's origin:
    the signed-in staff member's session cookie goes along (same site, another port) and CORS
    lets the page read the answer; signed in as a partner, it is refused; a page on another site
    reads nothing."""
    payloads, clear = await sealed_input(stack)
    body = json.dumps(protocol(payloads))
    make_app(stack)  # seeds the accounts

    async def ui_page(request: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>Temporal UI stand-in</title>")

    async with served(Starlette(routes=[Route("/", ui_page)])) as ui_base:  # type: ignore[arg-type]
        settings = stack.settings.model_copy(update={"codec_cors_origins": ui_base})
        app = create_app(settings, stack.services, stack.client)
        async with served(app) as web_base:

            async def call_from(origin: str, login: str) -> str | list[Any]:
                context = await chromium.new_context()
                try:
                    page = await context.new_page()
                    await page.goto(f"{web_base}/login")
                    await page.get_by_label("Email").fill(login)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.wait_for_url(lambda url: "/login" not in url)
                    await page.goto(origin)
                    result: str | list[Any] = await page.evaluate(CALL, [f"{web_base}/codec", body])
                    return result
                finally:
                    await context.close()

            status, text = await call_from(ui_base, STAFF["compliance"])
            assert status == 200, text
            [opened] = json.loads(text)["payloads"]
            assert base64.b64decode(opened["data"]) == clear
            status, text = await call_from(ui_base, CLAIMANT)
            assert status == 403, text
            assert json.loads(text)["type"] == "urn:accord:problem:forbidden"
            # Another site (localhost is not 127.0.0.1's site): nothing read.
            stranger = ui_base.replace("127.0.0.1", "localhost")
            assert await call_from(stranger, STAFF["admin"]) == "blocked"


CALL = """async ([endpoint, body]) => {
    try {
        const r = await fetch(endpoint + '/decode', {
            method: 'POST', credentials: 'include', body,
            headers: {'Content-Type': 'application/json', 'X-Namespace': 'default'}});
        return [r.status, await r.text()];
    } catch (e) { return 'blocked'; }
}"""


async def test_the_endpoint_answers_httpx_without_origin_for_scripts(
    stack: Stack, staff_app: FastAPI
) -> None:
    """No Origin header (a script with an admin's API token): allowed, like the API."""
    payloads, clear = await sealed_input(stack)
    async with api(staff_app, token_for(stack, STAFF["admin"])) as admin:
        response = await admin.post("/codec/decode", json=protocol(payloads))
    assert response.status_code == 200
    assert base64.b64decode(response.json()["payloads"][0]["data"]) == clear


async def test_the_temporal_ui_shows_a_dispute_s_input_opened_for_compliance(
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
    chromium: Browser,
) -> None:
    """The real Temporal UI (the dev server's, as `make run` starts it with
    --ui-codec-endpoint), in Chromium: a compliance user signed in to Accord opens a dispute's
    workflow and reads its input through the codec endpoint."""
    ui_port, web_port = free_port(), free_port()
    ui_base, web_base = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{web_port}"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=DEV_SERVER,
        data_converter=CONVERTER,
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=[
            "--log-level",
            "error",
            "--ui-disable-news-fetch",
            "--ui-codec-endpoint",
            f"{web_base}/codec",
            *search_attributes.DEV_SERVER_FLAGS,
        ],
    )
    try:
        stack = dev_stack(env, sqlite_url, smtp, tmp_path, codec_cors_origins=ui_base)
        async with stack.worker:
            number = (await stack.file()).number
            await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
            make_app(stack)  # seeds the accounts
            app = create_app(stack.settings, stack.services, stack.client)
            async with served(app, web_port):

                async def workflow_page_as(login: str) -> tuple[int, str]:
                    """The codec's answer to the UI, and the input the UI then shows."""
                    context = await chromium.new_context()
                    try:
                        page = await context.new_page()
                        await page.goto(f"{web_base}/login")
                        await page.get_by_label("Email").fill(login)
                        await page.get_by_label("Password").fill(PASSWORD)
                        await page.get_by_role("button", name="Sign in").click()
                        await page.wait_for_url(lambda url: "/login" not in url)
                        await page.goto(ui_base)
                        # The dev server's flag sets the endpoint but cannot make the UI send
                        # cookies: its Codec Server settings can ("use my browser setting",
                        # "include cross-origin credentials"), kept in local storage.
                        await page.evaluate(
                            """(endpoint) => {
                                localStorage.setItem('endpoint', JSON.stringify(endpoint));
                                localStorage.setItem('includeCredentials', 'true');
                                localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
                            }""",
                            f"{web_base}/codec",
                        )
                        async with page.expect_response(
                            lambda r: "/codec/decode" in r.url and r.request.method == "POST"
                        ) as answered:
                            await page.goto(f"{ui_base}/namespaces/default/workflows/{number}")
                        status = (await answered.value).status
                        await page.get_by_text("Results will appear").first.wait_for(timeout=30_000)
                        await page.wait_for_timeout(2000)
                        return status, await page.locator("main").inner_text()
                    finally:
                        await context.close()

                status, shown = await workflow_page_as(STAFF["compliance"])
                assert status == 200
                assert "nora@northwind.example" in shown and '"claimant_id": "northwind"' in shown
                status, shown = await workflow_page_as(CLAIMANT)
                assert status == 403
                assert "nora@northwind.example" not in shown and "northwind" not in shown
    finally:
        await env.shutdown()
