"""Structured logs: one JSON object per line in production (text in development), every
record carrying the dispute it concerns, and never an email body, password, secret or token.

Every process configures logging once at start (`configure_logging`); the standard library's
loggers (Accord's, uvicorn's, Temporal's) all go through the same processors.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from temporalio import activity

SENSITIVE = frozenset(
    {
        "authorization",
        "body",
        "html_body",
        "password",
        "raw",
        "secret",
        "secret_key",
        "text_body",
        "token",
    }
)
"""Fields dropped from every record, whoever logs them."""


def _dispute(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The dispute a record concerns: the workflow's or activity's id (the dispute number)."""
    if "dispute" in event:
        return event
    record = event.get("_record")
    for attribute in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, attribute, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            event["dispute"] = details["workflow_id"]
            return event
    if activity.in_activity():
        event["dispute"] = activity.info().workflow_id
    return event


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in SENSITIVE & event.keys():
        event[key] = "[redacted]"
    return event


def configure_logging(json_lines: bool, level: str = "INFO", stream: IO[str] | None = None) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _dispute,
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
