"""Structured logs: one JSON object per line in production (text in development), every
record carrying the dispute it concerns, and never an email body, password, secret or token.

Every process configures logging once at start (`configure_logging`); the standard library's
loggers (Accord's, uvicorn's, Temporal's) all go through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import IO, Any
from urllib.parse import quote, quote_plus

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


URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)
BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
QUERY_PASSWORD = re.compile(r"([?&;]\s*(?:password|passwd|pwd)=)[^&\s;]+", re.IGNORECASE)
SHORTEST_SECRET = 4
"""A secret shorter than this is not looked for in text (it would hide ordinary words)."""


class Scrub:
    """Every text of a record, its message and its traceback included, with the process's
    secrets (Settings.secret_values), any password in a URL and any bearer token replaced: a
    failure's message says whatever the failing code put in it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Each as it is and as a URL or form would encode it.
        variants = {form for v in secrets for form in (v, quote(v, safe=""), quote_plus(v))}
        values = sorted({v for v in variants if len(v) >= SHORTEST_SECRET}, key=len, reverse=True)
        self.secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def text(self, value: str) -> str:
        if self.secrets is not None:
            value = self.secrets.sub("[redacted]", value)
        value = URL_PASSWORD.sub(r"\1[redacted]@", value)
        value = QUERY_PASSWORD.sub(r"\1[redacted]", value)
        return BEARER.sub(r"\1[redacted]", value)

    def value(self, value: Any, depth: int = 0) -> Any:
        """Texts scrubbed, within dicts (their keys too), lists and tuples, a few levels down;
        numbers, booleans and None as they are; anything else (an exception, bytes, a set, an
        object, or what lies deeper) as the text the renderer would show, scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth < 5 and isinstance(value, dict):
            return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in value.items()}
        if depth < 5 and isinstance(value, list | tuple):
            return type(value)(self.value(v, depth + 1) for v in value)
        # For the operator reading the log (never shown to a user): what the JSON renderer would
        # have written for the object, without its secrets.
        return self.text(repr(value))

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            event[key] = self.value(value)
        return event


def configure_logging(
    json_lines: bool,
    level: str = "INFO",
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """`secrets`: the values no record may show (the process's Settings.secret_values())."""
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
                Scrub(secrets),
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
