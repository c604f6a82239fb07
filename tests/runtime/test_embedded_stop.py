"""`make run` (`accord run`) stopped the hard way: kill -9 of its whole process group, what a
closed terminal tab or an impatient `kill -9 -<pgid>` does. The Temporal dev server it started
must not live on behind it, and the next `accord run` must start cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from accord.runtime.embedded import port_open
from tests.conftest import REPO_ROOT
from tests.processes import GONE_WITHIN, dev_servers_of, start_run, wait_until


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
