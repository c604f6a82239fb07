"""Request dependencies: the web context and the signed-in viewer (session or API token)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Request

from accord.access import Viewer
from models.enums import Role
from web.problems import Forbidden, SignInRequired

if TYPE_CHECKING:
    from web.app import WebContext


def web(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


def current_viewer(request: Request) -> Viewer:
    context = web(request)
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        viewer = context.accounts.token_viewer(authorization[7:].strip())
        if viewer is None:
            raise SignInRequired("the API token is unknown or revoked, or its user is inactive")
        return viewer
    login = request.session.get("login")
    issued_at = request.session.get("issued_at")
    if not isinstance(login, str) or not isinstance(issued_at, int | float):
        raise SignInRequired("sign in to continue")
    viewer = context.accounts.session_viewer(login, float(issued_at))
    if viewer is None:
        request.session.clear()
        raise SignInRequired("your session has ended; sign in again", code="expired")
    return viewer


def optional_viewer(request: Request) -> Viewer | None:
    try:
        return current_viewer(request)
    except SignInRequired:
        return None


def require(*roles: Role) -> Callable[[Request], Viewer]:
    """A dependency admitting only these roles."""

    def dependency(request: Request) -> Viewer:
        viewer = current_viewer(request)
        if viewer.role not in roles:
            raise Forbidden(
                f"this is for {' or '.join(r.value for r in roles)}; you are signed in as "
                f"{viewer.role.value}"
            )
        return viewer

    return dependency
