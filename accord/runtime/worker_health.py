"""The worker's own health, readiness and metrics endpoints (ACCORD_WORKER_HEALTH_PORT): an
orchestrator restarts a worker that stops answering and routes nothing to one not ready.

Ready means: the database and Temporal answer, and the worker is polling (not starting, not
draining for shutdown). Business metrics are the same as the web app's; Temporal's own SDK
metrics are served by the SDK on ACCORD_TEMPORAL_METRICS_ADDRESS.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from accord.platform.db import SessionFactory
from accord.platform.observability import BusinessMetrics, readiness
from accord.platform.servers import http_server


class WorkerState:
    polling = False
    """True while the worker runs, False before it starts and once it begins to drain."""


def health_app(sessions: SessionFactory, client: Client, state: WorkerState) -> Starlette:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessMetrics(sessions))

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        checks = await readiness(sessions, client)
        checks["worker"] = "ok" if state.polling else "not polling"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)]
    )


async def serve_health(app: Starlette, host: str, port: int, stop: asyncio.Event) -> None:
    health = http_server(app, host, port)
    serving = asyncio.create_task(health.serve())
    await stop.wait()
    health.should_exit = True
    await serving
