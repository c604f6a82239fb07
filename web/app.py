"""The web application: server-rendered pages for every role and the JSON API under /api/.

`create_app` wires it from the process's Settings and Services and a Temporal client (or a
coroutine that connects one at start-up). Errors never show a stack trace: pages get an error
page, the API a problem body (RFC 9457) naming the field or rule.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from accord.runtime import Services
from accord.settings import Settings
from accord.wording import NO_NAMES, NamesProvider, summary
from models.codec import EncryptionCodec
from models.text import plain_error, problem, relevant
from web import csrf, docs, limits, throttle
from web.auth import Accounts
from web.headers import SecurityHeaders
from web.operations import DisputeGone, Refused
from web.problems import (
    BadInput,
    Forbidden,
    SignInRequired,
    TooMany,
    bounded,
    problem_response,
)
from web.views import NotFound

log = logging.getLogger("accord.web")
HERE = Path(__file__).parent


@dataclass
class WebContext:
    settings: Settings
    services: Services
    accounts: Accounts
    templates: Jinja2Templates
    client: Client | None = None
    names: NamesProvider = lambda: NO_NAMES

    def temporal(self) -> Client:
        if self.client is None:
            raise RuntimeError("the Temporal client is not connected yet")
        return self.client


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/codec/")) or path in ("/api", "/codec")


def create_app(
    settings: Settings,
    services: Services,
    client: Client | Callable[[], Awaitable[Client]],
) -> FastAPI:
    settings.check()
    from accord.directory import DirectoryNames
    from web import api, codec, health, pages
    from web.templating import make_templates

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
    app.include_router(codec.router)
    app.include_router(pages.router)
    _install_error_handlers(app, context)
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
        send_failed=_csrf_failed(context),
        max_before_token=settings.form_max_bytes,
    )
    app.add_middleware(
        asgi_csrf,
        signing_secret=secret,
        # Sign-in must carry a token even from a browser with no cookies yet (login CSRF).
        always_protect={"/login"},
        cookie_secure=settings.secure_cookies,
        send_csrf_failed=_csrf_failed(context),
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
    app.add_middleware(MalformedRequestGuard)
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


def storable_path(request: Request) -> None:
    """Every route's path parameters (a dispute number, a person id, an evidence id) are looked
    up in the database: one holding what no row can (models.text) is refused here, naming it,
    before a query that PostgreSQL would answer with an error."""
    for name, value in request.path_params.items():
        why = problem(str(value), multiline=False)
        if why is not None:
            raise BadInput([(name, f"holds {why}")])


class MalformedRequestGuard:
    """Outermost: whatever escapes the app's own handlers (a body the CSRF check cannot decode,
    a bug in a middleware) still gets a problem body and never a stack trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            reference = secrets.token_hex(4)
            log.exception("unhandled error (reference %s)", reference)
            unreadable = isinstance(exc, UnicodeDecodeError | ValueError)
            status, kind, title, detail = (
                (400, "bad-request", "Bad request", "the request body could not be read")
                if unreadable
                else (500, "internal", "Something went wrong", "the error was logged")
            )
            body = json.dumps(
                {
                    "type": f"urn:accord:problem:{kind}",
                    "title": title,
                    "status": status,
                    "detail": f"{detail} (reference {reference})",
                    "errors": [],
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/problem+json")],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _csrf_failed(context: WebContext) -> Callable[[Scope, Send, Any], Awaitable[None]]:
    async def send_failed(scope: Scope, send: Send, _reason: Any) -> None:
        request = Request(scope)
        response = problem_or_page(
            context,
            request,
            403,
            "Form expired",
            "This form could not be verified (missing or stale security token). "
            "Reload the page and submit it again.",
            kind="csrf",
        )
        await response(scope, _empty_receive, send)

    return send_failed


async def _empty_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def problem_or_page(
    context: WebContext,
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    errors: list[tuple[str, str]] | None = None,
) -> Response:
    if _is_api(request) or "application/json" in request.headers.get("accept", ""):
        return problem_response(status, title, detail, kind=kind, errors=errors)
    from web.deps import optional_viewer
    from web.pages.common import HOME

    detail, errors = bounded(detail, errors)

    try:
        viewer = optional_viewer(request)
    except Exception:  # an error page must render even when the session cannot be read
        viewer = None
    referer = request.headers.get("referer", "")
    same_site = referer.startswith(str(request.base_url)) and referer != str(request.url)
    return context.templates.TemplateResponse(
        request,
        "error.html",
        {
            "title": title,
            "detail": detail,
            "errors": errors or [],
            "status": status,
            "viewer": viewer,
            "home": HOME.get(viewer.role, "/") if viewer else "/login",
            "back": referer if same_site else None,
            "csrf": request.scope["csrftoken"]() if "csrftoken" in request.scope else "",
        },
        status_code=status,
    )


NOT_FOUND_DETAIL = "It does not exist, or it is not yours to see."


def _gone(exc: Exception, context: WebContext) -> str:
    """'no dispute DSP-…' or 'DSP-… is closed; nothing was changed'."""
    return str(exc.known(context.services.sessions) if isinstance(exc, DisputeGone) else exc)


def _plain_handler(
    context: WebContext, status: int, title: str, kind: str, detail: Callable[[Exception], str]
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return problem_or_page(context, request, status, title, detail(exc), kind=kind)

    return handle


def _install_error_handlers(app: FastAPI, context: WebContext) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if _is_api(request):
            return problem_response(
                401,
                "Sign-in required",
                exc.reason,
                kind="unauthenticated",
                headers={"WWW-Authenticate": 'Bearer realm="accord"'},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}&why={exc.code}", status_code=303)

    # Exceptions that map onto one status, title and problem type; the detail is said by
    # the function (which sees the exception).
    plain: list[tuple[type[Exception], int, str, str, Callable[[Exception], str]]] = [
        (
            csrf.CsrfFailed,
            403,
            "Form expired",
            "csrf",
            lambda e: (
                f"This form could not be verified ({e}). Reload the page and submit it again."
            ),
        ),
        # Deliberately silent about which: "not yours" must look like "does not exist".
        (NotFound, 404, "Not found", "not-found", lambda e: NOT_FOUND_DETAIL),
        (
            DisputeGone,
            409,
            "Dispute not open",
            "not-running",
            lambda e: f"{_gone(e, context)}.",
        ),
        (Forbidden, 403, "Not allowed", "forbidden", str),
        (Refused, 409, "Action refused", "refused", lambda e: summary(str(e), context.names())),
    ]
    for exc_type, status, title, kind, detail in plain:
        app.add_exception_handler(exc_type, _plain_handler(context, status, title, kind, detail))

    @app.exception_handler(BadInput)  # and its kinds (BadQuery): each says how it is answered
    async def _bad_input(request: Request, exc: BadInput) -> Response:
        return problem_or_page(
            context,
            request,
            exc.status,
            exc.title,
            exc.summary(),
            kind=exc.kind,
            errors=exc.errors,
        )

    @app.exception_handler(TooMany)
    async def _too_many(request: Request, exc: TooMany) -> Response:
        return problem_or_page(
            context,
            request,
            429,
            "Too many messages",
            str(exc),
            kind="too-many",
            errors=exc.errors,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in relevant(exc.errors()):
            where = ("body", "query", "path", "header")
            loc = [str(p) for p in err.get("loc", ()) if p not in where]
            errors.append((".".join(loc) or "body", plain_error(err)))
        return problem_or_page(
            context,
            request,
            422,
            "Invalid input",
            "; ".join(f"{f}: {m}" for f, m in errors),
            kind="validation",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 413: "Too large"}
        return problem_or_page(
            context,
            request,
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            kind="http",
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        reference = secrets.token_hex(4)
        log.exception("unhandled error on %s (reference %s)", request.url.path, reference)
        return problem_or_page(
            context,
            request,
            500,
            "Something went wrong",
            f"The error was logged with reference {reference}.",
            kind="internal",
        )


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
