"""The Temporal client every process connects with: payloads sealed with the settings' keys,
traces carried into workflows, a dev server's slow start waited out."""

from __future__ import annotations

import asyncio
import logging
import time

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig

from accord.platform.settings import Settings, revealed
from accord.platform.tracing import temporal_interceptors
from models.converter import encrypted


def data_converter_for(settings: Settings) -> DataConverter:
    """Every client's and worker's converter: payloads sealed with the settings' keys."""
    return encrypted(settings.payload_key_ring())


def client_tls(settings: Settings) -> TLSConfig | bool:
    """How the client secures its connection: plain (False), TLS on the system's roots (True),
    or TLS with the settings' roots, client certificate (mutual TLS) and server name."""
    files = (
        settings.temporal_tls_ca_file,
        settings.temporal_tls_cert_file,
        settings.temporal_tls_key_file,
    )
    if not any(files) and not settings.temporal_tls_server_name:
        return settings.temporal_tls or settings.temporal_api_key is not None
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name or None,
    )


def telemetry(metrics_address: str | None) -> TelemetryConfig:
    """The SDK core's telemetry: its log lines forwarded to the logger `temporalio.core` (so the
    process's logging formats them: JSON outside development) rather than printed by the core
    in its own format; and, at `metrics_address`, its metrics for Prometheus."""
    return TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
        ),
        metrics=PrometheusConfig(bind_address=metrics_address) if metrics_address else None,
    )


_runtimes: dict[str | None, Runtime] = {}


def _runtime(metrics_address: str | None) -> Runtime:
    """One runtime per process (and metrics address): each holds threads and a metrics port."""
    if metrics_address not in _runtimes:
        _runtimes[metrics_address] = Runtime(telemetry=telemetry(metrics_address))
    return _runtimes[metrics_address]


NOT_HEALTHY_YET = "not healthy yet"
HEALTHY_WITHIN_SECONDS = 60.0
"""How long a client waits for a server whose frontend says it is not healthy yet: a dev server
just started listens before it is (seconds on a loaded machine)."""


async def connect(
    settings: Settings, *, sdk_metrics: bool = False, answers_within: float | None = None
) -> Client:
    """A client, over TLS, mutual TLS or with an API key as the settings say (`client_tls`);
    with `sdk_metrics`, on a runtime exporting Temporal's SDK metrics (workflow and activity
    task latencies, failures, poller counts) at ACCORD_TEMPORAL_METRICS_ADDRESS.

    A frontend that is not healthy yet is asked again, for HEALTHY_WITHIN_SECONDS; any other
    refusal is raised at once. With `answers_within`, each attempt that gets no answer in that
    many seconds is a refusal too (RuntimeError): the SDK itself waits 30 s on a listener that
    accepts the connection and never answers, and no connect option shortens that."""
    runtime = _runtime(settings.temporal_metrics_address if sdk_metrics else None)
    api_key = revealed(settings.temporal_api_key)
    tls = client_tls(settings)
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    while True:
        attempt = Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter_for(settings),
            runtime=runtime,
            tls=tls,
            api_key=api_key,
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
