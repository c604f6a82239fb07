"""The reverse proxy's question before it lets a browser into the Temporal UI (deploy/caddy's
forward_auth): is this browser's Accord session an admin's? The UI has no sign-in of its own and
shows every dispute's workflow, so it is reached through the proxy only, with this answer.

The proxy hands the browser every answer but 2xx: the sign-in page for no session, 403 for
anyone signed in who is not an admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from models.enums import Role
from web.context import web
from web.deps import current_viewer
from web.problems import SignInRequired

router = APIRouter(include_in_schema=False)


@router.get("/gate/temporal-ui")
def temporal_ui(request: Request) -> Response:
    try:
        viewer = current_viewer(request)
    except SignInRequired:
        # An absolute address: the browser is on the UI's host and port, not the app's.
        base = web(request).settings.base_url.rstrip("/")
        return RedirectResponse(f"{base}/login?next=/", status_code=303)
    if viewer.role is not Role.ADMIN:
        return PlainTextResponse(
            f"The Temporal UI is for Accord's admins; you are signed in as {viewer.role.value}.",
            status_code=403,
        )
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
