"""Liveness, readiness and Prometheus metrics: for load balancers, orchestrators and scrapers,
so no sign-in. They reveal no dispute, person or secret: counts and dependency states only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from accord.observability import BusinessMetrics, readiness
from web.app import WebContext
from web.deps import web

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


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Business metrics in Prometheus' text format (the worker serves Temporal's own)."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


def metrics_registry(ctx: WebContext) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessMetrics(ctx.services.sessions))
    return registry
