"""Ctrl-C held while a command starts. Only the standard library is imported here: the console
script holds it before the CLI is loaded.

Two ways a Ctrl-C in the first second went wrong before it was held:
- A KeyboardInterrupt raised inside a finalizer that an import runs (importlib's module-lock
  weakref callback, a `__del__`) is printed as "Exception ignored" and dropped: the command
  went on as if Ctrl-C had never been pressed (CI of f16a997: `make run` kept starting).
- One raised while Typer reads the command line is a traceback through Typer, or its
  "Aborted." and exit status 1.
While held, SIGINT only sets a flag; `release()` (the root command's callback, once the
command line is read, and `accord run` once the stack's modules are loaded) ends the command
with one line if it was pressed, and lets Ctrl-C raise again."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = 130
"""The exit status of a command stopped by SIGINT (128 + 2), as a shell reports it."""

_pressed: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _pressed.append(signum)


def hold() -> None:
    signal.signal(signal.SIGINT, _remember)


def release() -> None:
    # Only what hold() installed is undone: a command run otherwise (a test's CliRunner, in a
    # worker thread, where signal.signal raises) keeps the handler it has.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _remember:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _pressed:
        sys.stderr.write("accord: stopped while starting (Ctrl-C); nothing was done\n")
        sys.stderr.flush()
        os._exit(INTERRUPTED)
