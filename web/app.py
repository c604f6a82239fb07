"""The web application: server-rendered pages for every role and the JSON API under /api/.

`create_app` wires it from the process's Settings and Services and a Temporal client (or a
coroutine that connects one at start-up). Errors never show a stack trace: pages get an error
page, the API a problem body (RFC 9457) naming the field or rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from temporalio.client import Client
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from accord.application import Services
from accord.directory.records import DirectoryNames
from accord.platform.settings import Settings
from models.codec import EncryptionCodec
from web import (
    api,
    channel,
    codec,
    csrf,
    docs,
    errors,
    exceptions,
    gate,
    health,
    limits,
    pages,
    throttle,
)
from web.auth import Accounts
from web.context import WebContext
from web.deps import storable_path
from web.headers import SecurityHeaders
from web.templating import make_templates

HERE = Path(__file__).parent


def create_app(
    settings: Settings,
    services: Services,
    client: Client | Callable[[], Awaitable[Client]],
) -> FastAPI:
    settings.check()
    names = DirectoryNames(services.sessions)
    context = WebContext(
        settings=settings,
        services=services,
        accounts=Accounts(
            services.sessions,
            session_max_age=timedelta(seconds=settings.session_max_age_seconds),
            policy=sign_in_policy(settings),
        ),
        templates=make_templates(names),
        client=client if isinstance(client, Client) else None,
        names=names,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if context.client is None and not isinstance(client, Client):
            context.client = await client()
        yield

    app = FastAPI(
        title="Accord",
        version="1",
        summary="Channel-conflict resolution: disputes, tasks, evidence, rulings.",
        description=(
            "Every action the web app offers, as JSON. Authenticate with a personal API token "
            "(`Authorization: Bearer acc_...`, created on the Account page or with "
            "`accord token`). Errors are `application/problem+json` bodies naming the field "
            "or the rule."
        ),
        lifespan=lifespan,
        dependencies=[Depends(storable_path)],
        docs_url=None,  # served by web.docs, with its assets from this server
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = context
    app.state.codec = EncryptionCodec(settings.payload_key_ring())
    app.state.metrics, request_durations = health.metrics_registry(context)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    docs.install(app, openapi_url="/api/openapi.json")
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(channel.router)
    app.include_router(exceptions.router)
    app.include_router(codec.router)
    app.include_router(gate.router)
    app.include_router(pages.router)
    errors.install_error_handlers(app, context)
    codec.install_error_handlers(app)

    secret = settings.secret_key.get_secret_value()
    app.add_middleware(health.RouteCapture)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="accord_session",
        # The cookie outlives the session by a day so an ended session can be told apart from
        # no session ("your session has ended"); web.auth refuses it after the real limit.
        max_age=settings.session_max_age_seconds + 86400,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    # Multipart bodies are checked by web.csrf, just inside asgi-csrf (see there for why).
    app.add_middleware(
        csrf.MultipartCsrf,
        signing_secret=secret,
        always_protect={"/login"},
        send_failed=errors.csrf_failed(context),
        max_before_token=settings.form_max_bytes,
    )
    app.add_middleware(
        asgi_csrf,
        signing_secret=secret,
        # Sign-in must carry a token even from a browser with no cookies yet (login CSRF).
        always_protect={"/login"},
        cookie_secure=settings.secure_cookies,
        send_csrf_failed=errors.csrf_failed(context),
        # Multipart bodies are checked by web.csrf's MultipartCsrf, just inside (see there
        # for why); the codec endpoint, called by the Temporal UI, holds CSRF off its own
        # way (see web.codec).
        skip_if_scope=lambda scope: csrf.is_multipart(scope) or codec.is_codec(scope),
    )
    # Each kind of body has its own ceiling; a JSON body's shape is checked before it is parsed
    # (web.limits says why).
    app.add_middleware(limits.JsonShapeGuard, limits=partial(limits.json_limits, settings))
    app.add_middleware(limits.BodySizeLimit, limit=partial(limits.body_limit, settings))
    # Outside the session and CSRF layers: a preflight is answered before either looks at it.
    app.add_middleware(codec.CodecCors, origins=settings.codec_origins())
    app.add_middleware(errors.MalformedRequestGuard)
    # Security headers on every answer, including the refusals of the middlewares above.
    app.add_middleware(SecurityHeaders)
    # The client's address from X-Forwarded-For, believed only from the configured proxies;
    # everything inside (sign-in throttling, the account audit) sees the address it settles on.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Outermost: refusals by the middlewares above (413, CSRF) are timed and counted too.
    app.add_middleware(health.RequestMetrics, histogram=request_durations)
    return app


def sign_in_policy(settings: Settings) -> throttle.Policy:
    lockout = timedelta(seconds=settings.sign_in_lockout_seconds)
    return throttle.Policy(
        account=throttle.Limits(
            settings.sign_in_free_failures, settings.sign_in_lockout_failures, lockout
        ),
        address=throttle.Limits(
            settings.sign_in_address_free_failures,
            settings.sign_in_address_lockout_failures,
            lockout,
        ),
    )
