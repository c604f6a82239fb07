"""The `accord` console script. It only loads the CLI and hands over to it: Ctrl-C (or a
SIGINT to `make run`'s process group) while the CLI's modules are still loading ends it with
one line, not with a traceback of whichever import it interrupted.

Only the standard library is imported here, before the CLI (the packages it sits in,
`accord` and `accord.cli`, import nothing)."""

from __future__ import annotations

import os
import sys

INTERRUPTED = 130
"""The exit status of a command stopped by SIGINT (128 + 2), as a shell reports it."""


def main() -> None:
    try:
        from accord.cli.app import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("accord: stopped while starting (Ctrl-C); nothing was done\n")
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    cli()


if __name__ == "__main__":
    main()
