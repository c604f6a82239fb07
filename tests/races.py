"""Races made to happen every time: an activity held on an event while a second action arrives.

A `Gate` wraps one real activity (same name, same code) so a test can hold the next call that
matches a predicate, start the racing update while the first one waits in the middle of its
handler, and then let it go (TEMPORAL.md, "Message handlers that mutate state").
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity


class Gate:
    """Holds the next call of one activity whose request matches, until released."""

    def __init__(self) -> None:
        self._when: Callable[[Any], bool] | None = None
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self, when: Callable[[Any], bool] = lambda _request: True) -> None:
        self.entered.clear()
        self.released.clear()
        self._when = when

    def release(self) -> None:
        self.released.set()

    async def reached(self, seconds: float = 20) -> None:
        """Wait until the held call is in the activity (fails the test after `seconds`)."""
        if not await asyncio.to_thread(self.entered.wait, seconds):
            raise AssertionError("the held activity was never called")

    def passing(self, request: Any) -> None:
        """Called at the start of the activity, in its thread: wait here if this call is held."""
        with self._lock:
            when = self._when
            held = when is not None and when(request)
            if held:
                self._when = None  # one call only: a retry or a later call goes through
        if held:
            self.entered.set()
            self.released.wait(60)


def gated(cls: type, name: str, gate: Gate) -> Callable[..., Any]:
    """`cls.name` as an activity of the same name that first passes through `gate`."""
    original = getattr(cls, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(self: Any, request: Any) -> Any:
            await asyncio.to_thread(gate.passing, request)
            return await original(self, request)

    else:

        @functools.wraps(original)
        def wrapper(self: Any, request: Any) -> Any:
            gate.passing(request)
            return original(self, request)

    # functools.wraps copied the original's activity definition; the wrapper gets its own.
    del wrapper.__dict__["__temporal_activity_definition"]
    return activity.defn(name=name)(wrapper)
