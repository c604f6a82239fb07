"""The worker's sandbox imports workflow code once per process, and may, because that code
keeps no state between disputes at module level."""

from __future__ import annotations
import __future__

import dataclasses
import enum
import importlib
import inspect
import pkgutil
import re
import types
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.common import RetryPolicy
from temporalio.converter import DataConverter
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from accord.runtime.wiring import WORKFLOW_RUNNER
from tests.conftest import Stack

IMMUTABLE = (int, float, str, bytes, bool, Decimal, timedelta, re.Pattern, enum.Enum, type(None))


def _immutable(value: Any) -> bool:
    if isinstance(value, IMMUTABLE):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(v) for v in value)
    if isinstance(value, types.MappingProxyType):
        return all(_immutable(k) and _immutable(v) for k, v in value.items())
    if isinstance(value, BaseModel):
        return bool(value.model_config.get("frozen"))
    if isinstance(value, RetryPolicy):
        return True  # built once, handed to every activity call unchanged
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return bool(type(value).__dataclass_params__.frozen)  # type: ignore[attr-defined]
    return False


def test_workflow_modules_hold_no_mutable_state() -> None:
    """Shared by every dispute the worker runs (the sandbox passes them through): a module-level
    list, dict or set here would carry one dispute's state into another's replay."""
    found = []
    for info in pkgutil.iter_modules(workflows.__path__, "workflows."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("__") or isinstance(
                value, (types.ModuleType, TypeVar, __future__._Feature)
            ):
                continue
            if inspect.isclass(value) or callable(value):
                continue
            if getattr(value, "__module__", None) == "typing":
                continue
            if not _immutable(value):
                found.append(f"{info.name}.{name}: {type(value).__name__}")
    assert found == []


def test_the_worker_imports_workflow_code_once_and_still_refuses_nondeterministic_calls(
    stack: Stack,
) -> None:
    assert stack.worker.config()["workflow_runner"] is WORKFLOW_RUNNER
    restrictions = WORKFLOW_RUNNER.restrictions
    assert restrictions.passthrough_all_modules
    default = SandboxRestrictions.default
    assert restrictions.invalid_module_members == default.invalid_module_members
    assert restrictions.invalid_modules == default.invalid_modules


def instance_details() -> WorkflowInstanceDetails:
    """What a worker gives a new dispute workflow instance, with the sandbox's stand-in info
    (as SandboxedWorkflowRunner.prepare_workflow builds one to check a workflow)."""
    from temporalio.worker.workflow_sandbox._runner import _fake_info

    from workflows.dispute import DisputeWorkflow

    return WorkflowInstanceDetails(
        payload_converter_factory=DataConverter.default._new_payload_converter,
        failure_converter_class=DataConverter.default.failure_converter_class,
        interceptor_classes=[],
        defn=workflow._Definition.must_from_class(DisputeWorkflow),
        info=_fake_info,
        randomness_seed=1,
        extern_functions={},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


async def test_a_workflows_serialization_context_is_read_without_running_code_in_the_sandbox() -> (
    None
):
    """The worker asks a workflow for the serialization context of each payload list it encodes
    or decodes; the runner reads it from the instance inside the sandbox, rather than compiling
    and running a statement there for each (14 % of the process's CPU under load), and gets the
    answer the sandbox's own way gives. Fails if temporalio's sandbox changes its inside."""
    from temporalio.api.enums.v1 import CommandType
    from temporalio.worker._command_aware_visitor import CommandInfo
    from temporalio.worker.workflow_sandbox._runner import _Instance

    sandbox = SandboxedWorkflowRunner(restrictions=WORKFLOW_RUNNER.restrictions)
    details = instance_details()
    ours, theirs = WORKFLOW_RUNNER.create_instance(details), sandbox.create_instance(details)
    assert isinstance(theirs, _Instance) and isinstance(ours, _Instance)
    ran: list[str] = []
    run_code = ours._run_code
    ours._run_code = lambda code, **extra: ran.append(code) or run_code(code, **extra)  # type: ignore[method-assign]
    asked = [
        None,
        CommandInfo(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, command_seq=7),
        CommandInfo(command_type=CommandType.COMMAND_TYPE_START_TIMER, command_seq=1),
    ]
    for command in asked:
        context = ours.get_serialization_context(command)
        assert context is not None and context == theirs.get_serialization_context(command)
        assert type(ours.get_external_store_context(command)) is type(
            theirs.get_external_store_context(command)
        )
    assert ran == []


async def test_a_client_waits_for_a_frontend_that_is_not_healthy_yet(
    monkeypatch: pytest.MonkeyPatch, env: Any
) -> None:
    """A dev server listens before its frontend is healthy; a connection in between is refused
    with "Frontend is not healthy yet" (the clean-clone CI saw it in the chaos run). `connect`
    asks again, and gives any other refusal at once. The window cannot be opened on demand
    with a real server, so the SDK's connect is made to refuse twice (a stand-in)."""
    from temporalio.client import Client

    from accord.platform import temporal
    from accord.platform.settings import Settings

    real = Client.connect
    refusals: list[str] = []

    async def refusing(cls: Any, *args: Any, **kwargs: Any) -> Client:
        if len(refusals) < 2:
            refusals.append("refused")
            raise RuntimeError(
                "Failed client connect: `get_system_info` call error after connection: Status {"
                ' code: Unavailable, message: "Frontend is not healthy yet" }'
            )
        return await real(*args, **kwargs)

    monkeypatch.setattr(Client, "connect", classmethod(refusing))
    settings = Settings(temporal_address=env.client.service_client.config.target_host)
    client = await temporal.connect(settings)
    assert refusals == ["refused", "refused"] and client.namespace == settings.temporal_namespace

    async def elsewhere(cls: Any, *args: Any, **kwargs: Any) -> Client:
        refusals.append("other")
        raise RuntimeError("Failed client connect: connection refused")

    monkeypatch.setattr(Client, "connect", classmethod(elsewhere))
    with pytest.raises(RuntimeError, match="connection refused"):
        await temporal.connect(settings)
    assert refusals.count("other") == 1
