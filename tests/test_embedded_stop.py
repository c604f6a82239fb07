"""`make run` (`accord run`) stopped the hard way: kill -9 of its whole process group, what a
closed terminal tab or an impatient `kill -9 -<pgid>` does. The Temporal dev server it started
must not live on behind it, and the next `accord run` must start cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.runtime.embedded import port_open
from tests.conftest import REPO_ROOT, deployed_environment, free_port

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


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], int, Path]]:
    env, temporal_port, state = run_environment(tmp_path, "accord-stop")
    yield env, temporal_port, state
    # Whatever the outcome, leave no dev server of this test behind.
    for pid in dev_servers_of(state):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(300)
def test_kill_9_of_the_run_process_group_leaves_no_dev_server_and_the_next_run_starts_clean(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    env, temporal_port, state = run_env
    process, banner = start_run(env)
    assert "reusing" not in banner, banner
    assert dev_servers_of(state), "the dev server should be running while accord run is"

    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_until(lambda: not dev_servers_of(state), "the Temporal dev server outlived accord run")
    wait_until(
        lambda: not port_open("127.0.0.1", temporal_port),
        f"port {temporal_port} is still taken after accord run was killed",
    )

    # The next run starts its own dev server on the same state folder and stops it on Ctrl-C.
    process, banner = start_run(env)
    assert "reusing" not in banner, banner
    assert "Traceback" not in banner, banner
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=GONE_WITHIN) == 0
    wait_until(lambda: not dev_servers_of(state), "the dev server outlived a Ctrl-C")


def keeper(*command: str) -> tuple[subprocess.Popen[bytes], int]:
    """`accord.runtime.keeper` around `command`, and the write end of its lifeline."""
    lifeline_in, lifeline = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "accord.runtime.keeper", "10", *command],
        stdin=lifeline_in,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    os.close(lifeline_in)
    return process, lifeline


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_the_keeper_stops_its_server_when_the_lifeline_closes() -> None:
    process, lifeline = keeper("sleep", "600")
    wait_until(lambda: children_of(process.pid), "the keeper did not start its command")
    [server] = children_of(process.pid)
    os.close(lifeline)  # what the kernel does when the holder dies, however it dies
    assert process.wait(timeout=GONE_WITHIN) == 0
    assert not Path(f"/proc/{server}").exists() or "Z" in Path(f"/proc/{server}/stat").read_text()


def test_the_keeper_stops_its_server_on_sigterm_and_ends_with_it_when_it_ends() -> None:
    process, lifeline = keeper("sleep", "600")
    wait_until(lambda: children_of(process.pid), "the keeper did not start its command")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=GONE_WITHIN) == 0
    os.close(lifeline)

    process, lifeline = keeper(sys.executable, "-c", "raise SystemExit(3)")
    assert process.wait(timeout=GONE_WITHIN) == 3  # the server's own failure is passed on
    os.close(lifeline)
