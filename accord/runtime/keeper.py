"""Keeps the Temporal dev server of `accord run` alive no longer than `accord run` itself.

`accord run` starts the dev server in a session of its own, so that Ctrl-C in the terminal
reaches `accord run` alone and it stops the worker before the server. A server in its own
session is out of reach of a kill of the terminal's process group, though, so it is started
through this small keeper. The keeper's standard input is a pipe whose other end only
`accord run` holds: when `accord run` ends, however it ends (Ctrl-C, SIGTERM, a kill -9 of its
process group, a crash), the pipe closes, and the keeper stops the server - SIGTERM, then
SIGKILL after a grace period - and exits.

Usage: python -m accord.runtime.keeper GRACE_SECONDS COMMAND [ARGS...]   (standard input: the pipe)

Only the standard library is imported here: it starts in a blink and needs nothing else.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from types import FrameType

POLL_SECONDS = 0.5


def keep(command: list[str], grace: float) -> int:
    """Run `command` until it ends, standard input reaches its end, or a signal asks to stop."""
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603 - our own command
    asked = False

    def ask_to_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        asked = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, ask_to_stop)
    while server.poll() is None and not asked:
        readable, _, _ = select.select([sys.stdin.fileno()], [], [], POLL_SECONDS)
        if readable and not os.read(sys.stdin.fileno(), 512):
            break  # the holder of the pipe is gone
    if server.poll() is not None:
        return server.returncode
    server.terminate()
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(
            "usage: python -m accord.runtime.keeper GRACE_SECONDS COMMAND [ARGS...]",
            file=sys.stderr,
        )
        return 2
    return keep(argv[1:], float(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
