"""Wiring: build the collaborators from Settings, once per process."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import SerializationContext
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance as _SandboxedInstance

from accord.application import Services
from accord.disputes.filing import worker_polling
from accord.platform.tracing import temporal_interceptors
from accord.remedies.adapters import LedgerAdapter, RemedyAdapter, WebhookAdapter
from activities.assignment import AssignmentActivities, PanelActivities
from activities.citations import CitationActivities
from activities.deadlines import DeadlineActivities
from activities.engagement import EngagementActivities
from activities.exceptions import ExceptionActivities
from activities.notify import NotificationActivities
from activities.records import RecordActivities
from activities.remedies import RemedyActivities
from activities.texts import TextActivities
from models.enums import RemedyKind
from notifications.outbox import Outbox
from workflows.dispute import DisputeWorkflow
from workflows.exception import ExceptionWorkflow

# Exceptions that mean a bug in workflow code (ApplicationError, which fails just an update,
# is deliberately not among them).
PROGRAMMING_ERRORS = (KeyError, AttributeError, TypeError, NameError, IndexError, AssertionError)


class ConfigurationError(ValueError):
    pass


def build_remedy_activities(services: Services) -> RemedyActivities:
    """The ledger for every remedy kind, except those routed to a webhook by the settings."""
    settings = services.settings
    routed: dict[RemedyKind, RemedyAdapter] = {}
    if settings.remedy_webhooks:
        if settings.remedy_webhook_secret is None:
            raise ConfigurationError(
                "ACCORD_REMEDY_WEBHOOK_SECRET: required when ACCORD_REMEDY_WEBHOOKS is set"
            )
        secret = settings.remedy_webhook_secret.get_secret_value().encode()
        for kind, url in settings.remedy_webhooks.items():
            routed[kind] = WebhookAdapter(
                url, secret, settings.remedy_webhook_timeout_seconds, name=f"webhook:{kind.value}"
            )
    return RemedyActivities(services.sessions, LedgerAdapter(services.sessions), routed)


def activity_methods(services: Services) -> list[Any]:
    records = RecordActivities(
        services.sessions,
        public_amount_threshold=services.settings.public_amount_threshold,
        anonymity_k=services.settings.precedent_anonymity_k,
        outbox=services.outbox,
    )
    deadlines = DeadlineActivities(services.playbooks)
    citations = CitationActivities(services.sessions, services.playbooks)
    engagement = EngagementActivities(services.sessions, services.playbooks)
    assignment = AssignmentActivities(services.sessions)
    panels = PanelActivities(services.sessions)
    notify = NotificationActivities(services.outbox)
    stored_texts = TextActivities(services.sessions)
    exception_steps = ExceptionActivities(services.sessions, services.outbox)
    remedies = build_remedy_activities(services)
    return [
        remedies.apply_remedy,
        remedies.waive_remedy,
        records.record_event,
        records.project_live,
        records.write_precedent,
        records.find_similar_precedents,
        citations.find_citable,
        engagement.recommend,
        deadlines.compute_deadline,
        deadlines.shift_deadline,
        deadlines.extend_deadline,
        assignment.assign_mediator,
        assignment.release_seat,
        panels.draw_panel,
        panels.draw_exception_panel,
        exception_steps.record_exception_step,
        exception_steps.standing,
        notify.send_notification,
        stored_texts.check_texts,
    ]


GRACEFUL_SHUTDOWN = timedelta(seconds=30)


class _Sandboxed(_SandboxedInstance):
    """A dispute's sandboxed workflow, asked for its payloads' serialization contexts directly.

    temporalio 1.35 asks a workflow for the context of every payload list of every activation
    and completion it encodes or decodes (three passes each way), and the sandbox answers each
    question by compiling and running a statement inside it, with its import hooks installed
    and removed: 14 % of the process's CPU under the web benchmark's actions. The answer is a
    plain read of the workflow's info and pending commands (no clock, no I/O, nothing the
    sandbox guards against), so it is read straight from the instance inside; the workflow's
    own code still runs only in the sandbox. test_worker_runner checks both answers agree."""

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        context: SerializationContext | None = self._inside().get_serialization_context(
            command_info
        )
        return context

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._inside().get_external_store_context(command_info)

    def _inside(self) -> Any:
        return self.globals_and_locals["__temporal_in_sandbox"]


@dataclass(frozen=True)
class _Runner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _Sandboxed(det, self.runner_class, self.restrictions)


WORKFLOW_RUNNER = _Runner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())
"""The sandbox, still refusing non-deterministic calls (clocks, randomness, I/O) at run time,
but importing the workflow modules once per process rather than once per dispute: that import
was 9 % of the worker's CPU under the lifecycle benchmark. Safe because workflows/ holds no
module-level state but constants (checked by test_workflow_modules_hold_no_mutable_state)."""


class RelayingWorker(Worker):
    """A worker that also runs the outbox relay for as long as it runs: the notification
    activity only enqueues, so wherever disputes are worked on, their mail goes out (woken by
    each enqueue in this process, and polling for mail enqueued elsewhere). On shutdown the
    relay claims nothing new and finishes the sends under way, within the same grace period
    as the activities."""

    def __init__(
        self,
        client: Client,
        *,
        outbox: Outbox,
        relay_interval: float,
        graceful_shutdown_timeout: timedelta,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, graceful_shutdown_timeout=graceful_shutdown_timeout, **kwargs)
        self._client = client
        self._task_queue = str(kwargs["task_queue"])
        self._outbox = outbox
        self._relay_interval = relay_interval
        self._relay_grace = graceful_shutdown_timeout.total_seconds()
        self._relay_stop = asyncio.Event()

    async def run(self) -> None:
        relay = asyncio.create_task(self._outbox.run(self._relay_interval, self._relay_stop))
        # Filings on this client start their disputes' first workflow task here (eagerly).
        worker_polling(self._client, self._task_queue, self, True)
        try:
            await super().run()
        finally:
            worker_polling(self._client, self._task_queue, self, False)
            self._relay_stop.set()
            await asyncio.wait({relay}, timeout=self._relay_grace)
            # Past the grace period a send is cut off: its claim lapses and another relay
            # sends it again, with the same Message-ID.
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay

    async def shutdown(self) -> None:
        worker_polling(self._client, self._task_queue, self, False)  # no first tasks now
        self._relay_stop.set()  # from now on the relay only finishes what it has started
        await super().shutdown()


def build_worker(
    client: Client,
    services: Services,
    task_queue: str,
    *,
    fail_workflows_on_bugs: bool = False,
    graceful_shutdown: timedelta = GRACEFUL_SHUTDOWN,
) -> Worker:
    # A client from `connect` traces already (its interceptors serve the worker too).
    traced = any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])
    return RelayingWorker(
        client,
        outbox=services.outbox,
        relay_interval=services.settings.outbox_relay_interval_seconds,
        task_queue=task_queue,
        interceptors=[] if traced else temporal_interceptors(),
        workflows=[DisputeWorkflow, ExceptionWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=activity_methods(services),
        # Database activities are synchronous; they run here, off the workflow event loop.
        activity_executor=ThreadPoolExecutor(max_workers=16),
        max_concurrent_activities=16,
        max_cached_workflows=services.settings.worker_max_cached_workflows,
        # On SIGTERM running activities (and the relay's sends) get this long to finish
        # before they are cancelled (and retried elsewhere); compose allows the container 60 s.
        graceful_shutdown_timeout=graceful_shutdown,
        # In production a bug retries the workflow task until a fixed worker is deployed;
        # tests want it to fail the workflow at once instead of hanging.
        workflow_failure_exception_types=list(PROGRAMMING_ERRORS) if fail_workflows_on_bugs else [],
    )
