"""The Temporal client every process connects with: payloads sealed with the settings' keys,
traces carried into workflows, a dev server's slow start waited out."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from accord.platform.settings import Settings
from accord.platform.tracing import temporal_interceptors
from models.converter import encrypted


def data_converter_for(settings: Settings) -> DataConverter:
    """Every client's and worker's converter: payloads sealed with the settings' keys."""
    return encrypted(settings.payload_key_ring())


NOT_HEALTHY_YET = "not healthy yet"
HEALTHY_WITHIN_SECONDS = 60.0
"""How long a client waits for a server whose frontend says it is not healthy yet: a dev server
just started listens before it is (seconds on a loaded machine)."""


async def connect(
    settings: Settings, *, sdk_metrics: bool = False, answers_within: float | None = None
) -> Client:
    """A client; with `sdk_metrics`, on a runtime exporting Temporal's SDK metrics (workflow and
    activity task latencies, failures, poller counts) at ACCORD_TEMPORAL_METRICS_ADDRESS.

    A frontend that is not healthy yet is asked again, for HEALTHY_WITHIN_SECONDS; any other
    refusal is raised at once. With `answers_within`, each attempt that gets no answer in that
    many seconds is a refusal too (RuntimeError): the SDK itself waits 30 s on a listener that
    accepts the connection and never answers, and no connect option shortens that."""
    runtime = None
    if sdk_metrics and settings.temporal_metrics_address:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=settings.temporal_metrics_address)
            )
        )
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    while True:
        attempt = Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter_for(settings),
            runtime=runtime,
            # Carries the web request's trace into workflows; the worker continues it.
            interceptors=temporal_interceptors(),
        )
        try:
            return await asyncio.wait_for(attempt, answers_within)
        except TimeoutError:
            raise RuntimeError(
                f"{settings.temporal_address} did not answer within {answers_within} s"
            ) from None
        except RuntimeError as exc:
            if NOT_HEALTHY_YET not in str(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.2)
