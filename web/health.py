"""Liveness, readiness and Prometheus metrics: for load balancers, orchestrators and scrapers,
so no sign-in (the metrics on a port of their own). They reveal no dispute, person or secret:
counts and dependency states only."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.platform.observability import BusinessMetrics, readiness
from web.context import WebContext, web

router = APIRouter(include_in_schema=False)


@router.get("/health")
def health() -> JSONResponse:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Ready for traffic: the database and Temporal answer (503 naming what does not)."""
    ctx = web(request)
    checks = await readiness(ctx.services.sessions, ctx.client)
    ok = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """/metrics alone, for its own port (ACCORD_WEB_METRICS_PORT): business metrics and the web
    requests' durations in Prometheus' text format (the worker serves Temporal's own). Not on
    the web port, where anyone who reaches the app would read the business's volumes."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", metrics)])


def metrics_registry(ctx: WebContext) -> tuple[CollectorRegistry, Histogram]:
    """The registry /metrics serves: the business metrics and the web requests' durations."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessMetrics(ctx.services.sessions))
    requests = Histogram(
        "accord_http_request_duration_seconds",
        "Web and API requests: time to the end of the response, by route template and status",
        ["method", "route", "status"],
        registry=registry,
    )
    return registry, requests


ROUTE_KEY = "accord.route"
"""Where the route a request matched is passed back out to RequestMetrics (a shared dict: a
middleware in between, asgi-csrf, hands the rest of the app a copy of the scope)."""


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods counted by name; any other a client invents is `other`, so no request can add a
series (each costs the scraper and Prometheus memory for as long as it is kept)."""


class RequestMetrics:
    """Times every HTTP request into the histogram. The route label is the route's template
    (`/disputes/{number}`), never the path: no dispute number or name reaches the metrics, and
    the label set stays bounded; a request no route took counts as `unmatched`, a method
    outside METHODS as `other`."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        matched: dict[str, str] = {}
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app({**scope, ROUTE_KEY: matched}, receive, sending)
        finally:
            route = matched.get("route", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.histogram.labels(method, route, str(status)).observe(time.perf_counter() - started)


class RouteCapture:
    """Innermost: once the router has run, tells RequestMetrics which route it took."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is not None and ROUTE_KEY in scope:
                scope[ROUTE_KEY]["route"] = route
