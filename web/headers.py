"""Security headers on every response: pages, API answers, errors, refusals by middlewares.

The pages need nothing inline (one script, /static/countdown.js, and one stylesheet; no style
attributes, no event handlers), so their policy allows scripts and styles from this origin only.
FastAPI's API docs page is the exception: it starts Swagger UI with an inline script and Swagger
UI sets inline styles, so that one page gets a policy allowing them (and, while it loads Swagger
UI from a CDN, that CDN). A response that sets its own policy (evidence downloads: sandboxed)
keeps it, with framing forbidden added.

Nothing but static assets may be stored by a browser or a shared cache: every page and API answer
is someone's, or carries a CSRF token.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    # Swagger UI's page starts it with an inline script and styles some parts inline; its
    # assets are served from here (web.docs), so nothing else is allowed.
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/api/docs"})
STATIC_PREFIXES = ("/static/", "/api/docs/assets/")
"""Public assets, the same for everyone: cached; every other answer is private or live."""


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy")
                if own is None:
                    headers["Content-Security-Policy"] = (
                        DOCS_POLICY if path in DOCS_PATHS else PAGE_POLICY
                    )
                elif "frame-ancestors" not in own:
                    headers["Content-Security-Policy"] = own + "; frame-ancestors 'none'"
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                if not path.startswith(STATIC_PREFIXES):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)
