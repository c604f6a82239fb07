"""The `accord` console script. It only loads the CLI and hands over to it: Ctrl-C (or a
SIGINT to `make run`'s process group) while the CLI's modules are still loading ends it with
one line, not with a traceback of whichever import it interrupted.

Only the standard library is imported here, before the CLI (the packages it sits in,
`accord` and `accord.cli`, import nothing)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

INTERRUPTED = 130
"""The exit status of a command stopped by SIGINT (128 + 2), as a shell reports it."""


def main() -> None:
    # While the CLI loads, SIGINT only sets a flag. Left to raise KeyboardInterrupt it could
    # land in a finalizer the import runs (importlib's module-lock weakref callback, a
    # __del__), where Python prints "Exception ignored" and goes on: `make run` then started
    # as if Ctrl-C had never been pressed (CI of f16a997).
    pressed: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)

    signal.signal(signal.SIGINT, remember)
    try:
        from accord.cli.app import main as cli
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        sys.stderr.write("accord: stopped while starting (Ctrl-C); nothing was done\n")
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    cli()


if __name__ == "__main__":
    main()
