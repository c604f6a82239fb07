"""Fixtures of the adversarial tests: gated activities, and a race stack whose disputes' histories
must all replay on the current code when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.adversarial._common import GATED, replay_all
from tests.conftest import MailCapture, Stack, make_settings, seed
from tests.races import Gate, gated


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Gate]]:
    found = {name: Gate() for name in GATED}
    for name, cls in GATED.items():
        monkeypatch.setattr(cls, name, gated(cls, name, found[name]))
    yield found
    for gate in found.values():
        gate.release()


@pytest.fixture
async def race(
    gates: dict[str, Gate],
    env: WorkflowEnvironment,
    sqlite_url: str,
    smtp: tuple[MailCapture, int],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    mail, port = smtp
    harness = Stack(env, make_settings(sqlite_url, port, tmp_path), mail)
    seed(harness.sessions)
    async with harness.worker:
        yield harness
        for gate in gates.values():
            gate.release()
        failures = await replay_all(harness)
    assert failures == [], f"probe histories do not replay: {failures}"
