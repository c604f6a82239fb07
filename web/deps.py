"""Request dependencies: the web context, the signed-in viewer (session or API token), and
every route's check of its path parameters."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from accord.disputes.access import Viewer
from models.enums import Role
from models.text import problem
from web.context import web
from web.problems import BadInput, Forbidden, SignInRequired


def current_viewer(request: Request) -> Viewer:
    context = web(request)
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        viewer = context.accounts.token_viewer(authorization[7:].strip())
        if viewer is None:
            raise SignInRequired("the API token is unknown or revoked, or its user is inactive")
        return viewer
    login = request.session.get("login")
    session_id = request.session.get("sid")
    if not isinstance(login, str):
        raise SignInRequired("sign in to continue")
    # A cookie from before sessions were kept on the server has no id: its session has ended.
    viewer = (
        context.accounts.session_viewer(login, session_id) if isinstance(session_id, str) else None
    )
    if viewer is None:
        request.session.clear()
        raise SignInRequired("your session has ended; sign in again", code="expired")
    return viewer


def client_address(request: Request) -> str | None:
    """The client's address as the app sees it: the connection's, or the one a trusted proxy
    (Settings.trusted_proxies, applied by the proxy-headers middleware) says it served."""
    return request.client.host if request.client else None


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


def storable_path(request: Request) -> None:
    """Every route's path parameters (a dispute number, a person id, an evidence id) are looked
    up in the database: one holding what no row can (models.text) is refused here, naming it,
    before a query that PostgreSQL would answer with an error."""
    for name, value in request.path_params.items():
        why = problem(str(value), multiline=False)
        if why is not None:
            raise BadInput([(name, f"holds {why}")])
