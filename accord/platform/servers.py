"""The HTTP servers a process runs (the web app, its metrics, a worker's health): uvicorn, on
this process's logging and its own stop signal."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """Leaves signals to the caller, which stops every part of the process together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_server(
    app: Any, host: str, port: int, *, log_level: str = "warning", **options: Any
) -> Server:
    """A server for `app` on host:port. Its records go through the process's logging (JSON
    outside development), not a text handler of uvicorn's own (`log_config`), from `log_level`
    up."""
    return Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, **options)
    )
