"""`python -m accord.cli ARGS`: the `accord` command (tests and the chaos tooling run it so)."""

from __future__ import annotations

from accord.cli.app import main

if __name__ == "__main__":
    main()
