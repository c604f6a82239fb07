"""OpenTelemetry tracing from a web request to the workflow it starts or updates and the
activities the workflow runs.

FastAPI opens a server span per request (its built-in telemetry, which also continues a
caller's traceparent); Temporal's TracingInterceptor carries the current span into the headers
of the workflows and updates the request starts, and continues it in the worker: a filing's
trace runs through the workflow into its activities, and each later action's update is linked
from the workflow's trace to the request that made it. Spans are
exported over OTLP/HTTP to ACCORD_OTEL_ENDPOINT; with none set, nothing is recorded or sent.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor


def configure_tracing(service: str, endpoint: str, exporter: SpanExporter | None = None) -> None:
    """Export this process's spans (service: accord-web, accord-worker, accord-intake)."""
    if not endpoint and exporter is None:
        return
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def temporal_interceptors() -> list[Any]:
    return [TracingInterceptor()]
