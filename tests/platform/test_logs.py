"""Structured logs: JSON lines carrying the dispute number, without bodies or secrets."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from accord.platform.logs import configure_logging


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging(json_lines=True, stream=out)
    yield out
    root.handlers = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_records_are_json_with_the_dispute_and_no_secret(
    json_logs: io.StringIO,
) -> None:
    logging.getLogger("accord.test").info(
        "update accepted", extra={"temporal_workflow": {"workflow_id": "DSP-2026-000042"}}
    )
    structlog.get_logger("accord.intake").warning(
        "reply queued", body="Dear Carl, our margin is 12%", password="hunter2", inbound=7
    )
    first, second = lines(json_logs)
    assert first["event"] == "update accepted" and first["dispute"] == "DSP-2026-000042"
    assert first["level"] == "info" and first["logger"] == "accord.test" and "timestamp" in first
    assert second["body"] == "[redacted]" and second["password"] == "[redacted]"
    assert second["inbound"] == 7


def test_an_activity_s_records_name_its_dispute(json_logs: io.StringIO) -> None:
    def work() -> None:
        logging.getLogger("accord.activities").info("remedy applied")

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="DSP-2026-000007")
    env.run(activity.defn(name="work")(work))
    [record] = lines(json_logs)
    assert record["dispute"] == "DSP-2026-000007"
