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

from pydantic import BaseModel
from temporalio.common import RetryPolicy
from temporalio.worker.workflow_sandbox import SandboxRestrictions

import workflows
from accord.runtime import WORKFLOW_RUNNER
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
