"""The root of the `accord` command: the Typer app every audience's commands are merged into,
`main()` (what the console script and `python -m accord.cli` run), the check of every
argument before a command runs, and the help screens as plain text.

It serves no audience of its own; the commands are in the audience modules, merged in the
order `accord --help` lists them: `operators` (running Accord), `records` (reading it),
`partners` (the parties), `neutrals` (mediators and the review board), `admins` (steering
disputes, the intake and the outbox) and `exceptions` (exceptions to the rules of engagement,
for the partners who ask, the board and the admins). What they share is `accord.cli.common`.
"""

from __future__ import annotations

import inspect
import os
import sys

import typer
from sqlalchemy.exc import DBAPIError

from accord.cli import admins, exceptions, interrupts, neutrals, operators, partners, records
from accord.platform.db import schema_missing
from models.text import problem

# Start-up time, not cycles: a command imports the modules only it needs (the embedded stack,
# the web server, the intake, the schema's migrations, ...) inside its function, so
# `accord --help` and every other command start without loading them. No import here is made
# lazy to break a cycle: the package imports one way, app -> audiences -> common.

HELP = """`accord`: run the stack, file disputes, list them and their tasks, and act on them.

Every dispute action is a workflow update, so the CLI sees exactly the refusals the web and
API will: the workflow's validators decide, and nothing is recorded when they refuse.
"""

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=HELP, pretty_exceptions_show_locals=False
)


@app.callback()
def _started() -> None:
    # The command line is read: Ctrl-C, held since the console script began, raises again (or
    # ends the command now, if it came meanwhile).
    interrupts.release()


for audience in (operators, records, partners, neutrals, admins, exceptions):
    # Without a name: the audience's commands (and its groups) join the root's.
    app.add_typer(audience.commands)


def unfit_argument(argv: list[str]) -> str | None:
    """Why an argument cannot be taken (models.text; line breaks allowed here, one-line fields
    refuse them in their payload), naming its option, or None. Checked before any command
    runs: an argument is looked up (a login, a dispute number) before any payload is built,
    and bytes that are not UTF-8 (Python makes them lone surrogates) fail every lookup."""
    option: str | None = None
    for position, arg in enumerate(argv, start=1):
        why = problem(arg, multiline=True)
        if why is not None:
            return f"{option or f'argument {position}'}: holds {why}"
        option = arg.split("=", 1)[0] if arg.startswith("--") else None
    return None


def main() -> None:
    """The `accord` console script."""
    code = 0
    unfit = unfit_argument(sys.argv[1:])
    if unfit is not None:
        typer.secho(f"error: {unfit}", fg=typer.colors.RED, err=True)
        sys.stderr.flush()
        os._exit(2)
    try:
        app()
    except DBAPIError as exc:
        if not schema_missing(exc):
            raise
        typer.secho(
            "error: the database has no Accord tables yet (or not this release's): run"
            " `accord migrate`; nothing was done",
            fg=typer.colors.RED,
            err=True,
        )
        code = 2
    except SystemExit as exc:  # typer ends every command with one
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            # A stop with its reason (`accord run`: "port 8000 is taken; set ..."): said, as
            # the interpreter would have said it had this not caught it.
            typer.secho(f"error: {exc.code}", fg=typer.colors.RED, err=True)
    # A command line Typer answered itself (--help, a usage error) never reached _started.
    interrupts.release()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native runtime can abort while the interpreter finalizes
    # ("Fatal Python error: PyGILState_Release"); every command is complete by now, so leave
    # without finalizing.
    os._exit(code if isinstance(code, int) else 0)


def _paragraphs(text: str | None) -> str | None:
    """Help text with each paragraph on one line, for the help screen to wrap to the terminal
    (a docstring's own line breaks would leave ragged lines)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _plain_help(typer_app: typer.Typer) -> None:
    """Help screens as plain text wrapped to the terminal (80 columns fit): Rich's boxed
    tables cut long option names and words short ("--against-majority-r…") and read square
    brackets as markup."""
    typer_app.rich_markup_mode = None
    typer_app.info.help = _paragraphs(typer_app.info.help)
    for command in typer_app.registered_commands:
        command.help = _paragraphs(command.help or (command.callback and command.callback.__doc__))
        # Listed whole under Commands (wrapped), not cut off at some 45 characters.
        command.short_help = command.short_help or (command.help or "").split("\n\n")[0]
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)
            group.short_help = group.short_help or group.typer_instance.info.help


_plain_help(app)
