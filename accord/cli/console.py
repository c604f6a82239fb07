"""The `accord` console script. It only loads the CLI and hands over to it: Ctrl-C (or a
SIGINT to `make run`'s process group) while the CLI's modules are still loading, or while the
command line is read, ends it with one line, not with a traceback of whichever import it
interrupted, and never goes unheard (accord.cli.interrupts says how it could).

Only the standard library is imported here, before the CLI (the packages it sits in,
`accord` and `accord.cli`, import nothing)."""

from __future__ import annotations

from accord.cli import interrupts


def main() -> None:
    interrupts.hold()  # released by the root command's callback (accord.cli.app)
    from accord.cli.app import main as cli

    cli()


if __name__ == "__main__":
    main()
