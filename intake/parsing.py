"""Reading a message in a process of its own, within a time and a memory budget.

Python's email parser is slow on some inputs (a Subject of ~400 KB of encoded words takes it
7 to 20 s, quadratically more for more), and `accord run` serves the web app, the worker and
the intake from one event loop: read there, one hostile message froze all three. Read in a
reader process, it costs that process its budget and nothing else; past the budget the reader
is killed (a running parse cannot be interrupted otherwise) and the attempt fails in plain
words.

Readers are plain child processes (`python -m intake.parsing`) that import only the reader
and live on between messages; one reads one message at a time, over its stdin and stdout.
They are not multiprocessing workers: those import the program's main module again (seconds
for `accord`), and outlive an intake that is killed. A reader ends when its stdin does.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Literal

from intake.reading import ReadMail, read

STARTUP_SECONDS = 120.0
"""How long a new reader may take to start, outside any message's budget."""
_HEADER = struct.Struct("!Q")
_READY = b"R"


class ParseFailed(Exception):
    """This attempt to read the message failed (budget, memory, the process died); another
    attempt may succeed, so it counts as a failed attempt, not as an unreadable message."""


class Unreadable(Exception):
    """The parser gave up on the message itself: trying again gives the same answer."""


Result = (
    tuple[Literal["read"], ReadMail]
    | tuple[Literal["unreadable"], str]
    | tuple[Literal["memory"], str]
)


def _read(raw: bytes) -> Result:
    try:
        return ("read", read(raw))
    except MemoryError:
        return ("memory", "")
    except Exception as exc:  # the parser's own failure on this input
        return ("unreadable", f"the email parser gave up on it ({type(exc).__name__})")


def _exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(out: IO[bytes], payload: bytes) -> None:
    out.write(_HEADER.pack(len(payload)) + payload)
    out.flush()


class _Reader:
    """One reader process."""

    def __init__(self, memory_mb: int) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-m", "intake.parsing", str(memory_mb * 1024 * 1024)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.stdin = self.process.stdin
        self.fd = self.process.stdout.fileno()
        try:
            ready = _exactly(self.fd, 1, time.monotonic() + STARTUP_SECONDS)
        except (TimeoutError, EOFError):
            self.kill()
            raise ParseFailed("the process that reads mail did not start") from None
        if ready != _READY:
            self.kill()
            raise ParseFailed("the process that reads mail did not start")

    def read(self, raw: bytes, seconds: float) -> Result:
        """Raises TimeoutError past the budget, EOFError or OSError when the reader died."""
        _send(self.stdin, raw)
        deadline = time.monotonic() + seconds
        (size,) = _HEADER.unpack(_exactly(self.fd, _HEADER.size, deadline))
        # The answer is being written: its end is not held to the budget.
        result: Result = pickle.loads(_exactly(self.fd, size, None))  # noqa: S301 - our child
        return result

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Readers:
    """Reader processes, started as needed and kept; blocking calls, for threads. The caller
    runs at most `processes` readings at a time."""

    def __init__(self, processes: int, memory_mb: int) -> None:
        self.processes = processes
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._idle: list[_Reader] = []

    def read(self, raw: bytes, seconds: float) -> ReadMail:
        with self._lock:
            reader = self._idle.pop() if self._idle else None
        reader = reader or _Reader(self.memory_mb)
        try:
            result = reader.read(raw, seconds)
        except TimeoutError:
            reader.kill()
            raise ParseFailed(
                f"reading it took longer than {seconds:g} s (the time budget)"
            ) from None
        except (EOFError, OSError):
            reader.kill()
            raise ParseFailed("the process reading it stopped") from None
        with self._lock:
            self._idle.append(reader)
        if result[0] == "memory":
            raise ParseFailed(f"reading it needed more than {self.memory_mb} MB (the budget)")
        if result[0] == "unreadable":
            raise Unreadable(result[1])
        return result[1]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.kill()


def main() -> None:
    """A reader: one message in, one result out, until stdin ends."""
    memory = int(sys.argv[1])
    # The address space, not the resident size: the one limit the kernel enforces at once.
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    stdin, stdout = sys.stdin.buffer.fileno(), sys.stdout.buffer
    stdout.write(_READY)
    stdout.flush()
    while True:
        try:
            (size,) = _HEADER.unpack(_exactly(stdin, _HEADER.size, None))
            raw = _exactly(stdin, size, None)
        except EOFError:
            return
        try:
            answer = pickle.dumps(_read(raw))
        except MemoryError:
            answer = pickle.dumps(("memory", ""))
        _send(stdout, answer)


if __name__ == "__main__":
    main()
