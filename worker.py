"""Run an Accord worker against the Temporal address in the settings.

    python worker.py            # or: accord worker

Scale out by starting more of these; they share the task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client

from accord.application import build_exceptions, build_filing, build_services
from accord.disputes.filing import FilingService
from accord.governance.exceptions import ExceptionService
from accord.platform.heap import freeze_start_up
from accord.platform.logs import configure_logging
from accord.platform.processes import run_until_signalled
from accord.platform.settings import Settings
from accord.platform.temporal import connect
from accord.platform.tracing import configure_tracing
from accord.runtime.wiring import build_worker
from accord.runtime.worker_health import WorkerState, health_app, serve_health
from models import search_attributes

log = logging.getLogger("accord.worker")


async def recover_interrupted_work(
    filing: FilingService, interval: float, requests: ExceptionService | None = None
) -> None:
    """Finish what a crash interrupted: filings and exception requests stored but never
    started. (Mail is the outbox
    relay's, which the worker runs: see RelayingWorker.) First, once, what a restore left:
    disputes Temporal runs that the database lost (`accord reconcile`)."""
    try:
        done = await filing.reconcile_with_temporal()
        if done.adopted or done.lost:
            log.warning(
                "after a restore: stored again from their workflows %s; closed and missing %s",
                done.adopted,
                done.lost,
            )
    except Exception:  # a Temporal that cannot list workflows (the test server), say
        log.warning("could not reconcile the database with Temporal", exc_info=True)
    while True:
        try:
            started = await filing.start_stranded()
            if started:
                log.info("started stranded filings: %s", ", ".join(started))
            if requests is not None:
                resumed = await requests.start_stranded()
                if resumed:
                    log.info("started stranded exception requests: %s", resumed)
        except Exception:
            log.exception("recovery pass failed; retrying")
        await asyncio.sleep(interval)


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, client: Client | None = None
) -> None:
    """The worker on `client` (the embedded stack's, which its web app and intake share: their
    filings start eagerly here), or on a client of its own."""
    settings.check()
    services = build_services(settings)
    client = client or await connect(settings, sdk_metrics=True)
    # A server started elsewhere may not know them yet; a workflow upserting an unknown
    # attribute would fail every task.
    await search_attributes.register(client, settings.temporal_namespace)
    worker = build_worker(client, services, settings.task_queue)
    freeze_start_up()
    stop = stop or asyncio.Event()
    filing = build_filing(services, client)
    recovery = asyncio.create_task(
        recover_interrupted_work(
            filing,
            settings.worker_recovery_interval_seconds,
            build_exceptions(services, client),
        )
    )
    state = WorkerState()
    health_stop = asyncio.Event()
    health = (
        asyncio.create_task(
            serve_health(
                health_app(services.sessions, client, state),
                settings.worker_health_host,
                settings.worker_health_port,
                health_stop,
            )
        )
        if settings.worker_health_port
        else None
    )
    async with worker:
        state.polling = True
        log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
        await stop.wait()
        # Not ready from here on: in-flight activities finish (the worker's graceful
        # shutdown) while nothing new is routed to this process.
        state.polling = False
    recovery.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recovery
    health_stop.set()
    if health is not None:
        await health


def main() -> None:
    settings = Settings()
    configure_logging(settings.json_logs, settings.log_level, secrets=settings.secret_values())
    configure_tracing("accord-worker", settings.otel_endpoint)
    run_until_signalled(lambda stop: run_worker(settings, stop))


if __name__ == "__main__":
    main()
