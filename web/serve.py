"""Serve the web app with uvicorn, inside the embedded stack or as its own process."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from accord.application import Services, build_services
from accord.platform.heap import freeze_start_up
from accord.platform.logs import configure_logging
from accord.platform.processes import run_until_signalled
from accord.platform.servers import http_server
from accord.platform.settings import Settings
from accord.platform.temporal import connect
from accord.platform.tracing import configure_tracing
from web.app import create_app
from web.health import metrics_app

SHUTDOWN_GRACE_SECONDS = 20
"""On SIGTERM, requests in flight get this long to finish (compose stops the container after
30 s); new connections are refused from the signal on."""


async def serve_web(
    settings: Settings,
    stop: asyncio.Event,
    services: Services | None = None,
    *,
    client: Client | None = None,
) -> None:
    """The web app on ACCORD_WEB_HOST:PORT and, unless its port is 0, its /metrics on
    ACCORD_WEB_METRICS_HOST:PORT; both stop when `stop` is set (or either stops)."""
    services = services or build_services(settings)
    app = create_app(settings, services, client or (lambda: connect(settings)))
    freeze_start_up()
    servers = [
        http_server(
            app,
            settings.web_host,
            settings.web_port,
            # The app reads X-Forwarded-For itself, from Settings.trusted_proxies only.
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
    ]
    if settings.web_metrics_port:
        servers.append(
            http_server(
                metrics_app(app.state.metrics),
                settings.web_metrics_host,
                settings.web_metrics_port,
                lifespan="off",
            )
        )
    serving = {asyncio.create_task(server.serve()) for server in servers}
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({*serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*serving)
    stopping.cancel()


def main() -> None:
    settings = Settings()
    configure_logging(settings.json_logs, settings.log_level, secrets=settings.secret_values())
    configure_tracing("accord-web", settings.otel_endpoint)
    run_until_signalled(lambda stop: serve_web(settings, stop))
