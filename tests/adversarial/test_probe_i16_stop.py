"""Probes of issue 16's clean stop and reuse (accord.runtime.embedded): `accord run` finding its Temporal
port taken. It says it reuses what listens there; when what listens is no Temporal server (a
stray process, a server that hangs), it must say so plainly and stop, not print a traceback
of the SDK's connection error after the banner's promise."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from accord.runtime.embedded import port_open
from tests.conftest import REPO_ROOT
from tests.processes import dev_servers_of, spawn_run, start_run, wait_until

ENDS_WITHIN = 180.0
"""A bound on the wait, not a measure: the client gives up on a silent listener in seconds."""

SAID_WITHIN = 20.0
"""How long a person waits to hear that their Temporal port is squatted: the run asks the
listener for a few seconds (the SDK's own timeout for an answer, 30 s, is far too long to stare
at a silent terminal), and a loaded machine needs seconds more to start Python."""


def test_a_port_taken_by_something_that_is_no_temporal_server_is_said_plainly(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    env, temporal_port, state = run_env
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", temporal_port))
        squatter.listen(8)  # accepts connections, never answers
        process = spawn_run(env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = process.communicate(timeout=SAID_WITHIN)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
            raise AssertionError(
                f"accord run did not say so within {SAID_WITHIN} s:\n{out[-2000:]}"
            ) from None
    assert process.returncode != 0, out[-2000:]
    assert f"127.0.0.1:{temporal_port}" in out and "no Temporal server" in out, out[-2000:]
    for internal in ("Traceback", "RuntimeError", "get_system_info", "tonic", "│"):
        assert internal not in out, (internal, out[-2000:])
    assert "Accord is running at" not in out, out[-2000:]
    assert not dev_servers_of(state)


def test_a_web_port_taken_stops_the_run_with_what_to_do(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    """`accord run` stops with "port N is taken; set ACCORD_WEB_PORT to a free one" (a
    SystemExit with its message); `accord.cli.app.main` ended every SystemExit silently, with its
    code only: the run stopped and said nothing of why."""
    env, _, state = run_env
    web_port = int(env["ACCORD_WEB_PORT"])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", web_port))
        squatter.listen(8)
        run = subprocess.run(
            [sys.executable, "-m", "accord.cli", "run"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=ENDS_WITHIN,
            start_new_session=True,
        )
    assert run.returncode != 0, run.stdout[-2000:]
    assert f"port {web_port} is taken; set ACCORD_WEB_PORT" in run.stderr, (run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    assert not dev_servers_of(state), "the dev server it started outlived the refusal"


def test_kill_9_during_start_up_leaves_no_dev_server_and_the_next_run_starts_its_own(
    run_env: tuple[dict[str, str], int, Path],
) -> None:
    """Killed as soon as its dev server exists (before it listens, before the banner)."""
    env, temporal_port, state = run_env
    process = spawn_run(env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: dev_servers_of(state) or process.poll() is not None, "no dev server")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_until(lambda: not dev_servers_of(state), "the dev server outlived a kill in start-up")
    wait_until(lambda: not port_open("127.0.0.1", temporal_port), "the Temporal port stayed taken")
    process, banner = start_run(env)
    try:
        assert "reusing" not in banner and "Traceback" not in banner, banner
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=ENDS_WITHIN) == 0
    wait_until(lambda: not dev_servers_of(state), "the dev server outlived a Ctrl-C")


def test_a_reused_server_is_said_so_and_outlives_a_kill_9_of_the_run(
    run_env: tuple[dict[str, str], int, Path],
    tmp_path: Path,
) -> None:
    """The README: "a server already listening on the Temporal port is reused, said so, and
    left running" - also when the run that reused it is killed -9."""
    from accord.runtime.embedded import temporal_binary
    from models import search_attributes

    env, temporal_port, state = run_env
    foreign = subprocess.Popen(
        [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(temporal_port),
            "--headless",
            "--log-level",
            "error",
            "--db-filename",
            str(tmp_path / "foreign.db"),
            *search_attributes.DEV_SERVER_FLAGS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", temporal_port), "the foreign server is not up")
        process, banner = start_run(env)
        assert f"a server already listens on 127.0.0.1:{temporal_port}; reusing it" in banner
        assert "will leave it running" in banner
        assert not dev_servers_of(state), "it started a server of its own as well"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert foreign.poll() is None and port_open("127.0.0.1", temporal_port)
    finally:
        foreign.terminate()
        foreign.wait(timeout=ENDS_WITHIN)
