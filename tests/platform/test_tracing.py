"""One trace per user action: the web request's span is the parent of the workflow update it
makes, which is the parent of the activities the workflow runs for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from accord.application import build_services
from accord.platform.tracing import temporal_interceptors
from tests.conftest import CONVERTER, MailCapture, Stack, dev_stack
from tests.web.test_web_api import CLAIMANT, filing
from tests.web_harness import api, seed_accounts, token_for
from tests.workflows.test_dispute_paths import offered
from web.app import create_app

EXPORTER = InMemorySpanExporter()


def recorder() -> InMemorySpanExporter:
    """The process's tracer provider, set once (OpenTelemetry allows no second one)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    return EXPORTER


async def test_a_web_action_is_one_trace_down_to_the_activities(
    dev_server: WorkflowEnvironment, sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    # On the dev server: the time-skipping test server does not pass update headers on.
    stack = dev_stack(dev_server, sqlite_url, smtp, tmp_path)
    await stack.worker.__aenter__()
    try:
        await traced_action(stack)
    finally:
        await stack.worker.__aexit__(None, None, None)


async def traced_action(stack: Stack) -> None:
    spans = recorder()
    traced = Client(
        stack.client.service_client,
        namespace=stack.client.namespace,
        data_converter=CONVERTER,
        interceptors=temporal_interceptors(),
    )
    seed_accounts(stack.sessions)
    app = create_app(stack.settings, build_services(stack.settings), traced)
    async with api(app, token_for(stack, CLAIMANT)) as client:
        filed = await client.post("/api/disputes", json=filing())
    assert filed.status_code == 201, filed.text
    number = filed.json()["number"]
    mediator = await offered(stack, number)
    async with api(app, token_for(stack, f"{mediator}@vendor.example")) as client:
        accepted = await client.post(
            f"/api/disputes/{number}/accept-assignment",
            json={"impartiality_declaration": "No ties to either party or to the outcome."},
        )
    assert accepted.status_code == 200, accepted.text

    def request_trace(route: str) -> int:
        traces = {
            s.context.trace_id
            for s in spans.get_finished_spans()
            if s.kind is SpanKind.SERVER
            and (s.attributes or {}).get("http.route") == route
            and s.context is not None
        }
        [trace_id] = traces  # one request, one trace
        return trace_id

    def names_in(trace_id: int) -> list[str]:
        return [
            s.name
            for s in spans.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        ]

    filing_trace = request_trace("/api/disputes")
    update_trace = request_trace("/api/disputes/{number}/accept-assignment")
    for _ in range(50):  # the worker ends its spans a moment after the answers
        if "HandleUpdate:accept_assignment" in names_in(filing_trace):
            break
        await asyncio.sleep(0.1)
    # The filing request's trace runs through the workflow into its activities...
    names = names_in(filing_trace)
    for expected in (
        "StartWorkflow:DisputeWorkflow",
        "RunWorkflow:DisputeWorkflow",
        "StartActivity:record_event",
        "RunActivity:record_event",
        "HandleUpdate:accept_assignment",
    ):
        assert expected in names, (expected, names)
    # ...and a later action's request is linked from the update it made in that workflow.
    assert "StartWorkflowUpdate:accept_assignment" in names_in(update_trace)
    [handled] = [
        s for s in spans.get_finished_spans() if s.name == "HandleUpdate:accept_assignment"
    ]
    assert any(link.context.trace_id == update_trace for link in handled.links)
    # Span names carry route templates, never the values in the path.
    assert not any(number in s.name for s in spans.get_finished_spans())
