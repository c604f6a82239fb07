"""Reading a message in a process of its own, within a time and a memory budget.

Python's email parser is slow on some inputs (a Subject of ~400 KB of encoded words takes it
about 20 s, quadratically more for more), and `accord run` serves the web app, the worker and
the intake from one event loop: read there, one hostile message froze all three. Read in a
child process, it costs that process its budget and nothing else; past the budget the child
is killed and the attempt fails in plain words.

Children come from a fork server that has imported the reader already, so starting one is a
fork, not an interpreter start.
"""

from __future__ import annotations

import multiprocessing
import resource
from multiprocessing.connection import Connection
from typing import Literal

from intake.reading import ReadMail, read

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["intake.reading"])


class ParseFailed(Exception):
    """This attempt to read the message failed (budget, memory, the process died); another
    attempt may succeed, so it counts as a failed attempt, not as an unreadable message."""


class Unreadable(Exception):
    """The parser gave up on the message itself: trying again gives the same answer."""


Result = tuple[Literal["read"], ReadMail] | tuple[Literal["unreadable"], str]


def _child(raw: bytes, memory_bytes: int, answer: Connection) -> None:
    # The address space, not the resident size: the one limit the kernel enforces at once.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    result: Result
    try:
        result = ("read", read(raw))
    except MemoryError:
        answer.close()  # the parent sees the pipe closed with nothing in it
        return
    except Exception as exc:  # the parser's own failure on this input
        result = ("unreadable", f"the email parser gave up on it ({type(exc).__name__})")
    answer.send(result)
    answer.close()


def read_within_budget(raw: bytes, seconds: float, memory_mb: int) -> ReadMail:
    """Read `raw` in a child process; blocking (run it in a thread)."""
    receiving, sending = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_child, args=(raw, memory_mb * 1024 * 1024, sending), daemon=True
    )
    child.start()
    sending.close()  # ours; the child holds its own copy, so EOF means the child is gone
    try:
        if not receiving.poll(seconds):
            raise ParseFailed(f"reading it took longer than {seconds:g} s (the time budget)")
        try:
            result: Result = receiving.recv()
        except EOFError:
            child.join(5)
            raise ParseFailed(
                f"reading it needed more than {memory_mb} MB (the memory budget)"
                if child.exitcode == 0
                else f"the process reading it stopped (exit code {child.exitcode})"
            ) from None
    finally:
        receiving.close()
        if child.is_alive():
            child.kill()
        child.join()
    if result[0] == "unreadable":
        raise Unreadable(result[1])
    return result[1]
