"""How an error is answered: a page for a browser, a problem body (RFC 9457) for the API and
for a client asking for JSON, never a stack trace. The app factory installs these handlers
(`install_error_handlers`) and the outermost guard (`MalformedRequestGuard`); the CSRF layers
answer their refusals with `csrf_failed`."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from accord.disputes.operations import DisputeGone, Refused
from accord.platform.wording import summary
from models.text import plain_error, relevant
from web import csrf
from web.context import HOME, WebContext
from web.deps import optional_viewer
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


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/codec/")) or path in ("/api", "/codec")


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


def csrf_failed(context: WebContext) -> Callable[[Scope, Send, Any], Awaitable[None]]:
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


def install_error_handlers(app: FastAPI, context: WebContext) -> None:
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
    return quote(path, safe="/")
