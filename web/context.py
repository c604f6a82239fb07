"""What every request handler reaches the process's parts through: the web context (settings,
services, accounts, templates, the Temporal client, the directory's names), the request
accessor, and where each role lands after signing in. A leaf of `web`: the app factory, the
dependencies, the error handlers and the pages import it; it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.templating import Jinja2Templates
from temporalio.client import Client

from accord.application import Services
from accord.platform.settings import Settings
from accord.platform.wording import NO_NAMES, NamesProvider
from models.enums import Role
from web.auth import Accounts

HOME = {
    Role.PARTNER: "/disputes",
    Role.MEDIATOR: "/inbox",
    Role.BOARD: "/review",
    Role.COMPLIANCE: "/disputes",
    Role.ADMIN: "/inbox",
}
"""Each role's first page: where signing in lands, and an error page's way home."""


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


def web(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context
