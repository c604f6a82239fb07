"""Sign-in (password or single sign-on), sign-out, and the account page with API tokens."""

from __future__ import annotations

import math
from datetime import UTC

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord.disputes.access import Viewer
from models.text import clean
from web import service
from web.auth import SignIn
from web.context import HOME, web
from web.deps import client_address, optional_viewer
from web.oidc import OidcFailed, oidc_client, oidc_login
from web.pages.common import ViewerDep, back, read_form, render
from web.problems import BadInput
from web.views import NotFound

router = APIRouter(include_in_schema=False)


# --- sign-in ----------------------------------------------------------------------------------

WHY = {
    "expired": "Your session has ended. Sign in again.",
    "signin": "Sign in to continue.",
}


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    viewer = optional_viewer(request)
    return RedirectResponse(HOME[viewer.role] if viewer else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", why: str = "") -> Response:
    return render(request, "login.html", None, next=_safe_next(next), why=WHY.get(why), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await read_form(request)
    login = str(form.get("login") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    accounts = web(request).accounts
    # In a worker thread: the password hash takes a while and must not hold up other requests.
    attempt = (
        await run_in_threadpool(accounts.sign_in, login, password, client_address(request))
        if login and password
        else SignIn(None)
    )
    if attempt.viewer is None:
        # Refused too early or refused outright, the words are the same (a lockout does not
        # say the password was right); too early adds when to try again.
        error = "That email and password do not match an active account."
        retry_after = None
        if attempt.retry_at is not None:
            retry_after = max(1, math.ceil((attempt.retry_at - accounts.clock()).total_seconds()))
            error += (
                " Too many attempts: try again after "
                f"{attempt.retry_at.astimezone(UTC):%H:%M:%S} UTC."
            )
        response = render(
            request,
            "login.html",
            None,
            status=401 if retry_after is None else 429,
            next=target,
            why=None,
            error=error,
            login=clean(login, multiline=False)[0],
        )
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    _start_session(request, attempt.viewer)
    return RedirectResponse(target if target != "/" else HOME[attempt.viewer.role], status_code=303)


def _start_session(request: Request, viewer: Viewer) -> None:
    accounts = web(request).accounts
    # Signing in again ends the session this browser had: a copy of its cookie dies with it.
    previous = request.session.get("sid")
    if isinstance(previous, str):
        accounts.end_session(previous, client_address(request))
    session_id = accounts.start_session(viewer, client_address(request))
    request.session.clear()
    request.session.update({"login": viewer.login, "sid": session_id})


def _safe_next(target: str) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post("/logout")
async def logout(request: Request) -> Response:
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        web(request).accounts.end_session(session_id, client_address(request))
    request.session.clear()
    return back(request, "/login", "Signed out.")


@router.get("/login/oidc")
async def oidc_start(request: Request) -> Response:
    ctx = web(request)
    if not ctx.settings.oidc_enabled:
        raise NotFound("single sign-on")
    client = oidc_client(ctx.settings)
    redirect_uri = str(request.url_for("oidc_callback"))
    response: Response = await client.authorize_redirect(request, redirect_uri)
    return response


@router.get("/auth/oidc", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    ctx = web(request)
    if not ctx.settings.oidc_enabled:
        raise NotFound("single sign-on")
    try:
        email = await oidc_login(ctx.settings, request)
    except OidcFailed as exc:
        return render(request, "login.html", None, status=401, next="/", why=None, error=str(exc))
    viewer = ctx.accounts.viewer_for(email)
    if viewer is None:
        return render(
            request,
            "login.html",
            None,
            status=403,
            next="/",
            why=None,
            error=f"{email} has no active Accord account.",
        )
    _start_session(request, viewer)
    return RedirectResponse(HOME[viewer.role], status_code=303)


# --- account and API tokens -----------------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, viewer: ViewerDep) -> Response:
    tokens = web(request).accounts.tokens(viewer.login)
    # An earlier release kept a new token in the session cookie until this page showed it:
    # it is dropped unseen, so the cookie stops carrying it.
    request.session.pop("new_token", None)
    return render(
        request,
        "account.html",
        viewer,
        tokens=tokens,
        new_token=None,
        events=web(request).accounts.events(viewer.login),
        event_labels=EVENT_LABELS,
    )


EVENT_LABELS = {
    "signed_in": "Signed in",
    "sign_in_failed": "Wrong password",
    "sign_in_refused": "Sign-in refused: too many attempts",
    "locked_out": "Locked out after too many wrong passwords",
    "lockout_lifted": "Lockout lifted",
    "signed_out": "Signed out",
    "signed_out_everywhere": "Signed out of every session",
}


@router.post("/account/tokens")
async def create_token(request: Request, viewer: ViewerDep) -> Response:
    form = await read_form(request)
    name = str(form.get("name") or "").strip()
    if not name:
        raise BadInput([("name", "name the token (what will use it)")])
    name = service.token_name(name)
    accounts = web(request).accounts
    new_token = accounts.issue_token(viewer.login, name)
    # Shown in this answer only: never in the session cookie (which the browser keeps, and
    # which is merely signed, not encrypted), nor in any stored page or cache.
    page = render(
        request,
        "account.html",
        viewer,
        tokens=accounts.tokens(viewer.login),
        new_token=new_token,
        flash=f"token {name!r} created; copy it now, it is shown once",
    )
    page.headers["Cache-Control"] = "no-store"
    return page


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, viewer: ViewerDep, token_id: int) -> Response:
    if not web(request).accounts.revoke_token(viewer.login, token_id):
        raise NotFound(f"token {token_id}")
    return back(request, "/account", "token revoked")


@router.post("/account/sign-out-everywhere")
def sign_out_everywhere(request: Request, viewer: ViewerDep) -> Response:
    web(request).accounts.end_all_sessions(viewer.login, client_address(request))
    request.session.clear()
    return back(request, "/login", "Signed out of every session.")
