"""Accord's commands as their own processes, as a person or a deployment runs them: a free port,
the environment a freshly deployed process sees, `accord <args>` to the end, and `accord run`
(the embedded stack, `make run`) in its own process group, waited for and cleaned up after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accord.platform.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deployed_environment(**settings: str) -> dict[str, str]:
    """This process's environment with no Accord setting left in it, plus `settings`: what a
    freshly deployed process sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.pop("DATABASE_URL", None)
    return env | settings


def run_accord(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`accord <args>` as its own process, to the end (its output kept)."""
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


READY = "Accord is running at"


GONE_WITHIN = 60.0
"""A bound on the wait (polled), not a measure: the dev server stops in well under a second."""


def dev_servers_of(state_dir: Path) -> list[int]:
    """Process ids of every live Temporal dev server keeping its database in `state_dir`."""
    database = str(state_dir / "temporal.db").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text()
        except OSError:
            continue
        zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
        if database in argv and b"start-dev" in argv and not zombie:
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (still so after {GONE_WITHIN:.0f}s)")
        time.sleep(0.2)


def spawn_run(env: dict[str, str], **output: Any) -> subprocess.Popen[str]:
    """`accord run` in a process group of its own (as `make run` is in a terminal's); `output`
    says where its stdout and stderr go (subprocess.Popen's keywords)."""
    return subprocess.Popen(
        [sys.executable, "-m", "accord.cli", "run"],
        env=env,
        cwd=REPO_ROOT,
        text=True,
        start_new_session=True,
        **output,
    )


def start_run(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`accord run` in a process group of its own, read up to its banner."""
    process = spawn_run(env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if READY in line:
            return process, "".join(seen)
    process.wait()
    pytest.fail(
        f"accord run ended (exit {process.returncode}) before it was ready:\n{''.join(seen)}"
    )


def run_environment(
    tmp_path: Path, queue: str, **settings: str
) -> tuple[dict[str, str], int, Path]:
    """The environment of an `accord run` on free ports with its state under `tmp_path` (its
    task queue named `queue`-<port>); `settings` add to it. Also its Temporal port and state."""
    temporal_port = free_port()
    state = tmp_path / "state"
    env = deployed_environment(
        ACCORD_STATE_DIR=str(state),
        ACCORD_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        ACCORD_TEMPORAL_UI_PORT=str(free_port()),
        ACCORD_WEB_PORT=str(free_port()),
        ACCORD_WEB_METRICS_PORT="0",
        ACCORD_SMTP_PORT=str(free_port()),
        ACCORD_INTAKE_SMTP_PORT="0",
        ACCORD_TASK_QUEUE=f"{queue}-{temporal_port}",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env | settings, temporal_port, state
