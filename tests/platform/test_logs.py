"""Structured logs: JSON lines carrying the dispute number, without bodies or secrets."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from accord.platform.logs import configure_logging
from tests.processes import deployed_environment, free_port


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


def test_the_web_process_logs_only_json_uvicorn_included(tmp_path: Path) -> None:
    """`accord web` with JSON logs and no Temporal to reach: what uvicorn itself says (its
    startup failing, with the traceback) is JSON lines like Accord's own, not uvicorn's text
    format, so one log pipeline reads all of it."""
    env = deployed_environment(
        ACCORD_LOG_FORMAT="json",
        ACCORD_WEB_PORT=str(free_port()),
        ACCORD_WEB_METRICS_PORT="0",
        ACCORD_STATE_DIR=str(tmp_path),
        ACCORD_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens there
    )
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "web"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    records = [line for line in done.stderr.splitlines() if line.strip()]
    assert records, "nothing logged"
    not_json = [line for line in records if not line.startswith("{")]
    assert not_json == [], not_json
    parsed = [json.loads(line) for line in records]
    uvicorn = [r for r in parsed if str(r.get("logger", "")).startswith("uvicorn")]
    assert uvicorn, parsed
    # The traceback uvicorn writes is inside one record, not spread over lines of its own.
    assert any("Traceback" in str(r["event"]) for r in uvicorn), uvicorn


def test_a_traceback_is_logged_without_the_secrets_it_holds() -> None:
    """A failure's message and traceback carry whatever the failing code put in them: a
    database URL with its password, a key, a bearer token. The record keeps the traceback (the
    operator needs where it failed) with every configured secret, every password in a URL and
    every bearer token replaced."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging(
        json_lines=True, stream=out, secrets=("S3cret-db-Pa55", "AAECAwQFBgcICQoLDA0ODw==")
    )
    try:
        try:
            raise ConnectionError(
                "could not connect to postgresql+psycopg://accord:S3cret-db-Pa55@db:5432/accord"
                " with key AAECAwQFBgcICQoLDA0ODw== and header Authorization: Bearer tok_9f8e7d"
                " or redis://:otherpass@cache:6379, sent as key=AAECAwQFBgcICQoLDA0ODw%3D%3D"
            )
        except ConnectionError:
            logging.getLogger("accord.test").exception("start-up failed for S3cret-db-Pa55")
        structlog.get_logger("accord.test").error(
            "webhook refused", url="https://hooks:S3cret-db-Pa55@remedies.example/x"
        )
        structlog.get_logger("accord.test").error(
            "nested",
            request={"headers": {"x": "S3cret-db-Pa55"}, "tries": ["Bearer tok_9f8e7d", 3]},
            encoded="client_secret=S3cret-db-Pa55%21&next=1".replace("Pa55%21", "Pa55"),
            query="postgresql://db/accord?user=a&password=QueryPw123&sslmode=require",
            error=ValueError("bad key S3cret-db-Pa55"),
            raw=b"S3cret-db-Pa55",
            seen={"S3cret-db-Pa55"},
            keyed={"S3cret-db-Pa55": 1},
            deep=[[[[[["S3cret-db-Pa55"]]]]]],
            count=3,
        )
    finally:
        root.handlers = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    text = out.getvalue()
    for secret in (
        "S3cret-db-Pa55",
        "AAECAwQFBgcICQoLDA0ODw==",
        "AAECAwQFBgcICQoLDA0ODw%3D%3D",
        "tok_9f8e7d",
        "otherpass",
        "QueryPw123",
    ):
        assert secret not in text, text
    first, second, third = lines(out)
    assert third["request"] == {
        "headers": {"x": "[redacted]"},
        "tries": ["Bearer [redacted]", 3],
    }
    assert "S3cret" not in third["encoded"]
    assert third["query"] == "postgresql://db/accord?user=a&password=[redacted]&sslmode=require"
    assert third["error"] == "ValueError('bad key [redacted]')" and third["count"] == 3
    assert third["keyed"] == {"[redacted]": 1}
    assert first["event"] == "start-up failed for [redacted]"
    assert "Traceback" in str(first["exception"]) and "ConnectionError" in str(first["exception"])
    assert "postgresql+psycopg://accord:[redacted]@db:5432/accord" in str(first["exception"])
    assert "Bearer [redacted]" in str(first["exception"])
    assert second["url"] == "https://hooks:[redacted]@remedies.example/x"


def test_every_secret_setting_is_among_the_values_logs_hide() -> None:
    from pydantic import SecretStr

    from accord.platform.settings import Settings

    secret_fields = [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation in (SecretStr, SecretStr | None)
    ]
    assert len(secret_fields) >= 8, secret_fields
    values = {name: f"value-of-{name}-0123" for name in secret_fields}
    values["payload_keys"] = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    settings = Settings(**values, database_url="postgresql+psycopg://u:in-the-url-pw@h/d")
    hidden = settings.secret_values()
    for name, value in values.items():
        assert value in hidden, name
    assert "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" in hidden
    assert "in-the-url-pw" in hidden
